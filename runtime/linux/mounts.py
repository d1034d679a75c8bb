"""Building the container's filesystem view inside its new mount namespace.

Order (as the OCI spec and runc do it): make the host's mounts slaves so nothing we do
propagates back, bind the rootfs onto itself, mount the spec's mounts in order, populate
/dev, then switch root (pivot_root, or MS_MOVE+chroot with --no-pivot). Every path from the
spec is looked up inside the rootfs by runtime/linux/inroot.py (openat2, RESOLVE_IN_ROOT)
and mounted on through its fd, so neither a hostile image nor a container racing us on a
shared volume can point a mount at the host.
"""

from __future__ import annotations

import errno
import os
import stat

from common import libc, mountinfo
from common.mountopts import PROPAGATION, MountOptions, parse_options
from runtime.errors import PyruncError
from runtime.linux import inroot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_DEFAULT_DEVICES = [
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
]


def prepare_root(rootfs: str, propagation: str | None, own_namespace: bool = True) -> int:
    """Stop our mounts from leaking to the host, then make the rootfs a mount point of its own;
    an O_PATH fd on that mount, which every later lookup starts from.

    Without a mount namespace of its own the container shares the runtime's: the host's
    propagation is not ours to change, and the bind is what `delete` detaches (all the
    container's mounts are below it)."""
    if own_namespace:
        flag = PROPAGATION.get(propagation or "", libc.MS_SLAVE | libc.MS_REC)
        # A shared rootfs still needs the host's mounts to be slaves while we set up.
        if flag & libc.MS_SHARED:
            flag = libc.MS_SLAVE | libc.MS_REC
        libc.mount(None, "/", None, flag)
        _make_parent_private(rootfs)
    libc.mount(rootfs, rootfs, "bind", libc.MS_BIND | libc.MS_REC)
    return inroot.open_root(rootfs)


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    holder = mountinfo.mount_of(rootfs)
    mountpoint = holder.point if holder is not None else "/"
    try:
        libc.mount(None, mountpoint, None, libc.MS_PRIVATE)
    except OSError:
        pass


def detach_if_ours(path: str, mount_id: int) -> None:
    """Lazily unmount what a container without a mount namespace of its own mounted in ours: the
    bind of its rootfs (id MOUNT_ID), and with it every mount below it. Someone else's mount on
    top of it, or a bind already gone, is left alone."""
    if mount_id and mountinfo.top_mount_id(path) == mount_id:
        libc.umount(path, libc.MNT_DETACH)


def mount_entry(root: int, entry: dict[str, Any], cgroup_paths: dict[str, str], cgroupns: bool) -> None:
    """One of the spec's mounts, its destination looked up (and made) below the root fd ROOT."""
    dest = entry["destination"]
    kind = entry.get("type") or ""
    options = entry.get("options") or []
    opts = parse_options(options)
    source = entry.get("source") or kind or "none"
    is_bind = bool(opts.flags & libc.MS_BIND) or kind == "bind"
    if is_bind:
        opts.flags |= libc.MS_BIND

    if kind == "cgroup":
        _mount_cgroup(root, dest, opts, cgroup_paths, cgroupns)
        return
    if is_bind:
        if not os.path.exists(source):
            raise PyruncError(f"bind mount source {source} does not exist")
        target = _target(root, dest, os.path.isdir(source))
        with _Fd(target):
            libc.mount(source, inroot.proc_fd(target), None, libc.MS_BIND | (opts.flags & libc.MS_REC))
        remount = opts.flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT)
        if remount:
            _remount_bind(root, dest, remount)
    else:
        target = _target(root, dest, True)
        with _Fd(target):
            if kind == "mqueue" or kind == "sysfs":
                try:
                    libc.mount(source, inroot.proc_fd(target), kind, opts.flags, opts.data or None)
                except OSError as exc:
                    # Without our own net/ipc namespace the kernel refuses these; bind the host's, as runc does.
                    if exc.errno not in (errno.EPERM, errno.EBUSY):
                        raise
                    libc.mount(
                        f"/{dest.strip('/')}", inroot.proc_fd(target), None, libc.MS_BIND | libc.MS_REC
                    )
                    _remount_bind(root, dest, opts.flags)
            else:
                libc.mount(source, inroot.proc_fd(target), kind or None, opts.flags, opts.data or None)
    if opts.propagation:
        with _Fd(inroot.open_in(root, dest)) as mounted:  # the new mount, not what it covers
            for prop in opts.propagation:
                libc.mount(None, inroot.proc_fd(mounted.fd), None, prop)


def _target(root: int, dest: str, is_dir: bool) -> int:
    """The mount point DEST below ROOT (made if missing) as an O_PATH fd, or a clear refusal."""
    try:
        return inroot.mkdir_all(root, dest) if is_dir else inroot.make_file(root, dest)
    except OSError as exc:
        raise inroot.refusal("mount destination", dest, exc) from None


class _Fd:
    """An fd closed at the end of a `with` block."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> _Fd:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def _remount_bind(root: int, dest: str, flags: int) -> None:
    """Flags on a bind mount only take effect on a remount, made on the mount just made (looked
    up again: the fd the mount was made on is the directory below it)."""
    with _Fd(inroot.open_in(root, dest)) as mounted:
        _remount_bind_fd(mounted.fd, flags)


def _remount_bind_fd(fd: int, flags: int) -> None:
    """Remount the mount FD is the root of; keep the locked flags the kernel insists on."""
    st = os.statvfs(fd)
    locked = 0
    for bit, mflag in (
        (os.ST_NOSUID, libc.MS_NOSUID),
        (os.ST_NODEV, libc.MS_NODEV),
        (os.ST_NOEXEC, libc.MS_NOEXEC),
    ):
        if st.f_flag & bit:
            locked |= mflag
    libc.mount(None, inroot.proc_fd(fd), None, libc.MS_BIND | libc.MS_REMOUNT | flags | locked)


def _remount_path(path: str, flags: int) -> None:
    """_remount_bind_fd for a path inside the container, after the root switch."""
    with _Fd(os.open(path, os.O_PATH | os.O_CLOEXEC)) as mounted:
        _remount_bind_fd(mounted.fd, flags)


def _mount_cgroup(
    root: int, dest: str, opts: MountOptions, cgroup_paths: dict[str, str], cgroupns: bool
) -> None:
    """cgroup v2: one cgroup2 mount. v1: a tmpfs holding one mount per hierarchy, each showing only the container's cgroup."""
    base_flags = opts.flags & (libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_RELATIME)
    readonly = libc.MS_RDONLY if opts.flags & libc.MS_RDONLY else 0
    with _Fd(_target(root, dest, True)) as target:
        if cgroup_paths.get("__version__") == "2":
            path = cgroup_paths.get("") or next(
                iter(v for k, v in cgroup_paths.items() if k != "__version__"), ""
            )
            if cgroupns:
                libc.mount("cgroup2", inroot.proc_fd(target.fd), "cgroup2", opts.flags)
            else:
                libc.mount(path, inroot.proc_fd(target.fd), None, libc.MS_BIND | libc.MS_REC)
                _remount_bind(root, dest, base_flags | readonly)
            return
        libc.mount("tmpfs", inroot.proc_fd(target.fd), "tmpfs", base_flags, "mode=755")
    # Our fresh tmpfs: nobody else can see into it, its entries are ours.
    with _Fd(inroot.open_in(root, dest, os.O_DIRECTORY)) as tmpfs:
        for name, host_path in sorted(cgroup_paths.items()):
            # runc shows only the v1 hierarchies to a hybrid-mode container; do the same.
            if name.startswith("__") or name == "unified":
                continue
            sub = name.replace("name=", "")
            os.mkdir(sub, 0o755, dir_fd=tmpfs.fd)
            with _Fd(inroot.open_here(tmpfs.fd, sub, os.O_DIRECTORY)) as point:
                if cgroupns:
                    libc.mount("cgroup", inroot.proc_fd(point.fd), "cgroup", base_flags | readonly, name)
                    continue
                libc.mount(host_path, inroot.proc_fd(point.fd), None, libc.MS_BIND | libc.MS_REC)
            with _Fd(inroot.open_here(tmpfs.fd, sub, os.O_DIRECTORY)) as mounted:
                _remount_bind_fd(mounted.fd, base_flags | readonly)
        # Co-mounted hierarchies (cpu,cpuacct) get their single-name aliases, as on a host.
        for name in list(cgroup_paths):
            if "," in name and not name.startswith("name="):
                for alias in name.split(","):
                    try:
                        os.symlink(name, alias, dir_fd=tmpfs.fd)
                    except FileExistsError:
                        pass


def create_devices(root: int, devices: list[dict[str, Any]], in_userns: bool, dev_is_bind: bool) -> None:
    """The default /dev nodes plus linux.devices; in a user namespace mknod of a device is refused,
    so the host's node is bound instead (a fifo needs no privilege: it is always made)."""
    wanted: dict[str, tuple[str, int, int, int, int, int]] = {}
    if not dev_is_bind:
        for path, kind, major, minor, mode in _DEFAULT_DEVICES:
            wanted[path] = (kind, major, minor, mode, 0, 0)
    for dev in devices:
        wanted[dev["path"]] = (
            dev["type"],
            dev.get("major", 0),
            dev.get("minor", 0),
            dev.get("fileMode", 0o666) & 0o7777,
            dev.get("uid", 0),
            dev.get("gid", 0),
        )
    for path, (kind, major, minor, mode, uid, gid) in wanted.items():
        directory, _, name = path.rstrip("/").rpartition("/")
        with _Fd(inroot.mkdir_all(root, directory)) as parent:
            if in_userns and kind != "p":
                try:
                    os.close(
                        os.open(
                            name,
                            os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                            0o644,
                            dir_fd=parent.fd,
                        )
                    )
                except FileExistsError:
                    pass
                with _Fd(inroot.open_here(parent.fd, name)) as node:
                    libc.mount(path, inroot.proc_fd(node.fd), None, libc.MS_BIND)
                continue
            _mknod(parent.fd, name, path, kind, major, minor, mode, uid, gid)


def _mknod(
    parent: int, name: str, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int
) -> None:
    try:
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    type_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
    try:
        os.mknod(name, type_bits | mode, os.makedev(major, minor), dir_fd=parent)
    except OSError as exc:
        raise PyruncError(f"mknod {path}: {exc.strerror}") from None
    with _Fd(inroot.open_here(parent, name)) as node:
        where = inroot.proc_fd(node.fd)  # the node just made, whatever its name has become
        os.chmod(where, mode)  # mknod honours the umask; the spec's mode must win
        os.chown(where, uid, gid)


def create_dev_symlinks(root: int) -> None:
    links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    try:
        dev = inroot.open_in(root, "/dev", os.O_DIRECTORY)
    except OSError:
        return
    with _Fd(dev):
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
        try:
            os.stat("pts/ptmx", dir_fd=dev, follow_symlinks=False)
        except OSError:
            return
        try:
            os.unlink("ptmx", dir_fd=dev)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)


def pivot_into(rootfs: str) -> None:
    """Switch to the rootfs and detach the old root entirely: the container cannot reach the host's tree."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        libc.pivot_root(".", ".")
        os.fchdir(old_root)
        # Slave first, so unmounting the old root does not propagate back to the host.
        libc.mount(None, ".", None, libc.MS_SLAVE | libc.MS_REC)
        libc.umount(".", libc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def move_root(rootfs: str) -> None:
    """--no-pivot: for rootfs on ramfs, where pivot_root is impossible."""
    os.chdir(rootfs)
    libc.mount(rootfs, "/", None, libc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def set_root_propagation(propagation: str | None) -> None:
    if propagation:
        libc.mount(None, "/", None, PROPAGATION[propagation])


def remount_root_readonly() -> None:
    _remount_path("/", libc.MS_RDONLY)


def mask_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY)
            else:
                libc.mount("/dev/null", path, None, libc.MS_BIND)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise


def readonly_paths(paths: list[str]) -> None:
    for path in paths:
        try:
            libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        _remount_path(path, libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
