"""RUN: the command in a real container through pycontainerd, as dockerd's classic builder
runs it.

The container's root is prepared on the parent's chain in two snapshots, as dockerd layers a
container: an "init" snapshot with what dockerd's init layer holds (mount points,
/.dockerenv; engine/initlayer.py), committed, and the writable one on top. The OCI spec is
pydockerd's (engine/spec.py: Docker's capabilities, masked paths, seccomp profile) with the
stage's env, user, working directory and the build's resources; its network is the build's
mode: `none` and the default get a network namespace of their own with no interface but
loopback, `host` the host's, and a NetworkHook (bridge networking, when pydockerd has it)
may attach the container. Output goes to the progress stream as it comes, stderr in red as
dockerd marks it. Afterwards the caller diffs the writable snapshot against the init one, so
the layer holds only what the command changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from containerd.client import IO, Container, ContainerdError, NotFound, Runtime
from dockerd.builder.errors import BuildFailed
from dockerd.builder.layers import Layers, new_key
from dockerd.builder.recovery import LABEL_CONTAINER
from dockerd.engine import initlayer, scoped
from dockerd.engine import spec as oci_spec
from dockerd.engine.container.accounts import lookup_user
from dockerd.engine.container.task import go_message
from dockerd.engine.errors import EngineError
from dockerd.engine.security import SecurityDefaults
from dockerd.engine.users import ExecUser

if TYPE_CHECKING:
    from containerd.client import Client, Mount

Output = Callable[[str, bytes], None]  # (stream name, data)


class NetworkAttachment(Protocol):
    def close(self) -> None: ...


class NetworkHook(Protocol):
    """Bridge networking for build containers (another part of pydockerd provides it): given
    the container's ID and OCI spec, set it up (e.g. a network namespace path in the spec's
    namespaces, /etc/hosts and resolv.conf contents) and return what to release afterwards."""

    def attach(self, container_id: str, mode: str, spec: dict[str, Any]) -> NetworkAttachment: ...


@dataclass(frozen=True)
class RunSettings:
    """What the build request fixes for every RUN."""

    runtime: Runtime = field(default_factory=Runtime)
    cgroup_parent: str = "/pydocker-build"
    network_mode: str = "default"  # default, none, host, or a network the hook knows
    extra_hosts: Sequence[str] = ()
    host_config: Mapping[str, Any] = field(default_factory=dict)  # ShmSize, Memory, CpuShares, ...
    security: SecurityDefaults = field(default_factory=SecurityDefaults)
    network_hook: NetworkHook | None = None


@dataclass(frozen=True)
class RunRequest:
    argv: list[str]
    env: list[str]
    workdir: str
    user: str
    network_mode: str = ""  # RUN --network; "" : the build's


@dataclass
class Prepared:
    """A build container's snapshots: the committed init one and the writable one on it."""

    container_id: str
    init: str
    work: str
    mounts: list[Mount]
    uid_gid: tuple[int, int]


class Runner:
    def __init__(self, client: Client, layers: Layers, settings: RunSettings, tmp_dir: str) -> None:
        self.client = client
        self.layers = layers
        self.settings = settings
        self.tmp_dir = tmp_dir

    @contextlib.contextmanager
    def container_root(self, parent_chain: str, request: RunRequest) -> Iterator[Prepared]:
        """The snapshots a RUN container uses, removed at the end of the block."""
        cid = secrets.token_hex(32)
        init_work, init, work = new_key("init-work"), f"build-{cid}-init", f"build-{cid}"
        try:
            mounts = self.layers.snapshots.prepare(init_work, parent_chain)
            with self.layers.mounted(mounts) as root:
                initlayer.setup(root)
                ids = _user_ids(root, request.user)
                _ensure_dir(root, request.workdir)
            self.layers.snapshots.commit(init, init_work)
            work_mounts = self.layers.snapshots.prepare(work, init)
            yield Prepared(cid, init, work, work_mounts, ids)
        finally:
            self.layers.remove_quietly(work, init, init_work)

    def run(
        self, prepared: Prepared, request: RunRequest, output: Output, announce: Callable[[str], None]
    ) -> None:
        """Run the command in a container on PREPARED; BuildFailed on a non-zero exit."""
        cid = prepared.container_id
        files = tempfile.mkdtemp(prefix=f"run-{cid[:12]}-", dir=self.tmp_dir)
        attachment: NetworkAttachment | None = None
        created = False
        try:
            mode = request.network_mode or self.settings.network_mode
            spec = self._spec(cid, request, prepared.uid_gid, files, mode)
            if mode not in ("default", "none", "host") or (mode == "default" and self.settings.network_hook):
                if self.settings.network_hook is None:
                    raise BuildFailed(f"network mode {mode!r} is not supported by this builder")
                attachment = self.settings.network_hook.attach(cid, mode, spec)
            record = Container.with_oci_spec(
                cid, spec, runtime=self.settings.runtime, snapshotter=self.layers.snapshotter, snapshot_key=prepared.work,
                labels={LABEL_CONTAINER: "true"},
            )  # fmt: skip
            self.client.containers.create(record)
            created = True
            announce(cid)
            self._run_task(cid, prepared.mounts, files, output, request)
        finally:
            if created:
                with contextlib.suppress(ContainerdError):
                    self.client.containers.delete(cid)
            if attachment is not None:
                attachment.close()
            shutil.rmtree(files, ignore_errors=True)

    def _spec(
        self, cid: str, request: RunRequest, ids: tuple[int, int], files: str, mode: str
    ) -> dict[str, Any]:
        hosts = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"127.0.1.1\t{cid[:12]}",
        ]
        for entry in self.settings.extra_hosts:
            name, _, address = entry.partition(":")
            hosts.append(f"{address}\t{name}")
        _write(files, "hosts", "\n".join(hosts) + "\n")
        _write(files, "hostname", cid[:12] + "\n")
        _write(files, "resolv.conf", _resolv_conf())
        config = {
            "Cmd": request.argv,
            "Entrypoint": [],
            "Env": request.env,
            "WorkingDir": request.workdir,
            "Hostname": cid[:12],
        }
        host = dict(self.settings.host_config)
        try:
            # dockerd's user lookup lists the primary gid among the supplementary groups.
            inputs = oci_spec.private_inputs(host, ExecUser(ids[0], ids[1], [ids[1]]))
            spec = oci_spec.build(
                cid, config, host, {}, inputs, files, self.settings.cgroup_parent, self.settings.security
            )
        except EngineError as exc:
            raise BuildFailed(str(exc)) from None
        if mode == "host":
            # the host's network namespace: no namespace, and none of the per-namespace network
            # sysctls dockerd sets for a container's own (the runtime refuses them there)
            spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
            sysctls = spec["linux"].get("sysctl") or {}
            spec["linux"]["sysctl"] = {k: v for k, v in sysctls.items() if not k.startswith("net.")}
        return spec

    def _run_task(
        self, cid: str, mounts: list[Mount], files: str, output: Output, request: RunRequest
    ) -> None:
        fifos = {name: os.path.join(files, name) for name in ("stdout", "stderr")}
        readers: list[threading.Thread] = []
        finished = threading.Event()
        for name, path in fifos.items():
            os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            readers.append(threading.Thread(target=_pump, args=(fd, name, output, finished), daemon=True))
        for thread in readers:
            thread.start()
        task_made = False
        try:
            try:
                self.client.tasks.create(cid, mounts, IO(stdout=fifos["stdout"], stderr=fifos["stderr"]))
                task_made = True
                self.client.tasks.start(cid)
            except ContainerdError as exc:
                raise BuildFailed(go_message(exc)) from None
            status = self.client.tasks.wait(cid).status
        finally:
            if task_made:
                with contextlib.suppress(ContainerdError):
                    if self.client.tasks.get(cid).status.alive:
                        self.client.tasks.kill(cid, 9, all=True)
                        self.client.tasks.wait(cid, timeout=30)
                with contextlib.suppress(NotFound, ContainerdError):
                    self.client.tasks.delete(cid)
            # The process has exited: the readers take what is left and stop (the shim may
            # keep its ends of the FIFOs open, so EOF is not what ends them).
            finished.set()
            for thread in readers:
                thread.join(30)
        if status != 0:
            raise BuildFailed(
                f"The command '{' '.join(request.argv)}' returned a non-zero code: {status}", status
            )


def _pump(fd: int, name: str, output: Output, finished: threading.Event) -> None:
    """Copy what the FIFO gives to OUTPUT until EOF, or until the process has finished and
    nothing more came for a moment."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    quiet = 0
    try:
        while True:
            if not poller.poll(50):
                if finished.is_set():
                    quiet += 1
                    if quiet >= 4:
                        return
                continue
            quiet = 0
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                if finished.is_set():
                    return
                time.sleep(0.05)  # no writer yet (the shim opens its end when the task starts)
                continue
            output(name, data)
    finally:
        os.close(fd)


def _write(directory: str, name: str, text: str) -> None:
    with open(os.path.join(directory, name), "w") as f:
        f.write(text)


def _resolv_conf() -> str:
    """The host's resolver settings without loopback name servers (unreachable from the
    container's own network namespace), as dockerd filters them."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    kept = [
        line
        for line in lines
        if not (
            line.startswith("nameserver")
            and line.split()[1:2]
            and line.split()[1].startswith(("127.", "::1"))
        )
    ]
    return "\n".join(kept) + "\n"


def _user_ids(root: str, user: str) -> tuple[int, int]:
    """uid and gid of USER in the container's root (its /etc/passwd and /etc/group)."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return int(name), int(group or 0)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        passwd = (scoped.read_file(fd, "/etc/passwd", 8 << 20) or b"").decode(errors="replace")
        groups = (scoped.read_file(fd, "/etc/group", 8 << 20) or b"").decode(errors="replace")
    finally:
        os.close(fd)
    try:
        return lookup_user(user, passwd, groups)
    except EngineError as exc:
        raise BuildFailed(str(exc)) from None


def _ensure_dir(root: str, path: str) -> None:
    """The working directory must exist for the runtime to enter it (it is then part of the
    init snapshot, not of the step's layer, unless the command changes it)."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError), scoped.resolve(fd, path or "/", mkdirs=True):
            pass
    finally:
        os.close(fd)
