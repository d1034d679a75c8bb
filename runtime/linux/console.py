"""Terminals: a pty made inside the container, its master handed out over a console socket.

The console-socket protocol (runc's, which containerd speaks): the runtime connects to a
unix socket the caller listens on and sends the pty master as SCM_RIGHTS ancillary data.
"""

from __future__ import annotations

import array
import os
import select
import signal
import socket
import sys
import termios
import tty
from collections.abc import Callable

from common import libc
from runtime.errors import PyruncError


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise PyruncError(f"cannot connect to console socket {path}: {exc.strerror}") from None
    return sock


def open_pty() -> tuple[int, str]:
    """Open a pty pair on the devpts instance at /dev/pts of the current root."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    number = libc.pty_unlock_and_number(master)
    return master, f"/dev/pts/{number}"


def send_master(sock_fd: int, master: int) -> None:
    sock = socket.socket(fileno=sock_fd)
    try:
        sock.sendmsg([b"/dev/ptmx"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [master]))])
    finally:
        sock.detach()


def receive_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise PyruncError("the container did not send a terminal")
    return fds[0]


def attach_slave(slave_path: str) -> None:
    """Make the pty slave the controlling terminal and stdio of this (session-leader) process."""
    slave = os.open(slave_path, os.O_RDWR)
    libc.set_controlling_tty(slave)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def proxy(master: int, child_done: Callable[[], bool]) -> None:
    """Foreground run/exec with a terminal: copy between our stdio and the pty until the container's side closes."""
    stdin_fd = sys.stdin.fileno()
    saved = None
    if os.isatty(stdin_fd):
        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)
        _copy_winsize(stdin_fd, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin_fd, master))
    readers = [master, stdin_fd]
    try:
        while True:
            try:
                ready, _, _ = select.select(readers, [], [], 0.5)
            except InterruptedError:
                continue
            if not ready and child_done():
                break
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin_fd in ready:
                data = os.read(stdin_fd, 65536)
                if data:
                    os.write(master, data)
                else:
                    readers.remove(stdin_fd)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _copy_winsize(src: int, dst: int) -> None:
    try:
        rows, cols = libc.get_winsize(src)
        libc.set_winsize(dst, rows, cols)
    except OSError:
        pass
