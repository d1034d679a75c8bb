"""`pyrunc create`: build the container up to the point where only exec of the user process is left."""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import errno
import os

from common.mountinfo import top_mount_id
from common.procfs import process_start_time
from runtime import process
from runtime import state as statemod
from runtime.errors import InitFailed, PyruncError
from runtime.init import InitConfig, stage1
from runtime.linux import capabilities, hooks, namespaces, sysctl
from runtime.linux.cgroups import CgroupError, new_manager
from runtime.linux.mounts import detach_if_ours
from runtime.spec import has_namespace, load_bundle
from runtime.sync import Channel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CreateOptions:
    __slots__ = (
        "root", "container_id", "bundle", "pid_file", "console_socket", "no_pivot", "preserve_fds", "console_fd",
        "new_keyring", "preloaded",
    )  # fmt: skip

    def __init__(
        self,
        root: str,
        container_id: str,
        bundle: str,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        preserve_fds: int = 0,
        console_fd: int | None = None,
        new_keyring: bool = True,
    ) -> None:
        self.new_keyring = new_keyring
        # `run` reads the bundle first (it must know about the terminal) and hands it over here.
        self.preloaded: tuple[dict[str, Any], str] | None = None
        self.root = root
        self.container_id = container_id
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        # `run` with a terminal and no console socket passes its own end of a socketpair here.
        self.console_fd = console_fd


def _check_spec(spec: dict[str, Any]) -> None:
    proc = spec["process"]
    if proc.get("capabilities"):
        capabilities.validate(proc["capabilities"])
    process.validate_rlimits(proc.get("rlimits") or [])
    seccomp_cfg = (spec.get("linux") or {}).get("seccomp")
    if seccomp_cfg:
        from runtime.linux import seccomp

        try:
            seccomp.validate(seccomp_cfg)
        except seccomp.SeccompError as exc:
            raise PyruncError(str(exc)) from None
    has_uts = any(ns.get("type") == "uts" for ns in (spec.get("linux") or {}).get("namespaces") or [])
    if spec.get("hostname") and not has_uts:
        raise PyruncError("unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and not has_uts:
        raise PyruncError("unable to set domainname without a private UTS namespace")
    linux = spec.get("linux") or {}
    if (linux.get("maskedPaths") or linux.get("readonlyPaths")) and not has_namespace(spec, "mount"):
        # Their mounts would be made in the runtime's own /proc and /sys (runc's wording).
        raise PyruncError("unable to restrict sys entries without a private MNT namespace")
    sysctl.validate(spec)


def effective_resources(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's resources plus the device rules runc always appends: the default /dev nodes, ptys,
    mknod of anything. A device of linux.devices gets no rule of its own (runc 1.1 adds none):
    the spec's rules decide what the container may do with it, e.g. read-only."""
    from runtime.linux.cgroups import RUNC_DEFAULT_DEVICE_RULES

    linux = spec.get("linux") or {}
    resources = dict(linux.get("resources") or {})
    if "devices" not in resources:
        return resources
    rules = list(resources["devices"])
    for rule in RUNC_DEFAULT_DEVICE_RULES:
        rules.append(
            {
                "allow": rule.allow,
                "type": rule.type,
                "major": rule.major,
                "minor": rule.minor,
                "access": rule.access,
            }
        )
    resources["devices"] = rules
    return resources


def create(opts: CreateOptions) -> statemod.ContainerState:
    statemod.validate_id(opts.container_id)
    spec, rootfs = opts.preloaded or load_bundle(opts.bundle)
    _check_spec(spec)
    os.makedirs(opts.root, mode=0o711, exist_ok=True)
    container_dir = os.path.join(opts.root, opts.container_id)
    try:
        os.mkdir(container_dir, 0o711)
    except FileExistsError:
        raise PyruncError(f"container with given ID already exists: {opts.container_id}") from None
    except OSError as exc:
        raise PyruncError(f"cannot create state directory {container_dir}: {exc.strerror}") from None

    linux = spec.get("linux") or {}
    cgroups = None
    init_pid = 0
    # Without a mount namespace the init mounts in ours, below a bind of the rootfs: whatever is
    # on top of the rootfs now is not ours.
    shared_mounts = not has_namespace(spec, "mount")
    mount_before = top_mount_id(rootfs) if shared_mounts else 0
    try:
        fifo_path = os.path.join(container_dir, statemod.EXEC_FIFO)
        os.mkfifo(fifo_path, 0o622)
        # The init reopens the fifo after switching to the container's root, which may be an unprivileged host uid.
        os.chown(fifo_path, _host_id(linux.get("uidMappings")), _host_id(linux.get("gidMappings")))
        cgroups = new_manager(linux.get("cgroupsPath") or None, opts.container_id)
        cgroups.create()
        cgroups.set_resources(effective_resources(spec))
        console_sock = None
        console_fd = opts.console_fd
        if opts.console_socket:
            from runtime.linux import console

            console_sock = console.connect(opts.console_socket)
            console_fd = console_sock.fileno()
        cfg = InitConfig(
            container_id=opts.container_id,
            new_keyring=opts.new_keyring,
            spec=spec,
            rootfs=rootfs,
            fifo_path=fifo_path,
            cgroup_mounts=cgroups.mount_sources(),
            console_fd=console_fd,
            no_pivot=opts.no_pivot,
            preserve_fds=opts.preserve_fds,
        )
        parent, child = Channel.pair()
        first = os.fork()
        if first == 0:
            parent.close()
            stage1(cfg, child)
        child.close()
        if console_sock is not None:
            console_sock.close()
        try:
            cgroups.add_process(first)
            parent.send("go")
            if any(ns.get("type") == "user" and not ns.get("path") for ns in linux.get("namespaces") or []):
                parent.expect("userns")
                namespaces.write_id_maps(
                    first, linux.get("uidMappings") or [], linux.get("gidMappings") or []
                )
                parent.send("mapped")
            init_pid = int(parent.expect("pid")["pid"])
        finally:
            os.waitpid(first, 0)
        proc = spec["process"]
        if proc.get("oomScoreAdj") is not None:
            process.set_oom_score_adj(proc["oomScoreAdj"], init_pid)
        cs = statemod.ContainerState(
            id=opts.container_id,
            bundle=os.path.abspath(opts.bundle),
            rootfs=rootfs,
            pid=init_pid,
            pid_start=process_start_time(init_pid) or 0,
            created=statemod.now_rfc3339(),
            config=spec,
            cgroup=cgroups.to_dict(),
            owner="",
            annotations=spec.get("annotations") or {},
        )
        parent.expect("hooks")  # the rootfs is ready
        if shared_mounts and top_mount_id(rootfs) != mount_before:
            cs.rootfs_mount = top_mount_id(rootfs)
        cs.save(opts.root)
        creating = statemod.oci_state(opts.root, cs, "creating")
        hooks.run(spec.get("hooks"), "prestart", creating)
        hooks.run(spec.get("hooks"), "createRuntime", creating)
        parent.send("hooks-done", state=creating)
        parent.expect("ready")
        parent.close()
        if opts.pid_file:
            statemod.write_state_file(os.path.abspath(opts.pid_file), str(init_pid).encode(), 0o644)
        return cs
    except BaseException as exc:
        _abort(init_pid, cgroups, opts.root, opts.container_id)
        if shared_mounts and top_mount_id(rootfs) != mount_before:
            detach_if_ours(rootfs, top_mount_id(rootfs))
        if isinstance(exc, CgroupError):
            raise PyruncError(str(exc)) from None
        if isinstance(exc, InitFailed):  # libcontainer's words for what the init could not do
            raise PyruncError(f"unable to start container process: {exc}") from None
        if isinstance(exc, OSError) and not isinstance(exc, PyruncError):
            raise PyruncError(
                f"{exc.strerror or exc}{' ' + str(exc.filename) if exc.filename else ''}"
            ) from None
        raise


def _host_id(mappings: list[dict[str, int]] | None) -> int:
    """The host id that container id 0 maps to (0 without a user namespace)."""
    for m in mappings or []:
        if m["containerID"] <= 0 < m["containerID"] + m["size"] or m["containerID"] == 0:
            return int(m["hostID"])
    return 0


def _abort(init_pid: int, cgroups: Any, root: str, container_id: str) -> None:
    """Undo a half-made container: nothing of it may outlive a failed create."""
    if init_pid:
        try:
            os.kill(init_pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(init_pid, 0)  # only succeeds when we are its subreaper (`run`)
        except ChildProcessError:
            pass
        except OSError as exc:
            if exc.errno != errno.ECHILD:
                raise
    if cgroups is not None:
        try:
            cgroups.destroy()
        except Exception:  # noqa: BLE001 - best effort; the original error matters more
            pass
    statemod.remove_dir(root, container_id)
