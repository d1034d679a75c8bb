"""The container's init, in two forked stages.

Stage 1 joins the namespaces given by path, creates the user namespace (the parent
writes its id maps) and then the other new namespaces, and forks stage 2 so that stage 2
is pid 1 of a new pid namespace. Stage 1 then exits, so stage 2 is re-parented to the
nearest subreaper (the shim, or `pyrunc run`).

Stage 2 builds the root filesystem, asks the parent to run the runtime-namespace hooks,
switches root, sets up the terminal, reports "ready" and blocks on the exec fifo until
`pyrunc start` opens it. Only then does it drop privileges and exec the user's process.
"""

from __future__ import annotations

import errno
import os

from runtime import process
from runtime import spec as specmod
from runtime.errors import PyruncError
from runtime.linux import hooks, libc, mounts, namespaces
from runtime.sync import Channel, report_and_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


class InitConfig:
    """Everything the forked init needs; it crosses the fork as a plain object."""

    __slots__ = (
        "container_id", "spec", "rootfs", "fifo_path", "cgroup_mounts", "console_fd", "no_pivot", "preserve_fds",
        "new_keyring",
    )  # fmt: skip

    def __init__(
        self,
        container_id: str,
        spec: dict[str, Any],
        rootfs: str,
        fifo_path: str,
        cgroup_mounts: dict[str, str],
        console_fd: int | None,
        no_pivot: bool,
        preserve_fds: int,
        new_keyring: bool,
    ) -> None:
        self.container_id = container_id
        self.new_keyring = new_keyring
        self.spec = spec
        self.rootfs = rootfs
        self.fifo_path = fifo_path
        self.cgroup_mounts = cgroup_mounts
        self.console_fd = console_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds


def stage1(cfg: InitConfig, chan: Channel) -> NoReturn:
    try:
        chan.expect("go")
        new_flags, joins = namespaces.split(specmod.namespaces(cfg.spec))
        if new_flags & libc.CLONE_NEWNET:
            # Loaded now: once in a user namespace, the mapped root may not reach the host's library.
            from runtime.linux import netlink
        namespaces.join(namespaces.open_paths(joins))
        if new_flags & libc.CLONE_NEWUSER:
            libc.unshare(libc.CLONE_NEWUSER)
            chan.send("userns")
            chan.expect("mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            new_flags &= ~libc.CLONE_NEWUSER
        if new_flags:
            libc.unshare(new_flags)
        if new_flags & libc.CLONE_NEWNET:
            _loopback_up(netlink)
        pid = os.fork()
        if pid == 0:
            stage2(cfg, chan)
        chan.send("pid", pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001 - a forked child must report, never unwind into the caller
        report_and_exit(chan, exc)
    os._exit(1)


def stage2(cfg: InitConfig, chan: Channel) -> NoReturn:
    try:
        ready = _prepare(cfg, chan)
    except BaseException as exc:  # noqa: BLE001
        report_and_exit(chan, exc)
    # From here on the creator has exited; a failure can only be told on the container's stderr.
    try:
        _wait_for_start_then_exec(cfg, ready)
    except BaseException as exc:  # noqa: BLE001
        os.write(2, f"pyrunc init: {exc}\n".encode())
        os._exit(127)
    os._exit(127)


class _Ready:
    """What the set-up phase hands to the post-start phase."""

    __slots__ = ("exe", "fifo_fd", "seccomp_filter", "state")

    def __init__(self, exe: str, fifo_fd: int, seccomp_filter: Any, state: dict[str, Any]) -> None:
        self.exe = exe
        self.fifo_fd = fifo_fd
        self.seccomp_filter = seccomp_filter
        self.state = state


def _prepare(cfg: InitConfig, chan: Channel) -> _Ready:
    spec = cfg.spec
    linux = spec.get("linux") or {}
    proc = spec["process"]
    rootfs = cfg.rootfs
    has_mntns = specmod.has_namespace(spec, "mount")
    in_userns = specmod.has_namespace(spec, "user")
    os.setsid()
    # Everything used after the root switch must be loaded now: the host's modules are gone then.
    if spec.get("hooks"):
        import subprocess  # noqa: F401 - startContainer hooks run after pivot_root
    if proc.get("terminal"):
        from runtime.linux import console
    if cfg.new_keyring:
        try:
            libc.join_session_keyring(f"_ses.{cfg.container_id}")
        except OSError as exc:
            # Kernels without keyrings (or seccomp'd hosts) refuse it; runc carries on there too.
            if exc.errno not in (errno.ENOSYS, errno.EPERM, errno.EACCES):
                raise
    seccomp_filter = None
    if linux.get("seccomp"):
        from runtime.linux import seccomp

        seccomp_filter = seccomp.build_filter(linux["seccomp"])

    if has_mntns:
        mounts.prepare_root(rootfs, linux.get("rootfsPropagation"))
        cgroupns = specmod.has_namespace(spec, "cgroup")
        dev_is_bind = False
        for entry in spec.get("mounts") or []:
            mounts.mount_entry(rootfs, entry, cfg.cgroup_mounts, cgroupns)
            if entry.get("destination", "").rstrip("/") == "/dev" and "bind" in (entry.get("type") or "") + "".join(
                entry.get("options") or []
            ):
                dev_is_bind = True
        mounts.create_devices(rootfs, linux.get("devices") or [], in_userns, dev_is_bind)
        mounts.create_dev_symlinks(rootfs)
    os.makedirs(mounts.secure_join(rootfs, proc["cwd"]), exist_ok=True)
    fifo_fd = os.open(cfg.fifo_path, os.O_PATH | os.O_CLOEXEC)

    chan.send("hooks")
    state = chan.expect("hooks-done")["state"]
    hooks.run(spec.get("hooks"), "createContainer", state)

    if has_mntns:
        if cfg.no_pivot:
            mounts.move_root(rootfs)
        else:
            mounts.pivot_into(rootfs)
    else:
        os.chroot(rootfs)
        os.chdir("/")

    if proc.get("terminal"):
        if cfg.console_fd is None:
            raise PyruncError("process.terminal is true but no console socket was given (use --console-socket)")
        master, slave_path = console.open_pty()
        size = proc.get("consoleSize")
        if size:
            libc.set_winsize(master, size.get("height", 0), size.get("width", 0))
        console.send_master(cfg.console_fd, master)
        os.close(master)
        if os.path.exists("/dev/console") or has_mntns:
            if not os.path.exists("/dev/console"):
                os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            libc.mount(slave_path, "/dev/console", None, libc.MS_BIND)
        console.attach_slave(slave_path)
    if cfg.console_fd is not None:
        os.close(cfg.console_fd)

    if spec.get("hostname"):
        libc.sethostname(spec["hostname"])
    if spec.get("domainname"):
        libc.setdomainname(spec["domainname"])
    for key, value in (linux.get("sysctl") or {}).items():
        _write_sysctl(key, value)
    if has_mntns:
        mounts.set_root_propagation(linux.get("rootfsPropagation"))
        mounts.mask_paths(linux.get("maskedPaths") or [])
        mounts.readonly_paths(linux.get("readonlyPaths") or [])
        if spec["root"].get("readonly"):
            mounts.remount_root_readonly()

    process.apply_rlimits(proc.get("rlimits") or [])
    os.chdir(proc["cwd"])
    exe = process.resolve_executable(proc["args"][0], process.env_dict(proc.get("env") or []))
    chan.send("ready")
    chan.close()
    return _Ready(exe, fifo_fd, seccomp_filter, state)


def _wait_for_start_then_exec(cfg: InitConfig, ready: _Ready) -> NoReturn:
    # Reopening through /proc gives a real write end; this open blocks until `start` opens the read end.
    fd = os.open(f"/proc/self/fd/{ready.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(ready.fifo_fd)
    spec = cfg.spec
    hooks.run(spec.get("hooks"), "startContainer", {**ready.state, "status": "running"})
    process.finalize_and_exec(
        spec["process"], ready.exe, ready.seccomp_filter, cfg.preserve_fds, specmod.has_namespace(spec, "user")
    )


def _loopback_up(netlink: Any) -> None:
    # runc's "loopback" network strategy: a namespace it creates gets `lo` up (one joined by path is left alone).
    try:
        netlink.loopback_up()
    except OSError as exc:
        raise PyruncError(f"cannot bring up the loopback interface: {exc.strerror}") from None


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise PyruncError(f"cannot set sysctl {key}={value}: {exc.strerror}") from None
