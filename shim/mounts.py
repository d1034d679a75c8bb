"""Mounting the task's rootfs (CreateTaskRequest.rootfs) onto bundle/rootfs, and unmounting it.

mount(2) needs ctypes, which the long-lived shim never imports (memory): each operation
runs in a forked child that imports common/libc.py (the project's ctypes wrapper), does the
work in the same mount namespace and exits; its error comes back over a pipe.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_PAGE_LIMIT = 4000  # mount(2) data must fit a page


class MountError(Exception):
    """A mount or unmount failed; the message names it."""


def _in_child(work: Callable[[], None]) -> None:
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is the parent's result
        code = 0
        try:
            os.close(r)
            work()
        except BaseException as exc:  # noqa: BLE001 - the forked child reports any failure to its parent
            os.write(w, str(exc).encode()[:4000])
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise MountError(b"".join(chunks).decode(errors="replace") or f"mount helper failed ({status})")


def _shorten_overlay(data: str) -> tuple[str, str]:
    """Overlay options longer than a page: make lowerdir paths relative to their common parent."""
    options = data.split(",")
    lower = next((o for o in options if o.startswith("lowerdir=")), "")
    dirs = lower[len("lowerdir=") :].split(":") if lower else []
    if len(data) <= _PAGE_LIMIT or len(dirs) < 2:
        return data, ""
    common = os.path.commonpath(dirs)
    if os.path.isfile(common) or common in dirs:
        common = os.path.dirname(common)
    short = "lowerdir=" + ":".join(os.path.relpath(d, common) for d in dirs)
    return ",".join(short if o == lower else o for o in options), common


def mount_all(mounts: list[dict[str, Any]], target: str) -> None:
    """Mount each of containerd's Mount records onto TARGET, in order."""
    os.makedirs(target, mode=0o755, exist_ok=True)

    def work() -> None:
        from common import libc
        from common.mountopts import parse_options

        for mnt in mounts:
            kind = mnt.get("type", "")
            opts = parse_options(mnt.get("options", []))
            data = opts.data
            if kind == "overlay":
                data, cwd = _shorten_overlay(data)
                if cwd:
                    os.chdir(cwd)  # only this short-lived child's directory changes
            flags = opts.flags
            source = mnt.get("source", "") or None
            libc.mount(source, target, kind if kind not in ("bind", "rbind") else None, flags, data or None)
            if flags & libc.MS_BIND and flags & libc.MS_RDONLY:
                # A bind mount ignores MS_RDONLY until it is remounted.
                libc.mount(None, target, None, flags | libc.MS_REMOUNT, None)
            for propagation in opts.propagation:
                libc.mount(None, target, None, propagation, None)

    _in_child(work)


def unmount_all(target: str) -> None:
    """Unmount everything stacked on TARGET (lazily if it is busy)."""

    def work() -> None:
        import errno
        import time

        from common import libc

        for _ in range(64):
            try:
                libc.umount(target, 0)
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # nothing (more) mounted there
                    return
                if exc.errno == errno.EBUSY:
                    time.sleep(0.05)
                    try:
                        libc.umount(target, libc.MNT_DETACH)
                    except OSError:
                        pass
                    continue
                if exc.errno == errno.ENOENT:
                    return
                raise

    _in_child(work)
