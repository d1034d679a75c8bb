"""Sandboxes' network namespaces: files under the run directory, as libnetwork keeps them.

A namespace is created by the daemon (not by the runtime) and bind-mounted on
`<run_dir>/<container id>`: the OCI spec names it by that path, the daemon configures it
before the container starts, and it outlives both the daemon and the container's processes
until `remove`. pyroute2 creates it the way `ip netns add` does, which makes the directory a
shared mount point, so removing a namespace file propagates to every mount namespace that
copied it (the shims', the containers' before their pivot_root).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from common import libc, mountinfo
from dockerd.network.rtnl import netns

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


CAT = "/usr/bin/cat"  # the helper's program once in its namespaces: it waits for EOF on stdin


@dataclass(frozen=True)
class UserNamespace:
    """Who owns a new network namespace: a new user namespace with these maps (the text of
    /proc/PID/uid_map and gid_map), or the one at JOIN (a /proc/PID/ns/user path)."""

    uid_map: str = ""
    gid_map: str = ""
    join: str = ""


def user_pin(path: Path) -> Path:
    """Where the user namespace owning the network namespace at PATH is kept (bind-mounted)."""
    return path.with_name(path.name + ".user")


def create(path: Path, owner: UserNamespace | None = None) -> None:
    """A new network namespace at PATH with `lo` up (as runc would bring it up): a thread unshares
    its network namespace and bind-mounts it on PATH the way `ip netns add` does (pyroute2's
    attach: the directory made a shared mount point first). With OWNER (userns-remap), the
    namespace belongs to that user namespace, so that the container's root, in it, may
    configure it (sysctls, sysfs) as runc's own network namespace would let it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        try:
            _create_owned(path, owner)
        except BaseException:
            remove(path)
            raise
        return

    def make() -> None:
        libc.unshare(libc.CLONE_NEWNET)
        netns.attach(str(path), "thread-self")
        _lo_up()

    try:
        _in_thread(make)
    except BaseException:
        remove(path)
        raise


def _create_owned(path: Path, owner: UserNamespace) -> None:
    """A helper process enters (or makes) the user namespace and makes the network namespace
    in it (threads cannot change user namespace); both are bind-mounted, then it exits."""

    # util-linux's tools rather than a preexec_fn: the daemon's forked child fails unshare of
    # CLONE_NEWUSER with EINVAL (measured), an exec'd program does not.
    if owner.join:
        # (nsenter becomes the namespace's root: unmapped ids would lose every capability at exec)
        argv = ["nsenter", f"--user={owner.join}", "--", "unshare", "--net", CAT]
    else:
        argv = ["unshare", "--user", "--net", CAT]
    helper = subprocess.Popen(argv, stdin=subprocess.PIPE, close_fds=True)
    try:
        _wait_for_netns(helper, argv)
        if not owner.join:
            for name, text in (("uid_map", owner.uid_map), ("gid_map", owner.gid_map)):
                with open(f"/proc/{helper.pid}/{name}", "w") as f:
                    f.write(text)
        netns.attach(str(path), helper.pid)
        if not owner.join:
            pin = user_pin(path)
            pin.touch()
            libc.mount(f"/proc/{helper.pid}/ns/user", str(pin), None, libc.MS_BIND)
    finally:
        assert helper.stdin is not None
        helper.stdin.close()
        helper.wait()

    run_in(path, _lo_up)


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq (40 bytes): the name, then ifr_flags in its union


def _lo_up() -> None:
    """`lo` up in the calling thread's network namespace: two ioctls on a socket made here (as
    `ip link set lo up` would, without a netlink session for one flag)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name, flags = _IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ.pack(name, flags | IFF_UP))


def _wait_for_netns(helper: subprocess.Popen[bytes], argv: list[str], timeout: float = 10.0) -> None:
    """Until the helper runs CAT in a network namespace other than ours (it unshares, then execs)."""
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while not _unshared(helper.pid, ours):
        if helper.poll() is not None or time.monotonic() > deadline:
            raise OSError(f"could not make a network namespace in a user namespace ({' '.join(argv)})")
        time.sleep(0.002)


def _unshared(pid: int, host_netns: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/exe") == CAT and os.readlink(f"/proc/{pid}/ns/net") != host_netns
    except OSError:  # gone (it failed), or between two execs
        return False


def is_mounted(path: Path) -> bool:
    """Is PATH a namespace mount (a file left by a crash mid-create is not)?"""
    return mountinfo.is_mount_point(str(path))


def remove(path: Path) -> None:
    """The namespace's file unmounted (and its user namespace's pin, with userns-remap) and gone.
    umount(2) says whether it is a mount (EINVAL when not: a file left by a crash mid-create),
    which spares reading the mount table, long with many containers, twice per removal."""
    pin = user_pin(path)
    if pin.exists():
        _detach(pin)
        pin.unlink(missing_ok=True)
    _detach(path)
    path.unlink(missing_ok=True)


def _detach(path: Path) -> None:
    try:
        libc.umount(str(path), libc.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):  # not a mount point, or no file
            raise


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
