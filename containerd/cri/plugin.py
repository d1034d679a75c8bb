"""The CRI plugin of pycontainerd: its state, the exit monitor, and adoption after a restart.

It is a plugin of the daemon, not a second daemon: its gRPC services are registered on the
daemon's server (or on a socket of their own, `address`), and it works through containerd's
API with the client library over the daemon's own socket, in the `k8s.io` namespace — as
containerd's CRI plugin uses containerd's Go client in-process. That keeps one path for
containers, tasks, snapshots, leases and images (the one ctr, pydockerd and the tests exercise),
and what the plugin creates is visible and manageable with `ctr -n k8s.io` like containerd's.

Exits come from the event exchange (`/tasks/exit`, `/tasks/oom` of `k8s.io`), one subscription
for all tasks, rather than a Wait call per task (each would hold one of the daemon's gRPC
workers for the task's whole life).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from containerd.client import Client
from containerd.client.errors import ContainerdError as ClientError
from containerd.cri import cni as cnimod
from containerd.cri.config import K8S_NAMESPACE, CRIConfig, plugin_dirs
from containerd.cri.images import Images
from containerd.cri.logs import Copier, LogFile
from containerd.cri.store import (
    CONTAINER_EXTENSION,
    KIND_LABEL,
    SANDBOX_EXTENSION,
    ContainerMeta,
    Item,
    SandboxMeta,
    Store,
    now_ns,
)

if TYPE_CHECKING:
    from containerd.config import Config

log = logging.getLogger("pycontainerd.cri")
# httpx logs every request at INFO: a pull of many layers would flood the daemon log.
logging.getLogger("httpx").setLevel(logging.WARNING)


class ExitWaiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.status = 0
        self.exited_at = 0


class Plugin:
    def __init__(self, daemon_cfg: Config, cfg: CRIConfig) -> None:
        self.daemon_cfg = daemon_cfg
        self.cfg = cfg
        self.root, self.state = plugin_dirs(daemon_cfg.root, daemon_cfg.state)
        for d in (self.root, self.state):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self.netns_dir = cfg.netns_dir or os.path.join(self.state, "netns")
        # the daemon's unary methods by path, called in-process (local.py); set by the daemon
        self.local_handlers: dict[str, Any] | None = None
        self.cni = cnimod.CNI(cfg.cni_conf_dir, cfg.cni_bin_dir, os.path.join(self.state, "cni"))
        self.sandboxes: Store[SandboxMeta] = Store("sandbox")
        self.containers: Store[ContainerMeta] = Store("container")
        self._client: Client | None = None
        self._images: Images | None = None
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, str], ExitWaiter] = {}
        self._copiers: dict[str, list[Copier]] = {}
        self._delete_locks: dict[str, threading.Lock] = {}
        self._logs: dict[str, LogFile] = {}
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._subscription: Any = None
        self.ready = threading.Event()
        self.recovered = threading.Event()
        self.pod_cidr = ""
        self.stream: Any = None  # the streaming server, started at the first Exec/Attach/PortForward
        from containerd.cri.containers import Containers
        from containerd.cri.sandboxes import Sandboxes

        self.pods = Sandboxes(self)
        self.ctrs = Containers(self)

    # --- the client ----------------------------------------------------------------------------

    def _new_client(self) -> Client:
        client = Client(self.daemon_cfg.address, K8S_NAMESPACE)
        if self.local_handlers is None:
            return client
        from containerd.cri.local import LocalChannel

        # the socket's channel (with the client's options) carries the streaming calls
        channel = LocalChannel(self.local_handlers, client._raw)
        return Client(self.daemon_cfg.address, K8S_NAMESPACE, _channel=cast(grpc.Channel, channel))

    @property
    def client(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    @property
    def images(self) -> Images:
        with self._lock:
            if self._images is None:
                self._images = Images(self._new_client(), self.cfg)
            return self._images

    def streaming(self) -> Any:
        """The streaming server, started at its first use (most daemons never need it)."""
        from containerd.cri.streaming import StreamServer

        with self._lock:
            if self.stream is None:
                self.stream = StreamServer(self, self.cfg.stream_server_address, self.cfg.stream_server_port)
            return self.stream

    def attach_output(self, container_id: str, stdout: Any, stderr: Any) -> Callable[[], None]:
        """Tee a running container's output (as its log copiers read it) into attach streams."""
        undo = []
        for copier in self._copiers.get(container_id, []):
            target = stdout if copier.stream == b"stdout" else stderr
            if target is not None:
                undo.append(copier.subscribe(target.write))

        def unsubscribe() -> None:
            for u in undo:
                u()

        return unsubscribe

    def runtime_binary(self) -> str:
        return self.cfg.runtime_binary

    def verbose_runtime(self, container_id: str) -> dict[str, Any]:
        """What containerd's verbose status says of the runtime: its options (when any) and the
        OCI spec the container record carries (tools read cgroupsPath there)."""
        out: dict[str, Any] = {}
        options = {
            k: v
            for k, v in (("binary_name", self.runtime_binary()), ("systemd_cgroup", self.cfg.systemd_cgroup))
            if v
        }
        if options:
            out["runtimeOptions"] = options
        try:
            out["runtimeSpec"] = self.client.containers.get(container_id).oci_spec()
        except ClientError:
            pass  # removed meanwhile
        return out

    # --- lifetime ------------------------------------------------------------------------------

    def start(self) -> None:
        """After the daemon serves: subscribe to exits, then adopt what a previous daemon left."""
        self._monitor = threading.Thread(target=self._monitor_exits, name="cri-exits", daemon=True)
        self._monitor.start()
        threading.Thread(target=self._recover, name="cri-recover", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self._subscription is not None:
            self._subscription.cancel()
        if self.stream is not None:
            self.stream.close()
        for log_file in list(self._logs.values()):
            log_file.close()

    # --- exits ---------------------------------------------------------------------------------

    def waiter(self, container_id: str, exec_id: str = "") -> ExitWaiter:
        with self._lock:
            return self._waiters.setdefault((container_id, exec_id), ExitWaiter())

    def drop_waiter(self, container_id: str, exec_id: str = "") -> None:
        with self._lock:
            self._waiters.pop((container_id, exec_id), None)
            if not exec_id:
                self._delete_locks.pop(container_id, None)

    def _monitor_exits(self) -> None:
        from protos.gen.containerd_api.events import task_pb2 as events

        subscribed = False
        while not self._stop.is_set():
            try:
                sub = Client(self.daemon_cfg.address, K8S_NAMESPACE, timeout=None).events.subscribe(
                    f'namespace=={K8S_NAMESPACE},topic=="/tasks/exit"',
                    f'namespace=={K8S_NAMESPACE},topic=="/tasks/oom"',
                )
                self._subscription = sub
                if not subscribed:
                    subscribed = True
                    self.ready.set()
                for envelope in sub:
                    message = envelope.decode()
                    if isinstance(message, events.TaskExit):
                        exec_id = message.id if message.id != message.container_id else ""
                        self._on_exit(
                            message.container_id,
                            exec_id,
                            int(message.exit_status),
                            int(message.exited_at.ToNanoseconds()),
                        )
                    elif isinstance(message, events.TaskOOM):
                        item = self.containers.find(message.container_id)
                        if item is not None:
                            item.update(reason="OOMKilled")
            except ClientError as exc:
                if self._stop.is_set():
                    return
                log.warning("cri event monitor: %s; resubscribing", exc)
                self.ready.set()
                self._stop.wait(0.5)
            except Exception:
                log.exception("cri event monitor")
                self._stop.wait(0.5)

    def _on_exit(self, container_id: str, exec_id: str, status: int, exited_at: int) -> None:
        waiter = self.waiter(container_id, exec_id)
        waiter.status, waiter.exited_at = status, exited_at or now_ns()
        waiter.done.set()
        if exec_id:
            return
        threading.Thread(
            target=self.handle_exit, args=(container_id, status, waiter.exited_at), daemon=True
        ).start()

    def handle_exit(self, container_id: str, status: int, exited_at: int) -> None:
        """An init exited: record it, let its output drain to the log, then delete the task (as
        containerd's CRI does), so the pod's resources go with it."""
        item = self.containers.find(container_id)
        if item is not None:
            self.finish_logs(container_id)
            self._delete_task(container_id)
            if not item.status.finished_at:
                reason = (
                    item.status.reason
                    if item.status.reason == "OOMKilled"
                    else ("Completed" if status == 0 else "Error")
                )
                item.update(pid=0, finished_at=exited_at, exit_code=status, reason=reason)
            return
        sandbox = self.sandboxes.find(container_id)
        if sandbox is not None:
            self._delete_task(container_id)
            if not sandbox.status.finished_at:
                sandbox.update(pid=0, finished_at=exited_at, exit_code=status)

    def _delete_task(self, container_id: str) -> None:
        try:
            self.delete_task(container_id)
        except ClientError as exc:
            log.debug("deleting task %s: %s", container_id, exc)

    def delete_task(self, container_id: str) -> None:
        """Delete a task once, whoever asks first (the exit handler, stop, remove): a second
        caller waits for the first to finish, so "deleted" means gone from the daemon too."""
        from containerd.client.errors import NotFound as ClientNotFound

        with self._lock:
            lock = self._delete_locks.setdefault(container_id, threading.Lock())
        with lock:
            try:
                self.client.tasks.delete(container_id)
            except ClientNotFound:
                pass

    # --- logs ----------------------------------------------------------------------------------

    def io_dir(self, container_id: str) -> str:
        return os.path.join(self.state, "io", container_id)

    def start_logs(self, item: Item[ContainerMeta], fifos: list[tuple[str, str]], shim_logs: bool) -> None:
        """Read the output FIFOs for attach sessions; with SHIM_LOGS false (a container an older
        daemon started) also write the CRI log from them, as that daemon did."""
        log_file = None
        if not shim_logs:
            log_file = self._logs.get(item.meta.id) or LogFile(item.meta.log_path)
            self._logs[item.meta.id] = log_file
        copiers = [
            Copier(path, stream, log_file, self.cfg.max_container_log_line_size) for stream, path in fifos
        ]
        for c in copiers:
            c.start()
        self._copiers[item.meta.id] = copiers

    def finish_logs(self, container_id: str, timeout: float = 10.0) -> None:
        for copier in self._copiers.pop(container_id, []):
            copier.join(timeout)
        log_file = self._logs.pop(container_id, None)
        if log_file is not None:
            log_file.close()

    def reopen_log(self, item: Item[ContainerMeta]) -> None:
        """kubelet renamed the log: the next record goes to a new file at its path. The shim
        notices the rename at its next write by itself; the file is made now (as containerd
        makes it at once), so a reader finds it."""
        log_file = self._logs.get(item.meta.id)
        if log_file is not None:
            log_file.reopen()
        elif item.meta.log_path:
            os.close(
                os.open(item.meta.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            )

    # --- restart -------------------------------------------------------------------------------

    def _recover(self) -> None:
        """Rebuild the stores from the k8s.io container records; re-attach logs and exits."""
        self.ready.wait(10)
        try:
            records = self.client.containers.list()
            tasks = {t.container_id: t for t in self.client.tasks.list()}
        except ClientError as exc:
            log.warning("cri recovery: %s", exc)
            self.recovered.set()
            return
        for record in records:
            kind = record.labels.get(KIND_LABEL)
            try:
                if kind == "sandbox" and SANDBOX_EXTENSION in record.extensions:
                    self.pods.adopt(record, tasks.get(record.id))
                elif kind == "container" and CONTAINER_EXTENSION in record.extensions:
                    self.ctrs.adopt(record, tasks.get(record.id))
            except Exception:
                log.exception("cri recovery of %s", record.id)
        self.recovered.set()
        log.info(
            "cri: recovered %d sandboxes, %d containers",
            len(self.sandboxes.list()),
            len(self.containers.list()),
        )


def call_quietly(func: Callable[[], Any], what: str) -> None:
    try:
        func()
    except (ClientError, OSError) as exc:
        log.debug("%s: %s", what, exc)
