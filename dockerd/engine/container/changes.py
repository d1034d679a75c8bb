"""GET /containers/{id}/changes: the snapshot's upper layer against its image, as Docker's
changes (what dockerd's init layer holds left out)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from containerd.client import Mount
from containerd.client.mount import overlay_dirs
from dockerd.engine import scoped
from dockerd.engine.container import rootfs

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

# What dockerd keeps in a container's init layer, below its RW layer: the runtime's mount
# points. pyrunc creates them in the RW layer itself, so `changes` leaves them out.
_INIT_LAYER = (
    "/.dockerenv",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/proc",
    "/sys",
)
CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


def changes(d: Containers, ref: str) -> list[dict[str, Any]] | None:
    """Docker's changes: the snapshot's upper layer against the image (None when nothing changed)."""
    c = d.get(ref)
    mounts = rootfs.snapshot_mounts(d, c, prepare=False)
    if not mounts:
        return None
    m = Mount(mounts[0].type, mounts[0].source, mounts[0].target, list(mounts[0].options))
    if m.type == "overlay":
        upper, lowers = overlay_dirs(m)
    else:
        upper, lowers = m.source, []
    if not upper:
        return None
    upper_mount = [Mount("bind", upper, "", ["rbind", "ro"])]
    lower_mount = [Mount("overlay", "overlay", "", ["lowerdir=" + ":".join(lowers)])] if lowers else []
    root = d.mount_root
    with rootfs.mounted(upper_mount, root) as up, rootfs.mounted(lower_mount, root, readonly=True) as low:
        up_fd = os.open(up, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        low_fd = os.open(low, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            found = _overlay_changes(up_fd, low_fd)
        finally:
            os.close(up_fd)
            os.close(low_fd)
    found = _without_init_layer(found)
    return [{"Path": p, "Kind": k} for p, k in found] or None


def _overlay_changes(upper: int, lower: int) -> list[tuple[str, int]]:
    """What dockerd's (naive) diff of the container's filesystem against its image reports, found
    by walking only the upper layer, where every change is: whiteouts are deletions, an opaque
    directory deletes what the image had in it, entries are added or, if their stat differs
    from the image's, modified; a directory holding a change is modified too."""
    found: dict[str, int] = {}
    top = scoped.reopen_dir(upper)
    stack: list[tuple[int, str, Iterator[str]]] = [(top, "/", iter(sorted(os.listdir(top))))]
    try:
        while stack:
            dfd, dpath, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            path = scoped.join(dpath, name)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            before = _lower_stat(lower, path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # an overlay whiteout
                if before is not None:
                    found[path] = CHANGE_DELETE
                continue
            if before is None:
                found[path] = CHANGE_ADD
            elif _stat_different(before, st):
                found[path] = CHANGE_MODIFY
            if not stat.S_ISDIR(st.st_mode):
                continue
            sub = os.open(name, scoped.O_DIR, dir_fd=dfd)
            children = sorted(os.listdir(sub))
            if before is not None and stat.S_ISDIR(before.st_mode) and _opaque(sub):
                # Recreated after a delete: what the image had there and the upper lacks is gone.
                for gone in set(_lower_names(lower, path)) - set(children):
                    found[scoped.join(path, gone)] = CHANGE_DELETE
            stack.append((sub, path, iter(children)))
    finally:
        for dfd, _, _ in stack:
            os.close(dfd)
    for path in list(found):
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = CHANGE_MODIFY
            parent = posixpath.dirname(parent)
    return sorted(found.items(), key=lambda item: item[0].split("/"))


def _lower_stat(lower: int, path: str) -> os.stat_result | None:
    try:
        with scoped.resolve(lower, path, follow=False) as r:
            return os.fstat(r.fd)
    except OSError:
        return None


def _lower_names(lower: int, path: str) -> list[str]:
    try:
        with scoped.resolve(lower, path) as r:
            fd = scoped.reopen_dir(r.fd)
            try:
                return os.listdir(fd)
            finally:
                os.close(fd)
    except OSError:
        return []


def _opaque(fd: int) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(fd, attr) == b"y":
                return True
        except OSError:
            continue
    return False


def _stat_different(a: os.stat_result, b: os.stat_result) -> bool:
    """dockerd's statDifferent: a directory's size and mtime are no measure of change."""
    if (a.st_mode, a.st_uid, a.st_gid, a.st_rdev) != (b.st_mode, b.st_uid, b.st_gid, b.st_rdev):
        return True
    if stat.S_ISDIR(a.st_mode):
        return False
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return a.st_size != b.st_size or sa != sb or not (na == nb or na == 0 or nb == 0)


def _without_init_layer(changes: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Leave out the runtime's mount points (dockerd keeps them in the init layer), and /etc when
    they were all that changed in it."""

    def init(path: str) -> bool:
        return any(
            path == p or (p in ("/dev", "/proc", "/sys") and path.startswith(p + "/")) for p in _INIT_LAYER
        )

    kept = [(p, k) for p, k in changes if not init(p)]
    return [(p, k) for p, k in kept if p != "/etc" or any(q.startswith("/etc/") for q, _ in kept)]
