"""Files inside a container's root, reached without ever leaving it.

Every path is resolved here by hand, one component at a time: each component is opened
with O_PATH|O_NOFOLLOW relative to the directory before it, a symlink is read and expanded
here (an absolute target starts again at the root, '..' pops our own stack of directory
fds and never goes above the root), so no lookup is ever left to the kernel across
components. Whatever the container (or a hostile archive) puts in the way, and however it
changes the tree meanwhile, the walk stays below the root fd it started from. Entries are
then read, created and changed relative to those directory fds, never by a host path.

This is what Docker's symlink.FollowSymlinkInScope gives dockerd, without its race.
"""

from __future__ import annotations

import errno
import os
import stat

from common import mountinfo

O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 255  # as the kernel's MAXSYMLINKS was long enough for anyone

# Filesystems whose contents are not files of the container (its /proc, /sys, ...): walks
# do not descend into them, and nothing is ever extracted into them.
PSEUDO_FS = frozenset(
    {"proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "securityfs", "debugfs", "tracefs", "bpf",
     "configfs", "fusectl", "pstore", "binfmt_misc", "efivarfs", "hugetlbfs", "rpc_pipefs", "nsfs"}
)  # fmt: skip


def clean(path: str) -> str:
    """Go's filepath.Clean of an absolute path: "/" + path, '.', '..' and '//' removed lexically."""
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/" + "/".join(out)


def base(path: str) -> str:
    """Go's filepath.Base: the last element after trailing slashes are dropped; "/" for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return stripped.rsplit("/", 1)[-1]


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name if name else parent


def proc_fd(fd: int) -> str:
    """A path that names exactly the inode an fd (even an O_PATH one) refers to."""
    return f"/proc/self/fd/{fd}"


class Resolved:
    """A path resolved inside a root: its clean container path and an O_PATH fd (-1 when missing)."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve(
    root: int, path: str, *, follow: bool = True, mkdirs: bool = False, missing_ok: bool = False
) -> Resolved:
    """Resolve PATH (a container path) below the directory fd ROOT.

    follow: follow a symlink in the last component (components before it are always
    followed, and a trailing "/" or "/." makes the last one a directory to follow too).
    mkdirs: create missing directories (0755) on the way, the last component included.
    missing_ok: for a path that does not exist, return the lexical rest of it with fd -1
    (what Docker reports as a dangling symlink's target) instead of raising.
    Raises FileNotFoundError, NotADirectoryError, or OSError(ELOOP).
    """
    stack: list[tuple[int, str]] = []  # (fd, name) below the root
    todo = list(reversed(path.split("/")))  # next component last
    links = 0
    try:
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if stack:
                    os.close(stack.pop()[0])
                continue
            cur = stack[-1][0] if stack else root
            try:
                fd = os.open(part, O_PATH, dir_fd=cur)
            except FileNotFoundError:
                if mkdirs:
                    fd = _mkdir(cur, part)
                elif missing_ok:
                    rest = [part, *reversed(todo)]
                    where = "/" + "/".join(name for _, name in stack)
                    return Resolved(clean(join(where, "/".join(rest))), -1)
                else:
                    raise
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (todo or follow):
                links += 1
                try:
                    target = os.readlink("", dir_fd=fd)  # the link the fd holds, not a new lookup
                finally:
                    os.close(fd)
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop()[0])
                todo.extend(reversed(target.split("/")))
                continue
            if todo and not stat.S_ISDIR(mode):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append((fd, part))
        if not stack:
            return Resolved("/", os.open(".", O_PATH, dir_fd=root))
        names = [name for _, name in stack]
        fd, _ = stack.pop()
        return Resolved("/" + "/".join(names), fd)
    finally:
        for fd, _ in stack:
            os.close(fd)


def _mkdir(parent: int, name: str) -> int:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile: open whatever is there now (a symlink is still expanded by the caller)
    else:
        fd = os.open(name, O_PATH, dir_fd=parent)
        os.chmod(proc_fd(fd), 0o755)  # whatever our umask
        return fd
    return os.open(name, O_PATH, dir_fd=parent)


def reopen_dir(fd: int) -> int:
    """A readable fd on the directory an O_PATH fd holds (for listing, xattrs)."""
    return os.open(".", O_DIR, dir_fd=fd)


def read_file(root: int, path: str, limit: int = 1 << 20) -> bytes | None:
    """A regular file's first `limit` bytes, None when it is missing or not a regular file."""
    try:
        with resolve(root, path) as r:
            if not stat.S_ISREG(os.fstat(r.fd).st_mode):
                return None
            fd = os.open(proc_fd(r.fd), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def remove_all(parent: int, name: str) -> None:
    """rm -rf of one entry, symlinks never followed (shutil.rmtree's fd-based walk)."""
    import shutil

    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def pseudo_devices(table: list[mountinfo.Mount]) -> tuple[set[int], set[int]]:
    """From a mount table (common.mountinfo.read(PID)): st_dev of every pseudo filesystem, and of
    the runtime's tmpfs mounts on /dev (device nodes, which dockerd's view of a container lacks)."""
    pseudo, dev = set(), set()
    for m in table:
        if m.fstype in PSEUDO_FS:
            pseudo.add(m.dev)
        elif m.fstype == "tmpfs" and (m.point == "/dev" or m.point.startswith("/dev/")):
            dev.add(m.dev)
    return pseudo, dev
