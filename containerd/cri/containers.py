"""Containers in a pod: create, start, stop, remove, status, list, update, exec, stats.

A container's stdio goes through FIFOs in the plugin's state directory (stdin too when the
config asks for it); the shim writes stdout and stderr into the CRI log file at the path
kubelet gives (log_directory/log_path) and tees them into the FIFOs for attach (logs.py). Its record carries the CRI metadata (the config as
sent), its status file the life of its init; both survive a daemon restart.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal as signals
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format

from common.errdefs import DeadlineExceeded
from common.mount import Mount as CMount
from common.mount import readonly as readonly_mounts
from common.mount import temp_mount
from containerd.client import IO, Container, Process
from containerd.client.errors import ContainerdError as ClientError
from containerd.client.errors import NotFound as ClientNotFound
from containerd.client.typeurl import Payload
from containerd.cri import spec as specs
from containerd.cri.filters import selects
from containerd.cri.logs import SHIM_LOG_SCHEME, shim_log_uri
from containerd.cri.store import CONTAINER_EXTENSION, CONTAINER_TYPE, KIND_LABEL, ContainerMeta, Item, now_ns
from containerd.cri.users import resolve_user
from containerd.errors import ContainerdError, InvalidArgument, NotFound
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri

if TYPE_CHECKING:
    from containerd.cri.plugin import Plugin

log = logging.getLogger("pycontainerd.cri")
EXEC_OUTPUT_LIMIT = 16 << 20
ETC_FILES = ("/etc/passwd", "/etc/group")  # what users.resolve_user reads
ETC_CACHE = 64  # images whose ETC_FILES are kept


def container_name(md: cri.ContainerMetadata, sandbox: cri.PodSandboxMetadata) -> str:
    return f"{md.name}_{sandbox.name}_{sandbox.namespace}_{sandbox.uid}_{md.attempt}"


STATE_NAMES = {cri.CONTAINER_CREATED: "CONTAINER_CREATED", cri.CONTAINER_RUNNING: "CONTAINER_RUNNING",
               cri.CONTAINER_EXITED: "CONTAINER_EXITED", cri.CONTAINER_UNKNOWN: "CONTAINER_UNKNOWN"}  # fmt: skip


class Containers:
    def __init__(self, plugin: Plugin) -> None:
        self.p = plugin
        self._etc: dict[str, dict[str, str | None]] = {}  # layer chain -> ETC_FILES' contents

    # --- create --------------------------------------------------------------------------------

    def create(
        self, sandbox_id: str, config: cri.ContainerConfig, sandbox_config: cri.PodSandboxConfig | None
    ) -> str:
        p = self.p
        if not config.HasField("metadata") or not config.metadata.name:
            raise InvalidArgument("container config must include metadata with a name")
        sandbox = p.sandboxes.get(sandbox_id)
        sandbox_id = sandbox.meta.id
        if p.pods.state(sandbox) != cri.SANDBOX_READY:
            # as containerd, which asks for the sandbox's task
            raise NotFound(
                f"failed to get sandbox container task: no running task found: task {sandbox_id} not found: not found"
            )
        pod_config = p.pods.config(sandbox)
        id_ = secrets.token_hex(32)
        name = container_name(config.metadata, pod_config.metadata)
        p.containers.reserve(name, id_)
        undo: list[Callable[[], Any]] = [lambda: p.containers.release(name)]
        try:
            if not config.HasField("image") or not config.image.image:
                raise InvalidArgument("container config must name an image")
            image = p.images.find(config.image.image)
            if image is None:
                raise NotFound(f'failed to resolve image "{config.image.image}": not found')
            item = self._create(id_, name, sandbox, pod_config, config, image, undo)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("rolling back container %s", id_)
            raise
        p.containers.add(item)
        return id_

    def _create(self, id_: str, name: str, sandbox: Item[Any], pod_config: cri.PodSandboxConfig, config: cri.ContainerConfig,
                image: Any, undo: list[Callable[[], Any]]) -> Item[ContainerMeta]:  # fmt: skip
        p = self.p
        log_path = os.path.join(pod_config.log_directory, config.log_path) if config.log_path else ""
        if config.log_path and not pod_config.log_directory:
            log_path = config.log_path
        stop_signal = str((image.config.get("config") or {}).get("StopSignal") or "")
        meta = ContainerMeta(id_, name, sandbox.meta.id, config.SerializeToString(), image.id,
                             config.image.image, log_path, now_ns(), stop_signal)  # fmt: skip
        snaps = p.client.snapshots(p.cfg.snapshotter)
        mounts = snaps.prepare(id_, image.top_chain)
        undo.append(lambda: snaps.remove(id_))
        sc = config.linux.security_context
        ns = pod_config.linux.security_context.namespace_options
        etc = self._image_etc(image.top_chain, mounts)
        user = resolve_user(
            image.config, etc.get, sc.run_as_user.value if sc.HasField("run_as_user") else None,
            sc.run_as_group.value if sc.HasField("run_as_group") else None, list(sc.supplemental_groups),
            sc.run_as_username,
        )  # fmt: skip
        paths = specs.SandboxPaths(
            id=sandbox.meta.id, pid=sandbox.status.pid, netns=sandbox.meta.netns,
            hostname_file=os.path.join(sandbox.meta.root, "hostname"), hosts_file=os.path.join(sandbox.meta.root, "hosts"),
            resolv_file=os.path.join(sandbox.meta.root, "resolv.conf"), shm=sandbox.meta.shm or specs.HOST_SHM,
            cgroup_parent=sandbox.meta.cgroup_parent, host_network=sandbox.meta.host_network,
            host_ipc=ns.ipc == cri.NODE, pid_mode=ns.pid, hostname=pod_config.hostname or os.uname().nodename,
            privileged=pod_config.linux.security_context.privileged, name=pod_config.metadata.name, namespace=pod_config.metadata.namespace, uid=pod_config.metadata.uid,
        )  # fmt: skip
        spec = specs.container_spec(id_, config, paths, image.config, user=user,
                                    restrict_oom=p.cfg.restrict_oom_score_adj)  # fmt: skip
        record = Container.with_oci_spec(
            id_, spec, image=meta.image_name, snapshotter=p.cfg.snapshotter, snapshot_key=id_, runtime=p.pods.runtime(),
            labels={KIND_LABEL: "container", "io.kubernetes.sandbox.id": sandbox.meta.id, **{k: v for k, v in config.labels.items() if k != KIND_LABEL}},
            extensions={CONTAINER_EXTENSION: Payload(CONTAINER_TYPE, meta.to_json())}, sandbox=sandbox.meta.id,
        )  # fmt: skip
        p.client.containers.create(record)
        undo.append(lambda: p.client.containers.delete(id_))
        io_dir = p.io_dir(id_)
        os.makedirs(io_dir, mode=0o700)
        undo.append(lambda: shutil.rmtree(io_dir, ignore_errors=True))
        for stream in self._streams(config):
            os.mkfifo(os.path.join(io_dir, stream), 0o600)
        if log_path:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
        item: Item[ContainerMeta] = Item(meta, self.status_path(id_))
        item.update()  # the status file exists from creation on
        return item

    @staticmethod
    def _streams(config: cri.ContainerConfig) -> list[str]:
        streams = ["stdout"] if config.tty else ["stdout", "stderr"]
        return streams + (["stdin"] if config.stdin else [])

    def _image_etc(self, chain: str, mounts: list[Any]) -> dict[str, str | None]:
        """The image's /etc/passwd and /etc/group for user lookup, read through the container's
        fresh snapshot the first time an image (its layer chain, which fixes their contents) is
        used, then kept: a mount and unmount of the rootfs less per container."""
        etc = self._etc.get(chain)
        if etc is None:
            with self._rootfs(mounts) as read:
                etc = {path: read(path) for path in ETC_FILES}
            if len(self._etc) >= ETC_CACHE:
                self._etc.pop(next(iter(self._etc)), None)
            self._etc[chain] = etc
        return etc

    @contextlib.contextmanager
    def _rootfs(self, mounts: list[Any]) -> Any:
        """The container's files, read-only, for user lookup (passwd, group)."""
        converted = readonly_mounts([CMount(m.type, m.source, m.target, list(m.options)) for m in mounts])
        scratch = os.path.join(self.p.state, "tmp")
        os.makedirs(scratch, mode=0o700, exist_ok=True)
        with temp_mount(converted, scratch) as root:

            def read(path: str) -> str | None:
                full = os.path.join(root, path.lstrip("/"))
                if os.path.islink(full) or not os.path.isfile(full):
                    return None
                with open(full, errors="replace") as f:
                    return f.read(1 << 20)

            yield read

    def status_path(self, id_: str) -> str:
        return os.path.join(self.p.root, "containers", id_, "status.json")

    # --- start ---------------------------------------------------------------------------------

    def start(self, id_: str) -> None:
        p = self.p
        item = p.containers.get(id_)
        id_ = item.meta.id
        with item.lock:
            state = self.state(item)
            if state != cri.CONTAINER_CREATED:
                raise ContainerdError(
                    f"container {id_!r} is in {STATE_NAMES[state]} state, not CONTAINER_CREATED"
                )
            sandbox = p.sandboxes.get(item.meta.sandbox_id)
            if p.pods.state(sandbox) != cri.SANDBOX_READY:
                raise ContainerdError(f"sandbox container {sandbox.meta.id!r} is not running")
            config = self.config(item)
            io_dir = p.io_dir(id_)
            streams = self._streams(config)
            paths = {s: os.path.join(io_dir, s) for s in streams}
            fifos: list[tuple[str, str]] = [(s, paths[s]) for s in ("stdout", "stderr") if s in paths]
            p.start_logs(item, fifos, shim_logs=True)
            targets = {s: self._target(item, paths, s) for s in ("stdout", "stderr")}
            mounts = p.client.snapshots(p.cfg.snapshotter).mounts(id_)
            p.waiter(id_)
            try:
                pid = p.client.tasks.create(
                    id_,
                    mounts,
                    IO(
                        stdin=paths.get("stdin", ""),
                        stdout=targets["stdout"],
                        stderr=targets["stderr"],
                        terminal=config.tty,
                    ),
                )
                p.client.tasks.start(id_)
            except ClientError as exc:
                with contextlib.suppress(ClientError):
                    p.client.tasks.delete(id_)
                self._unblock_copiers(paths)
                p.finish_logs(id_, timeout=2)
                item.update(finished_at=now_ns(), exit_code=128, reason="StartError", message=str(exc))
                raise ContainerdError(f"failed to start containerd task {id_!r}: {exc}") from None
            item.update(pid=pid, started_at=now_ns())

    def _target(self, item: Item[ContainerMeta], fifos: dict[str, str], stream: str) -> str:
        """Where the shim sends a stream: the CRI log it writes itself (the FIFO gets a live copy
        for attach), or only the FIFO when kubelet asked for no log."""
        fifo = fifos.get(stream, "")
        if not fifo or not item.meta.log_path:
            return fifo
        return shim_log_uri(item.meta.log_path, self.p.cfg.max_container_log_line_size, fifo)

    @staticmethod
    def _unblock_copiers(paths: dict[str, str]) -> None:
        """Copiers wait in open() for a writer that will never come: be that writer once."""
        for stream in ("stdout", "stderr"):
            if stream in paths:
                with contextlib.suppress(OSError):
                    os.close(os.open(paths[stream], os.O_WRONLY | os.O_NONBLOCK))

    # --- stop and remove -----------------------------------------------------------------------

    def stop(self, id_: str, timeout: int) -> None:
        p = self.p
        item = p.containers.get(id_)
        id_ = item.meta.id
        if self.state(item) != cri.CONTAINER_RUNNING:
            return
        waiter = p.waiter(id_)
        if timeout > 0:
            sig = _signal_number(item.meta.stop_signal) or signals.SIGTERM
            with contextlib.suppress(ClientNotFound):
                p.client.tasks.kill(id_, int(sig))
            if waiter.done.wait(timeout):
                self._wait_recorded(item)
                return
        with contextlib.suppress(ClientNotFound):
            p.client.tasks.kill(id_, 9, all=True)
        if not waiter.done.wait(30):
            raise ContainerdError(f"container {id_!r} did not exit after SIGKILL")
        self._wait_recorded(item)

    @staticmethod
    def _wait_recorded(item: Item[ContainerMeta]) -> None:
        item.exited.wait(30)

    def remove(self, id_: str) -> None:
        p = self.p
        item = p.containers.find(id_)
        if item is None:
            return  # idempotent
        id_ = item.meta.id
        if self.state(item) == cri.CONTAINER_RUNNING:
            self.stop(id_, 0)
        p.delete_task(id_)
        p.finish_logs(id_, timeout=2)
        with contextlib.suppress(ClientNotFound):
            p.client.containers.delete(id_)
        with contextlib.suppress(ClientNotFound):
            p.client.snapshots(p.cfg.snapshotter).remove(id_)
        shutil.rmtree(p.io_dir(id_), ignore_errors=True)
        shutil.rmtree(os.path.dirname(self.status_path(id_)), ignore_errors=True)
        p.containers.remove(id_)
        p.drop_waiter(id_)

    # --- status --------------------------------------------------------------------------------

    @staticmethod
    def config(item: Item[ContainerMeta]) -> cri.ContainerConfig:
        return cri.ContainerConfig.FromString(item.meta.config)

    @staticmethod
    def state(item: Item[ContainerMeta]) -> cri.ContainerState.ValueType:
        s = item.status
        if s.finished_at:
            return cri.CONTAINER_EXITED
        if s.started_at and s.pid:
            return cri.CONTAINER_RUNNING
        return cri.CONTAINER_CREATED

    def status(self, id_: str, verbose: bool) -> cri.ContainerStatusResponse:
        item = self.p.containers.get(id_)
        config = self.config(item)
        s = item.status
        status = cri.ContainerStatus(
            id=item.meta.id, metadata=config.metadata, state=self.state(item), created_at=item.meta.created_at,
            started_at=s.started_at, finished_at=s.finished_at, exit_code=s.exit_code, image=config.image,
            image_ref=self._image_ref(item), reason=s.reason, message=s.message, labels=config.labels,
            annotations=config.annotations, mounts=config.mounts, log_path=item.meta.log_path,
        )  # fmt: skip
        status.resources.linux.SetInParent()  # as containerd 1.6: present, zeros where nothing was asked
        if config.linux.HasField("resources"):
            status.resources.linux.CopyFrom(config.linux.resources)
        resp = cri.ContainerStatusResponse(status=status)
        if verbose:
            resp.info["info"] = json.dumps(
                {
                    "sandboxID": item.meta.sandbox_id,
                    "pid": s.pid,
                    "removing": s.removing,
                    "snapshotKey": item.meta.id,
                    "snapshotter": self.p.cfg.snapshotter,
                    "runtimeType": "io.containerd.runc.v2",
                    **self.p.verbose_runtime(item.meta.id),
                    "config": json.loads(json_format.MessageToJson(config)),
                }  # fmt: skip
            )
        return resp

    def _image_ref(self, item: Item[ContainerMeta]) -> str:
        image = self.p.images.find(item.meta.image_ref)
        if image is not None and image.repo_digests:
            return image.repo_digests[0]
        return item.meta.image_ref

    def list(self, flt: cri.ContainerFilter | None) -> builtins.list[cri.Container]:
        out = []
        for item in self.p.containers.list():
            config = self.config(item)
            state = self.state(item)
            if flt is not None and not selects(
                flt, item.meta.id, config.labels, sandbox_id=item.meta.sandbox_id, state=state
            ):
                continue
            out.append(
                cri.Container(
                    id=item.meta.id,
                    pod_sandbox_id=item.meta.sandbox_id,
                    metadata=config.metadata,
                    image=config.image,
                    image_ref=item.meta.image_ref,
                    state=state,
                    created_at=item.meta.created_at,
                    labels=config.labels,
                    annotations=config.annotations,
                )  # fmt: skip
            )
        return out

    # --- update, logs --------------------------------------------------------------------------

    def update(self, id_: str, resources: cri.LinuxContainerResources) -> None:
        p = self.p
        item = p.containers.get(id_)
        id_ = item.meta.id
        with item.lock:
            # as containerd 1.6: any state; a task is updated only while it runs, the spec always
            state = self.state(item)
            config = self.config(item)
            config.linux.resources.CopyFrom(resources)
            record = p.client.containers.get(id_)
            spec = record.oci_spec()
            spec["linux"].setdefault("resources", {}).update(specs.resources_json(resources))
            if state == cri.CONTAINER_RUNNING:
                p.client.tasks.update(id_, specs.resources_json(resources))
            item.meta.config = config.SerializeToString()
            updated = Container.with_oci_spec(
                id_, spec, extensions={CONTAINER_EXTENSION: Payload(CONTAINER_TYPE, item.meta.to_json())}
            )
            p.client.containers.update(updated, ["spec", "extensions"])

    def reopen_log(self, id_: str) -> None:
        item = self.p.containers.get(id_)
        if self.state(item) != cri.CONTAINER_RUNNING:
            raise ContainerdError("container is not running")
        self.p.reopen_log(item)

    # --- exec ----------------------------------------------------------------------------------

    def exec_sync(self, id_: str, cmd: builtins.list[str], timeout: int) -> cri.ExecSyncResponse:
        p = self.p
        item = p.containers.get(id_)
        id_ = item.meta.id
        state = self.state(item)
        if state != cri.CONTAINER_RUNNING:
            raise ContainerdError(f"container is in {STATE_NAMES[state]} state")
        if not cmd:
            raise InvalidArgument("exec command must not be empty")
        record = p.client.containers.get(id_)
        process = specs.exec_process(record.oci_spec(), cmd, False)
        exec_id = secrets.token_hex(16)
        io_dir = os.path.join(p.io_dir(id_), f"exec-{exec_id}")
        os.makedirs(io_dir, mode=0o700)
        outputs: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        readers = []
        try:
            for stream in outputs:
                path = os.path.join(io_dir, stream)
                os.mkfifo(path, 0o600)
                t = threading.Thread(target=_collect, args=(path, outputs[stream]), daemon=True)
                t.start()
                readers.append(t)
            waiter = p.waiter(id_, exec_id)
            try:
                p.client.tasks.exec(
                    id_,
                    exec_id,
                    process,
                    IO(stdout=os.path.join(io_dir, "stdout"), stderr=os.path.join(io_dir, "stderr")),
                )
                p.client.tasks.start(id_, exec_id)
            except ClientError as exc:
                _unblock(io_dir)
                raise ContainerdError(f"failed to exec in container: {exc}") from None
            if not waiter.done.wait(timeout if timeout > 0 else None):
                with contextlib.suppress(ClientError):
                    p.client.tasks.kill(id_, 9, exec_id=exec_id)
                waiter.done.wait(10)
                self._delete_exec(id_, exec_id)
                raise DeadlineExceeded(f"timeout {timeout}s exceeded: context deadline exceeded")
            for t in readers:
                t.join(10)
            self._delete_exec(id_, exec_id)
            return cri.ExecSyncResponse(
                stdout=bytes(outputs["stdout"]), stderr=bytes(outputs["stderr"]), exit_code=waiter.status
            )
        finally:
            _unblock(io_dir)
            shutil.rmtree(io_dir, ignore_errors=True)
            p.drop_waiter(id_, exec_id)

    def _delete_exec(self, id_: str, exec_id: str) -> None:
        with contextlib.suppress(ClientError):
            self.p.client.tasks.delete_process(id_, exec_id)

    # --- restart -------------------------------------------------------------------------------

    def adopt(self, record: Container, task: Process | None) -> None:
        p = self.p
        meta = ContainerMeta.from_json(record.extensions[CONTAINER_EXTENSION].value)
        status = Item.load_status(self.status_path(meta.id))
        item: Item[ContainerMeta] = Item(meta, self.status_path(meta.id), status)
        p.containers.add(item)
        config = self.config(item)
        paths = {s: os.path.join(p.io_dir(meta.id), s) for s in self._streams(config)}
        fifos: list[tuple[str, str]] = [(s, paths[s]) for s in ("stdout", "stderr") if s in paths]
        # the shim writes the log (k8s-file://) unless an older daemon started the container
        shim_logs = task is not None and task.io.stdout.startswith(SHIM_LOG_SCHEME)
        if task is not None and task.status.alive and item.status.started_at:
            p.start_logs(item, fifos, shim_logs)
            return
        if task is not None and not task.status.alive:  # exited while the daemon was down
            if task.status.name == "STOPPED" and item.status.started_at and not shim_logs:
                p.start_logs(item, fifos, shim_logs)  # what the shim still holds goes to the log
            p.handle_exit(meta.id, task.exit_status, task.exited_at or now_ns())
        elif task is None and item.status.started_at and not item.status.finished_at:
            item.update(pid=0, finished_at=now_ns(), exit_code=255, reason="Unknown")


def _collect(path: str, into: bytearray) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        while data := os.read(fd, 65536):
            if len(into) < EXEC_OUTPUT_LIMIT:
                into.extend(data[: EXEC_OUTPUT_LIMIT - len(into)])
    finally:
        os.close(fd)


def _unblock(io_dir: str) -> None:
    for stream in ("stdout", "stderr"):
        with contextlib.suppress(OSError):
            os.close(os.open(os.path.join(io_dir, stream), os.O_WRONLY | os.O_NONBLOCK))


def _signal_number(name: str) -> int:
    if not name:
        return 0
    if name.isdigit():
        return int(name)
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signals, name, 0))


__all__ = ["Containers"]
