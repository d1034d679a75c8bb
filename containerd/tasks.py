"""Tasks: one pycontainerd-shim per container, found again after a daemon restart.

The daemon keeps no task state of its own that a restart could lose: each task is a
directory STATE/tasks/<namespace>/<id> (the OCI bundle, which is also the shim's state
directory) holding the shim's `address`. On start the manager reconnects to every live
shim there; a shim that died is cleaned up with `pycontainerd-shim delete`, which reports
the recorded exit status.

Events come from the shims, not from here: each shim keeps a durable queue (create, start,
exit, oom, exec, pause, delete...) and one pump thread per task long-polls it, publishes
to the exchange and acknowledges, so exits that happened while the daemon was down are
delivered once it is back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common import schema
from containerd.errors import AlreadyExists, ContainerdError, FailedPrecondition, NotFound

if TYPE_CHECKING:
    from containerd.server import Daemon

log = logging.getLogger("pycontainerd.tasks")

RUNTIME_FILE = "pycontainerd-runtime"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SHORT_SOCKET_DIR = "/run/pycontainerd-shim"
# The shim state directories' layout this build reads (shim/options.py's LAYOUT_VERSION: the
# daemon imports no shim code, and the two move together).
SHIM_LAYOUT_VERSION = 1


@dataclass
class Task:
    namespace: str
    id: str
    bundle: str
    client: Any
    config: Any
    pid: int = 0
    pump: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # The last event published, so that the pump and Delete's drain, which may fetch the same
    # events at once, publish each one once; the lock keeps them in order.
    published: int = 0
    publishing: threading.Lock = field(default_factory=threading.Lock)
    acked: Any = None  # the last Acknowledgement sent (shim_client), not waited for


class TaskManager:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.root = os.path.join(daemon.cfg.state, "tasks")
        self.sockets = os.path.join(daemon.cfg.state, "s")
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        os.makedirs(self.sockets, mode=0o711, exist_ok=True)
        self._lock = threading.Lock()
        self._tasks: dict[tuple[str, str], Task] = {}
        from containerd.shim_client import ShimSpawner

        # New shims are forked from a warm template (shim/spawner.py) rather than started cold.
        self.spawner = ShimSpawner(["--address", daemon.cfg.address, "--state", daemon.cfg.state])

    # --- lookup ------------------------------------------------------------------------------

    def exists(self, namespace: str, container_id: str) -> bool:
        with self._lock:
            return (namespace, container_id) in self._tasks

    def get(self, namespace: str, container_id: str) -> Task:
        with self._lock:
            task = self._tasks.get((namespace, container_id))
        if task is None:
            raise NotFound(f"task {container_id} not found")
        return task

    def in_namespace(self, namespace: str) -> list[Task]:
        with self._lock:
            return [t for (ns, _), t in sorted(self._tasks.items()) if ns == namespace]

    # --- lifecycle ---------------------------------------------------------------------------

    def _shim_config(self, namespace: str, container_id: str, bundle: str, runtime: str) -> Any:
        from containerd.shim_client import ShimConfig

        # Unix socket paths are limited to 108 bytes. Under a long --state the sockets go to a short
        # directory of their own (as containerd's /run/containerd/s), named by a hash of the state
        # directory too, so that daemons with different state never collide there.
        digest = hashlib.sha256(f"{self.daemon.cfg.state}\0{namespace}\0{container_id}".encode()).hexdigest()[
            :32
        ]
        socket = os.path.join(self.sockets, f"{digest}.sock")
        if len(socket.encode()) > MAX_SOCKET_PATH:
            os.makedirs(SHORT_SOCKET_DIR, mode=0o711, exist_ok=True)
            socket = os.path.join(SHORT_SOCKET_DIR, f"{digest}.sock")
        return ShimConfig(
            id=container_id,
            bundle=bundle,
            namespace=namespace,
            runtime=runtime,
            runtime_root=os.path.join(self.daemon.cfg.state, "runtime", namespace),
            address=self.daemon.cfg.address,
            socket=socket,
            exit_timeout=self.daemon.cfg.shim_orphan_timeout,
        )

    def create(self, namespace: str, request: Any) -> Task:
        from containerd.config import ConfigError
        from containerd.shim_client import ShimClient, ShimError, start_shim

        container_id = request.container_id
        with self.daemon.db.transaction() as tx:
            container = tx.containers(namespace).get(container_id)
        if container.spec is None or not container.spec.value:
            raise FailedPrecondition(f"container {container_id} has no OCI spec")
        try:
            runtime = runc_binary(
                request.options, container.runtime.options
            ) or self.daemon.cfg.runtime_binary(request.runtime_path or container.runtime.name)
        except ConfigError as exc:
            raise NotFound(str(exc)) from None
        bundle = os.path.join(self.root, namespace, container_id)
        with self._lock:
            if (namespace, container_id) in self._tasks:
                raise AlreadyExists(f"task {container_id}: already exists")
            try:
                os.makedirs(bundle, mode=0o711)
            except FileExistsError:
                raise AlreadyExists(f"task {container_id}: already exists") from None
            placeholder = Task(namespace, container_id, bundle, None, None)
            self._tasks[(namespace, container_id)] = placeholder
        try:
            with open(os.path.join(bundle, "config.json"), "wb") as f:
                f.write(container.spec.value)
            with open(os.path.join(bundle, RUNTIME_FILE), "w") as f:
                f.write(runtime)  # a restarted daemon needs it to clean up after a dead shim
            os.makedirs(os.path.join(bundle, "rootfs"), exist_ok=True)
            config = self._shim_config(namespace, container_id, bundle, runtime)
            options = runc_options(request.options, container.runtime.options)
            config.systemd_cgroup = bool(options is not None and options.systemd_cgroup)
            address = start_shim(config, spawner=self.spawner)
            client = ShimClient(address.removeprefix("unix://"))
            try:
                created = client.create(
                    id=container_id,
                    bundle=bundle,
                    rootfs=list(request.rootfs),
                    terminal=request.terminal,
                    stdin=request.stdin,
                    stdout=request.stdout,
                    stderr=request.stderr,
                    checkpoint=request.checkpoint.digest if request.HasField("checkpoint") else "",
                    options=request.options,
                )
            except ShimError as exc:  # the runtime failed: containerd 1.6's runtime v2 words
                self._discard_shim(client, config)
                raise ShimError(f"failed to create shim task: {exc}", exc.code) from None
            except BaseException:
                self._discard_shim(client, config)
                raise
        except BaseException:
            with self._lock:
                self._tasks.pop((namespace, container_id), None)
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        task = Task(namespace, container_id, bundle, client, config, pid=created.pid)
        with self._lock:
            self._tasks[(namespace, container_id)] = task
        self._start_pump(task)
        return task

    def delete(self, namespace: str, container_id: str) -> Any:
        task = self.get(namespace, container_id)
        response = task.client.delete(id=container_id)
        self._drain_events(task)
        task.stopping.set()
        try:
            task.client.shutdown(id=container_id)
        except ContainerdError:
            pass
        task.client.close()
        with self._lock:
            self._tasks.pop((namespace, container_id), None)
        shutil.rmtree(task.bundle, ignore_errors=True)
        return response

    def _discard_shim(self, client: Any, config: Any) -> None:
        from containerd.shim_client import cleanup_shim

        try:
            client.shutdown(id=config.id, now=True)
        except ContainerdError:
            pass
        client.close()
        try:
            cleanup_shim(config)
        except ContainerdError:
            pass

    # --- events ------------------------------------------------------------------------------

    def _start_pump(self, task: Task) -> None:
        task.pump = threading.Thread(target=self._pump, args=(task,), name=f"events-{task.id}", daemon=True)
        task.pump.start()

    def _publish(self, task: Task, events: list[Any]) -> int:
        """Publish EVENTS not yet published, acknowledge them; the last seq published so far."""
        last = 0
        with task.publishing:
            for event in events:
                if event.seq <= task.published:
                    continue  # the other fetcher (pump or drain) published it already
                self.daemon.exchange.publish(
                    event.namespace or task.namespace,
                    event.topic,
                    event.event.type_url,
                    bytes(event.event.value),
                    event.timestamp.ToNanoseconds() or None,
                )
                task.published = last = event.seq
            if last:
                if task.acked is not None:
                    task.acked.check()  # the previous one's failure, if it has failed
                task.acked = task.client.send_ack(last)
            return task.published

    def _pump(self, task: Task) -> None:
        after = 0
        while not task.stopping.is_set():
            try:
                events = task.client.fetch_events(after=after, wait=True, timeout_ms=1000)
                after = max(after, self._publish(task, events))
            except ContainerdError as exc:
                if task.stopping.is_set():
                    return
                log.warning("events of task %s/%s: %s", task.namespace, task.id, exc)
                if task.stopping.wait(1.0):
                    return
            except Exception:  # the pump must outlive a bad event
                log.exception("events of task %s/%s", task.namespace, task.id)
                if task.stopping.wait(1.0):
                    return

    def _drain_events(self, task: Task) -> None:
        """Deliver what the shim still holds (TaskDelete, a late TaskExit) before it goes away.

        One fetch: the shim queues TaskDelete before it answers Delete, and nothing after it."""
        try:
            if events := task.client.fetch_events(after=task.published, wait=False):
                self._publish(task, events)
        except ContainerdError as exc:
            log.warning("draining events of %s/%s: %s", task.namespace, task.id, exc)

    # --- restart -----------------------------------------------------------------------------

    def recover(self) -> None:
        """Reconnect to every shim that outlived the previous daemon; clean up after dead ones."""
        for namespace in sorted(_listdir(self.root)):
            for container_id in sorted(_listdir(os.path.join(self.root, namespace))):
                from containerd.shim_client import ShimClient, cleanup_shim

                bundle = os.path.join(self.root, namespace, container_id)
                try:
                    schema.dir_version(bundle, json.loads, SHIM_LAYOUT_VERSION)
                except schema.LayoutError as exc:
                    # A newer release's shim state (or a damaged marker): named and left alone,
                    # neither reconnected to nor cleaned up; the other tasks are recovered.
                    log.error("task %s/%s not recovered: %s", namespace, container_id, exc)
                    continue
                config = self._shim_config(namespace, container_id, bundle, self._recorded_runtime(bundle))
                try:
                    client, state = _reconnect(bundle, container_id, ShimClient)
                except (OSError, ContainerdError) as exc:
                    if isinstance(exc, NotFound):
                        # A shim without its task: the daemon that started it died before
                        # creating the task. Nothing runs under it; it is shut down, then cleaned up.
                        _shut_down(bundle, container_id, ShimClient)
                    log.warning("shim of %s/%s is gone (%s): cleaning up", namespace, container_id, exc)
                    try:
                        cleanup_shim(config)
                    except (OSError, ContainerdError) as cleanup_exc:
                        # Not cleaned up (a shim still serving, say): the bundle stays, with the
                        # rootfs that may still be mounted in it, for the next start to recover.
                        log.error("task %s/%s not recovered: %s", namespace, container_id, cleanup_exc)
                        continue
                    shutil.rmtree(bundle, ignore_errors=True)
                    continue
                task = Task(namespace, container_id, bundle, client, config, pid=state.pid)
                with self._lock:
                    self._tasks[(namespace, container_id)] = task
                self._start_pump(task)
                log.info("reconnected to task %s/%s (pid %d)", namespace, container_id, state.pid)

    def _recorded_runtime(self, bundle: str) -> str:
        try:
            with open(os.path.join(bundle, RUNTIME_FILE)) as f:
                return f.read().strip() or "pyrunc"
        except OSError:
            return "pyrunc"

    def close(self) -> None:
        """Daemon shutdown: stop pumping and disconnect; the shims and containers live on."""
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            task.stopping.set()
        for task in tasks:
            if task.client is not None:
                task.client.close()
            if task.pump is not None:
                task.pump.join(timeout=5)
        self.spawner.close()


def _reconnect(bundle: str, container_id: str, connect: Any, patience: float = 10.0) -> tuple[Any, Any]:
    """A client of the shim serving BUNDLE and its task's state. A shim whose process is alive but
    does not answer yet (a loaded machine) is asked again for PATIENCE seconds before it is taken
    for dead; one that answers that it has no such task raises NotFound at once."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with open(os.path.join(bundle, "address")) as f:
                address = f.read().strip()
            client = connect(address.removeprefix("unix://"), connect_timeout=5)
            try:
                return client, client.state(id=container_id)
            except BaseException:
                client.close()
                raise
        except (OSError, ContainerdError) as exc:
            if isinstance(exc, NotFound) or not _shim_alive(bundle) or time.monotonic() > deadline:
                raise  # (NotFound: the shim answered, it has no such task)
            log.warning("shim of %s is alive but does not answer (%s): asking again", bundle, exc)
            time.sleep(1)


def _shut_down(bundle: str, container_id: str, connect: Any) -> None:
    try:
        with open(os.path.join(bundle, "address")) as f:
            client = connect(f.read().strip().removeprefix("unix://"), connect_timeout=5)
        try:
            client.shutdown(id=container_id, now=True)
        finally:
            client.close()
    except (OSError, ContainerdError) as exc:
        log.warning("shutting down the shim of %s: %s", bundle, exc)
    deadline = time.monotonic() + 5
    while _shim_alive(bundle) and time.monotonic() < deadline:
        time.sleep(0.05)


def _shim_alive(bundle: str) -> bool:
    try:
        with open(os.path.join(bundle, "shim.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def _listdir(path: str) -> list[str]:
    try:
        return [name for name in os.listdir(path) if not name.startswith(".")]
    except FileNotFoundError:
        return []


RUNC_OPTIONS = "containerd.runc.v1.Options"


def runc_options(task_options: Any, runtime_options: Any) -> Any:
    """The containerd.runc.v1.Options a runc-shim client gave: in the task request's options,
    else the container record's runtime options, as containerd hands its shim whichever is set."""
    for options in (task_options, runtime_options):
        if options is None or getattr(options, "type_url", "") != RUNC_OPTIONS:
            continue
        from protos.gen.containerd_api.types.runc.options import oci_pb2

        return oci_pb2.Options.FromString(bytes(options.value))
    return None


def runc_binary(task_options: Any, runtime_options: Any) -> str | None:
    """The OCI runtime the runc options name (binary_name), None for the default. A bare name is
    looked up in PATH (exec.LookPath in the shim)."""
    parsed = runc_options(task_options, runtime_options)
    if parsed is not None:
        name: str = parsed.binary_name
        if not name:
            return None
        if "/" in name:
            return name
        found: str | None = shutil.which(name)
        if found is None:
            from containerd.config import ConfigError

            raise ConfigError(f'runtime binary "{name}": executable file not found in $PATH')
        return found
    return None
