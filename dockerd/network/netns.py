"""Sandboxes' network namespaces: files under the run directory, as libnetwork keeps them.

A namespace is created by the daemon (not by the runtime) and bind-mounted on
`<run_dir>/<container id>`: the OCI spec names it by that path, the daemon configures it
before the container starts, and it outlives both the daemon and the container's processes
until `remove`. pyroute2 creates it the way `ip netns add` does, which makes the directory a
shared mount point, so removing a namespace file propagates to every mount namespace that
copied it (the shims', the containers' before their pivot_root).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute, netns

from common import libc, mountinfo

T = TypeVar("T")


def _in_thread(fn: Callable[[], T]) -> T:
    """FN's result, FN run by a thread of its own (which may change its network namespace: setns
    and unshare of CLONE_NEWNET apply to the calling thread only, and the thread then ends)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="netns")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["value"]
    return result


def run_in(path: Path, fn: Callable[[], T]) -> T:
    """FN run inside the network namespace at PATH. pyroute2's own way (IPRoute(netns=...))
    forks a process per socket, 50-150 ms each on this machine: a thread that joins the
    namespace costs well under a millisecond."""

    def joined() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, libc.CLONE_NEWNET)
        finally:
            os.close(fd)
        return fn()

    return _in_thread(joined)


def create(path: Path) -> None:
    """A new network namespace at PATH with `lo` up (as runc would bring it up): a thread unshares
    its network namespace and bind-mounts it on PATH the way `ip netns add` does (pyroute2's
    attach: the directory made a shared mount point first)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def make() -> None:
        libc.unshare(libc.CLONE_NEWNET)
        netns.attach(str(path), "thread-self")
        with IPRoute() as ipr:
            ipr.link("set", index=1, state="up")

    try:
        _in_thread(make)
    except BaseException:
        remove(path)
        raise


def is_mounted(path: Path) -> bool:
    """Is PATH a namespace mount (a file left by a crash mid-create is not)?"""
    return mountinfo.is_mount_point(str(path))


def remove(path: Path) -> None:
    if is_mounted(path):
        netns.remove(str(path))
    else:
        path.unlink(missing_ok=True)


def release_dir(run_dir: Path) -> None:
    """Undo the shared bind mount pyroute2 made of RUN_DIR once no namespace is left in it."""
    if not run_dir.is_dir() or any(run_dir.iterdir()):
        return
    while is_mounted(run_dir):
        subprocess.run(["umount", str(run_dir)], check=True, capture_output=True)
    run_dir.rmdir()


def open_socket(path: Path, kind: int) -> socket.socket:
    """An AF_INET socket created inside the namespace at PATH (it stays there whatever thread uses it)."""
    return run_in(path, lambda: socket.socket(socket.AF_INET, kind))


def command(path: Path | None, argv: list[str]) -> list[str]:
    """ARGV run inside the namespace at PATH (or as is for the host's)."""
    return argv if path is None else ["nsenter", f"--net={path}", *argv]


def same_as_host(path: Path) -> bool:
    return os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino
