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
from pathlib import Path

from pyroute2 import IPRoute, netns

from common import mountinfo


def create(path: Path) -> None:
    """A new network namespace at PATH with `lo` up (as runc would bring it up)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    netns.create(str(path))
    try:
        with IPRoute(netns=str(path), flags=0) as ipr:
            ipr.link("set", index=1, state="up")
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
    sock: socket.socket = netns.create_socket(str(path), socket.AF_INET, kind, flags=0)
    return sock


def command(path: Path | None, argv: list[str]) -> list[str]:
    """ARGV run inside the namespace at PATH (or as is for the host's)."""
    return argv if path is None else ["nsenter", f"--net={path}", *argv]


def same_as_host(path: Path) -> bool:
    return os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino
