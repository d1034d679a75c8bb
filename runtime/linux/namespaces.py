"""Entering namespaces: new ones by unshare, existing ones by setns on a path."""

from __future__ import annotations

import os

from common import libc
from runtime.errors import PyruncError
from runtime.spec import NAMESPACE_FLAGS, NAMESPACE_PROC_NAMES

# A user namespace must be joined first (it owns the others); mount last so the paths
# of the other namespaces are still resolved in the runtime's mount namespace.
_JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


def split(namespaces: list[dict[str, str]]) -> tuple[int, list[tuple[str, str]]]:
    """Return (flags for the namespaces to create, [(type, path)] of those to join)."""
    new_flags = 0
    joins: list[tuple[str, str]] = []
    for ns in namespaces:
        if ns.get("path"):
            joins.append((ns["type"], ns["path"]))
        else:
            new_flags |= NAMESPACE_FLAGS[ns["type"]]
    joins.sort(key=lambda item: _JOIN_ORDER.index(item[0]))
    return new_flags, joins


def open_paths(joins: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """Open every namespace file up front, before setns into mnt changes what paths mean."""
    opened = []
    for kind, path in joins:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise PyruncError(f"cannot open {kind} namespace {path}: {exc.strerror}") from None
        opened.append((kind, fd))
    return opened


def join(opened: list[tuple[str, int]]) -> None:
    for kind, fd in opened:
        try:
            libc.setns(fd, NAMESPACE_FLAGS[kind])
        except OSError as exc:
            raise PyruncError(f"cannot join {kind} namespace: {exc.strerror}") from None
        finally:
            os.close(fd)


def of_process(pid: int, kinds: list[str]) -> list[tuple[str, str]]:
    """Namespaces of PID that differ from ours: what `exec` must join (setns into our own is EINVAL for user)."""
    joins = []
    for kind in kinds:
        name = NAMESPACE_PROC_NAMES[kind]
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
        except OSError:
            raise PyruncError(f"container process {pid} is gone") from None
        joins.append((kind, theirs))
    joins.sort(key=lambda item: _JOIN_ORDER.index(item[0]))
    return joins


def write_id_maps(pid: int, uid_maps: list[dict[str, int]], gid_maps: list[dict[str, int]]) -> None:
    def render(maps: list[dict[str, int]]) -> bytes:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps).encode()

    try:
        if gid_maps:
            with open(f"/proc/{pid}/gid_map", "wb") as f:
                f.write(render(gid_maps))
        if uid_maps:
            with open(f"/proc/{pid}/uid_map", "wb") as f:
                f.write(render(uid_maps))
    except OSError as exc:
        raise PyruncError(f"cannot write user namespace id mappings: {exc.strerror}") from None
