"""The parent <-> container-init conversation: newline-delimited JSON over a socketpair.

Both sides are single-threaded and the messages are tiny, so a blocking stream with a
line buffer is all the protocol needs. EOF from the child means it died; the parent
turns that into an error rather than hanging.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from runtime.errors import PyruncError


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(parent), cls(child)

    def send(self, kind: str, **fields: Any) -> None:
        self.sock.sendall(json.dumps({"type": kind, **fields}).encode() + b"\n")

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        while b"\n" not in self._buf:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise PyruncError("timed out waiting for the container's init") from None
            if not chunk:
                raise PyruncError("container init exited before it was ready")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = json.loads(line)
        return msg

    def recv_or_eof(self) -> dict[str, Any] | None:
        """None when the other side closed: for exec, EOF on a close-on-exec channel means execve worked."""
        try:
            return self.recv()
        except PyruncError:
            return None

    def expect(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        msg = self.recv(timeout)
        if msg["type"] == "error":
            raise PyruncError(msg["message"])
        if msg["type"] != kind:
            raise PyruncError(f"container init sent {msg['type']!r} where {kind!r} was expected")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def report_and_exit(chan: Channel, exc: BaseException) -> None:
    """In a forked child: tell the parent what went wrong, then leave without running Python's cleanup."""
    message = str(exc) if isinstance(exc, PyruncError) else _describe(exc)
    try:
        chan.send("error", message=message)
    except OSError:
        pass
    os._exit(1)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        text = str(exc) if exc.__class__.__name__ == "SyscallError" else f"{exc.strerror}{where}"
        return text
    return f"{exc.__class__.__name__}: {exc}"
