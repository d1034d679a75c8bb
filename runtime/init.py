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

from common import libc
from runtime import process
from runtime import spec as specmod
from runtime.errors import PyruncError
from runtime.linux import capabilities, hooks, inroot, mounts, namespaces
from runtime.sync import RELEASED, Channel, failure_record, report_and_exit

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
        # Until the user's program is exec'd, we are the host's Python: nobody in the container
        # may open our /proc/PID/exe (or fd/, mem) without CAP_SYS_PTRACE over us (CVE-2019-5736).
        # Stage 2 inherits it; execve makes the user's process dumpable again.
        libc.set_dumpable(False)
        chan.expect("go")
        new_flags, joins = namespaces.split(specmod.namespaces(cfg.spec))
        if new_flags & libc.CLONE_NEWNET:
            # Loaded now: once in a user namespace, the mapped root may not reach the host's library.
            from runtime.linux import netlink
        namespaces.join(namespaces.open_paths(joins))
        if any(kind == "user" for kind, _ in joins):
            # Our host ids mean nothing in a joined user namespace (files we made would fail with
            # EOVERFLOW): become its root, as runc's nsexec does.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
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
    # From here on the creator has exited: `start`, which released us, hears of a failure
    # through the exec fifo (the container's stderr only if that is gone).
    status_fd = -1
    try:
        status_fd = _wait_for_start(ready)
        _exec_user_process(cfg, ready, status_fd)
    except BaseException as exc:  # noqa: BLE001
        _report_after_start(status_fd, exc)
    os._exit(127)


def _report_after_start(status_fd: int, exc: BaseException) -> None:
    record = failure_record(exc)
    try:
        if status_fd < 0:
            raise OSError
        os.write(status_fd, record)
    except OSError:
        os.write(2, b"pyrunc init: " + record[1:] + b"\n")


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

    _build_root(cfg, has_mntns, in_userns)
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
        # No mount namespace of its own: pivot_root would turn the host's upside down.
        os.chroot(rootfs)
        os.chdir("/")

    if proc.get("terminal"):
        if cfg.console_fd is None:
            raise PyruncError(
                "process.terminal is true but no console socket was given (use --console-socket)"
            )
        master, slave_path = console.open_pty()
        size = proc.get("consoleSize")
        if size:
            libc.set_winsize(master, size.get("height", 0), size.get("width", 0))
        console.send_master(cfg.console_fd, master)
        os.close(master)
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
    # "/" is our bind of the rootfs either way (without a mount namespace, in the host's).
    mounts.set_root_propagation(linux.get("rootfsPropagation"))
    if has_mntns:  # create refuses these without one, as runc does
        mounts.mask_paths(linux.get("maskedPaths") or [])
        mounts.readonly_paths(linux.get("readonlyPaths") or [])
    if spec["root"].get("readonly"):
        mounts.remount_root_readonly()

    process.apply_rlimits(proc.get("rlimits") or [])
    if proc.get("capabilities") is not None:
        capabilities.check_grantable(proc["capabilities"])
    inroot.chdir(proc["cwd"])
    exe = process.resolve_executable(proc["args"][0], process.env_dict(proc.get("env") or []))
    chan.send("ready")
    chan.close()
    return _Ready(exe, fifo_fd, seccomp_filter, state)


def _build_root(cfg: InitConfig, has_mntns: bool, in_userns: bool) -> None:
    """The spec's mounts and /dev below the rootfs, and the working directory, before the switch.

    Without a mount namespace the container shares the runtime's, so its mounts are made there
    (the spec: a namespace not listed is the runtime's), all below our bind of the rootfs."""
    spec = cfg.spec
    linux = spec.get("linux") or {}
    root = mounts.prepare_root(cfg.rootfs, linux.get("rootfsPropagation"), own_namespace=has_mntns)
    try:
        cgroupns = specmod.has_namespace(spec, "cgroup")
        dev_is_bind = False
        for entry in spec.get("mounts") or []:
            mounts.mount_entry(root, entry, cfg.cgroup_mounts, cgroupns)
            if entry.get("destination", "").rstrip("/") == "/dev" and "bind" in (
                entry.get("type") or ""
            ) + "".join(entry.get("options") or []):
                dev_is_bind = True
        mounts.create_devices(root, linux.get("devices") or [], in_userns, dev_is_bind)
        mounts.create_dev_symlinks(root)
        try:
            os.close(inroot.mkdir_all(root, spec["process"]["cwd"]))
        except OSError as exc:
            raise inroot.refusal("cwd", spec["process"]["cwd"], exc) from None
    finally:
        os.close(root)


def _wait_for_start(ready: _Ready) -> int:
    """Block until `start` opens the exec fifo; the fifo's write end, for what happens next."""
    # Reopening through /proc gives a real write end; this open blocks until `start` opens the read end.
    fd = os.open(f"/proc/self/fd/{ready.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, RELEASED)
    os.close(ready.fifo_fd)
    return fd


def _exec_user_process(cfg: InitConfig, ready: _Ready, status_fd: int) -> NoReturn:
    spec = cfg.spec
    hooks.run(spec.get("hooks"), "startContainer", {**ready.state, "status": "running"})
    process.finalize_and_exec(
        spec["process"],
        ready.exe,
        ready.seccomp_filter,
        cfg.preserve_fds,
        specmod.has_namespace(spec, "user"),
        status_fd,
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
