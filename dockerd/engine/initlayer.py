"""What dockerd puts in every container's "-init" layer, between the image and the writable
layer: `/.dockerenv`, the runtime's mount points (/proc, /sys, /dev/pts, /dev/shm,
/dev/console, /etc/hosts, /etc/hostname, /etc/resolv.conf) and /etc/mtab -> /proc/mounts.

pydockerd has no layer of its own for them: they are written into the container's
snapshot when it is first prepared, and `docker diff` leaves them out
(container/changes.py: _INIT_LAYER), so the container's tree, `cp` and `export` look as under dockerd.
Since the writes happen in the merged tree and not in an empty layer, what the image has at
these paths is replaced, as the init layer hides it: each component is walked by directory
fd without following symlinks (an image's symlink is replaced by a directory, never followed
out of the root).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from dockerd.engine import scoped

DIR, FILE = "dir", "file"
# (path, DIR, FILE or a symlink's target), as dockerd's initlayer.Setup makes them.
ENTRIES = (
    ("/dev/pts", DIR),
    ("/dev/shm", DIR),
    ("/proc", DIR),
    ("/sys", DIR),
    ("/.dockerenv", FILE),
    ("/etc/resolv.conf", FILE),
    ("/etc/hosts", FILE),
    ("/etc/hostname", FILE),
    ("/dev/console", FILE),
    ("/etc/mtab", "/proc/mounts"),
)


def setup(root: str, owner: tuple[int, int] = (0, 0)) -> None:
    """Make the init entries in the (mounted, writable) container root at ROOT, owned by OWNER
    (the host's ids of the container's root: not 0:0 with userns-remap)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path, kind in ENTRIES:
            *parents, name = path.strip("/").split("/")
            with _directory(root_fd, parents, owner) as parent:
                _make(parent, name, kind, owner)
    finally:
        os.close(root_fd)


@contextlib.contextmanager
def _directory(root: int, parts: list[str], owner: tuple[int, int]) -> Iterator[int]:
    """An O_PATH fd on ROOT/parts..., each component made a real directory (0755) when it is
    missing or anything else (a symlink is removed, not followed)."""
    fd = os.dup(root)
    try:
        for part in parts:
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                scoped.remove_all(fd, part)
                st = None
            if st is None:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chmod(part, 0o755, dir_fd=fd)  # whatever our umask
                os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
            child = os.open(part, scoped.O_PATH | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _make(parent: int, name: str, kind: str, owner: tuple[int, int]) -> None:
    try:
        st: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and not _already(parent, name, kind, st):
        scoped.remove_all(parent, name)
        st = None
    if st is not None:
        return
    if kind == DIR:
        os.mkdir(name, 0o755, dir_fd=parent)
        os.chmod(name, 0o755, dir_fd=parent)
    elif kind == FILE:
        os.close(
            os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o755,
                dir_fd=parent,
            )
        )
        os.chmod(name, 0o755, dir_fd=parent)
    else:
        os.symlink(kind, name, dir_fd=parent)
        return  # dockerd's init layer leaves its symlink root's, remapped or not
    os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)


def _already(parent: int, name: str, kind: str, st: os.stat_result) -> bool:
    """Whether what is there already is what the init layer would show: a directory, an empty
    regular file, the same symlink."""
    if kind == DIR:
        return stat.S_ISDIR(st.st_mode)
    if kind == FILE:
        return stat.S_ISREG(st.st_mode) and st.st_size == 0
    return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=parent) == kind
