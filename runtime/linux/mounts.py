"""Building the container's filesystem view inside its new mount namespace.

Order (as the OCI spec and runc do it): make the host's mounts slaves so nothing we do
propagates back, bind the rootfs onto itself, mount the spec's mounts in order, populate
/dev, then switch root (pivot_root, or MS_MOVE+chroot with --no-pivot). Paths from the
spec are resolved inside the rootfs with symlinks confined to it, so a hostile image
cannot point a mount at the host.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.errors import PyruncError
from runtime.linux import libc

_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    # option: (clear instead of set, flag)
    "ro": (False, libc.MS_RDONLY),
    "rw": (True, libc.MS_RDONLY),
    "nosuid": (False, libc.MS_NOSUID),
    "suid": (True, libc.MS_NOSUID),
    "nodev": (False, libc.MS_NODEV),
    "dev": (True, libc.MS_NODEV),
    "noexec": (False, libc.MS_NOEXEC),
    "exec": (True, libc.MS_NOEXEC),
    "sync": (False, libc.MS_SYNCHRONOUS),
    "async": (True, libc.MS_SYNCHRONOUS),
    "dirsync": (False, libc.MS_DIRSYNC),
    "remount": (False, libc.MS_REMOUNT),
    "mand": (False, libc.MS_MANDLOCK),
    "nomand": (True, libc.MS_MANDLOCK),
    "atime": (True, libc.MS_NOATIME),
    "noatime": (False, libc.MS_NOATIME),
    "diratime": (True, libc.MS_NODIRATIME),
    "nodiratime": (False, libc.MS_NODIRATIME),
    "relatime": (False, libc.MS_RELATIME),
    "norelatime": (True, libc.MS_RELATIME),
    "strictatime": (False, libc.MS_STRICTATIME),
    "nostrictatime": (True, libc.MS_STRICTATIME),
    "lazytime": (False, libc.MS_LAZYTIME),
    "nolazytime": (True, libc.MS_LAZYTIME),
    "symfollow": (True, libc.MS_NOSYMFOLLOW),
    "nosymfollow": (False, libc.MS_NOSYMFOLLOW),
    "bind": (False, libc.MS_BIND),
    "rbind": (False, libc.MS_BIND | libc.MS_REC),
}

PROPAGATION: dict[str, int] = {
    "private": libc.MS_PRIVATE,
    "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "shared": libc.MS_SHARED,
    "rshared": libc.MS_SHARED | libc.MS_REC,
    "slave": libc.MS_SLAVE,
    "rslave": libc.MS_SLAVE | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE,
    "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}

# Options that only tools like mount(8) understand; the kernel would reject them as data.
_IGNORED_OPTIONS = {
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "_netdev",
    "nofail",
    "tmpcopyup",
    "idmap",
    "ridmap",
}

_DEFAULT_DEVICES = [
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
]


class MountOptions:
    __slots__ = ("flags", "propagation", "data")

    def __init__(self, flags: int, propagation: list[int], data: str) -> None:
        self.flags = flags
        self.propagation = propagation
        self.data = data


def parse_options(options: list[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, flag = _FLAG_OPTIONS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _IGNORED_OPTIONS:
            continue
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data))


def secure_join(root: str, unsafe: str) -> str:
    """Resolve UNSAFE under ROOT as if ROOT were '/': symlinks (absolute or with '..') never escape."""
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 255:
                raise PyruncError(f"too many symlinks resolving {unsafe} in the rootfs")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _make_target(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))


def prepare_root(rootfs: str, propagation: str | None) -> None:
    """Stop our mounts from leaking to the host, then make the rootfs a mount point of its own."""
    flag = PROPAGATION.get(propagation or "", libc.MS_SLAVE | libc.MS_REC)
    # A shared rootfs still needs the host's mounts to be slaves while we set up.
    if flag & libc.MS_SHARED:
        flag = libc.MS_SLAVE | libc.MS_REC
    libc.mount(None, "/", None, flag)
    _make_parent_private(rootfs)
    libc.mount(rootfs, rootfs, "bind", libc.MS_BIND | libc.MS_REC)


def _make_parent_private(rootfs: str) -> None:
    """pivot_root refuses a new root whose parent mount is shared."""
    mountpoint = _mount_point_of(rootfs)
    try:
        libc.mount(None, mountpoint, None, libc.MS_PRIVATE)
    except OSError:
        pass


def _mount_point_of(path: str) -> str:
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = _unescape(line.split()[4])
            if (path == target or path.startswith(target.rstrip("/") + "/")) and len(target) > len(best):
                best = target
    return best


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mount_entry(rootfs: str, entry: dict, cgroup_paths: dict[str, str], cgroupns: bool) -> None:
    dest_rel = entry["destination"]
    if not dest_rel.startswith("/"):
        dest_rel = "/" + dest_rel
    kind = entry.get("type") or ""
    options = entry.get("options") or []
    opts = parse_options(options)
    source = entry.get("source") or kind or "none"
    is_bind = bool(opts.flags & libc.MS_BIND) or kind == "bind"
    if is_bind:
        opts.flags |= libc.MS_BIND
    dest = secure_join(rootfs, dest_rel)

    if kind == "cgroup":
        _mount_cgroup(dest, opts, cgroup_paths, cgroupns)
        return
    if is_bind:
        if not os.path.exists(source):
            raise PyruncError(f"bind mount source {source} does not exist")
        _make_target(dest, os.path.isdir(source))
        libc.mount(source, dest, None, libc.MS_BIND | (opts.flags & libc.MS_REC))
        remount = opts.flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT)
        if remount:
            _remount_bind(dest, remount)
    else:
        _make_target(dest, True)
        if kind == "mqueue" or kind == "sysfs":
            try:
                libc.mount(source, dest, kind, opts.flags, opts.data or None)
            except OSError as exc:
                # Without our own net/ipc namespace the kernel refuses these; bind the host's, as runc does.
                if exc.errno not in (errno.EPERM, errno.EBUSY):
                    raise
                libc.mount(f"/{dest_rel.strip('/')}", dest, None, libc.MS_BIND | libc.MS_REC)
                _remount_bind(dest, opts.flags)
        else:
            libc.mount(source, dest, kind or None, opts.flags, opts.data or None)
    for prop in opts.propagation:
        libc.mount(None, dest, None, prop)


def _remount_bind(dest: str, flags: int) -> None:
    """Flags on a bind mount only take effect on a remount; keep locked flags the kernel insists on."""
    st = os.statvfs(dest)
    locked = 0
    for bit, mflag in (
        (os.ST_NOSUID, libc.MS_NOSUID),
        (os.ST_NODEV, libc.MS_NODEV),
        (os.ST_NOEXEC, libc.MS_NOEXEC),
    ):
        if st.f_flag & bit:
            locked |= mflag
    libc.mount(None, dest, None, libc.MS_BIND | libc.MS_REMOUNT | flags | locked)


def _mount_cgroup(dest: str, opts: MountOptions, cgroup_paths: dict[str, str], cgroupns: bool) -> None:
    """cgroup v2: one cgroup2 mount. v1: a tmpfs holding one mount per hierarchy, each showing only the container's cgroup."""
    os.makedirs(dest, exist_ok=True)
    base_flags = opts.flags & (libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_RELATIME)
    readonly = bool(opts.flags & libc.MS_RDONLY)
    if cgroup_paths.get("__version__") == "2":
        path = cgroup_paths.get("") or next(
            iter(v for k, v in cgroup_paths.items() if k != "__version__"), ""
        )
        if cgroupns:
            libc.mount("cgroup2", dest, "cgroup2", opts.flags)
        else:
            libc.mount(path, dest, None, libc.MS_BIND | libc.MS_REC)
            _remount_bind(dest, base_flags | (libc.MS_RDONLY if readonly else 0))
        return
    libc.mount("tmpfs", dest, "tmpfs", base_flags, "mode=755")
    for name, host_path in sorted(cgroup_paths.items()):
        # runc shows only the v1 hierarchies to a hybrid-mode container; do the same.
        if name.startswith("__") or name == "unified":
            continue
        sub = os.path.join(dest, name.replace("name=", ""))
        os.makedirs(sub, exist_ok=True)
        if cgroupns:
            fstype, data = ("cgroup2", None) if name == "unified" else ("cgroup", name)
            libc.mount("cgroup", sub, fstype, base_flags | (libc.MS_RDONLY if readonly else 0), data)
        else:
            libc.mount(host_path, sub, None, libc.MS_BIND | libc.MS_REC)
            _remount_bind(sub, base_flags | (libc.MS_RDONLY if readonly else 0))
    # Co-mounted hierarchies (cpu,cpuacct) get their single-name aliases, as on a host.
    for name in list(cgroup_paths):
        if "," in name and not name.startswith("name="):
            for alias in name.split(","):
                link = os.path.join(dest, alias)
                if not os.path.lexists(link):
                    os.symlink(name, link)


def create_devices(rootfs: str, devices: list[dict], in_userns: bool, dev_is_bind: bool) -> None:
    """The default /dev nodes plus linux.devices; in a user namespace mknod is refused, so bind the host's."""
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
        dest = secure_join(rootfs, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if in_userns:
            _make_target(dest, False)
            libc.mount(path, dest, None, libc.MS_BIND)
            continue
        if os.path.lexists(dest):
            os.unlink(dest)
        type_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
        try:
            os.mknod(dest, type_bits | mode, os.makedev(major, minor))
        except OSError as exc:
            raise PyruncError(f"mknod {path}: {exc.strerror}") from None
        os.chmod(dest, mode)  # mknod honours the umask; the spec's mode must win
        os.chown(dest, uid, gid)


def create_dev_symlinks(rootfs: str) -> None:
    links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        dest = os.path.join(rootfs, name.lstrip("/"))
        if not os.path.lexists(dest):
            try:
                os.symlink(target, dest)
            except FileNotFoundError:
                pass
    pts_ptmx = os.path.join(rootfs, "dev/pts/ptmx")
    ptmx = os.path.join(rootfs, "dev/ptmx")
    if os.path.exists(pts_ptmx):
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)


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
    _remount_bind("/", libc.MS_RDONLY)


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
        _remount_bind(path, libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
