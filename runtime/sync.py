"""The parent <-> container-init conversation: newline-delimited JSON over two pipes.

Both sides are single-threaded and the messages are tiny, so blocking pipes with a line
buffer are all the protocol needs (pipes rather than a socketpair: importing socket costs
more than this whole exchange). EOF means the other side died or exec'd; the parent turns
that into an error rather than hanging.
"""

from __future__ import annotations

import os

from common import fastjson
from runtime.errors import InitFailed, PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Channel:
    __slots__ = ("read_fd", "write_fd", "_buf", "_backlog")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buf = b""
        # Stage 1 and stage 2 share the child's write end, so stage 2's first message can overtake
        # stage 1's last one; expect() parks what it was not waiting for here.
        self._backlog: list[dict[str, Any]] = []

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        down_r, down_w = os.pipe2(os.O_CLOEXEC)
        up_r, up_w = os.pipe2(os.O_CLOEXEC)
        return cls(up_r, down_w), cls(down_r, up_w)

    def send(self, kind: str, **fields: Any) -> None:
        data = fastjson.dumps({"type": kind, **fields}).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data) :]

    def recv(self, timeout: float | None = None) -> dict[str, Any]:
        if self._backlog:
            return self._backlog.pop(0)
        while b"\n" not in self._buf or self._buf[:1] == EXEC_ERRNO:
            if self._buf[:1] == EXEC_ERRNO and len(self._buf) >= 5:
                # The exec stub's record (never a JSON line's first byte): its execve failed.
                number, self._buf = exec_errno(self._buf), self._buf[5:]
                return {"type": "exec-errno", "errno": number}
            if timeout is not None:
                import select

                if not select.select([self.read_fd], [], [], timeout)[0]:
                    raise PyruncError("timed out waiting for the container's init")
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                raise PyruncError("container init exited before it was ready")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg: dict[str, Any] = fastjson.loads(line)
        return msg

    def recv_or_eof(self) -> dict[str, Any] | None:
        """None when the other side closed: for exec, EOF on a close-on-exec channel means execve worked."""
        try:
            return self.recv()
        except PyruncError:
            return None

    def expect(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        for i, parked in enumerate(self._backlog):
            if parked["type"] in (kind, "error"):
                msg = self._backlog.pop(i)
                break
        else:
            while True:
                msg = self._read_message(timeout)
                if msg["type"] in (kind, "error"):
                    break
                self._backlog.append(msg)
        if msg["type"] == "error":
            raise InitFailed(msg["message"])
        return msg

    def _read_message(self, timeout: float | None) -> dict[str, Any]:
        backlog, self._backlog = self._backlog, []
        try:
            return self.recv(timeout)
        finally:
            self._backlog = backlog + self._backlog

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def report_and_exit(chan: Channel, exc: BaseException) -> None:
    """In a forked child: tell the parent what went wrong, then leave without running Python's cleanup."""
    try:
        chan.send("error", message=describe(exc))
    except OSError:
        pass
    os._exit(1)


# After `start` has released it, the init tells `start` through the exec fifo how its last steps
# went: the fifo's write end is close-on-exec, so EOF after RELEASED means the user's process runs.
RELEASED = b"0"
FAILED = b"E"  # then the message, UTF-8
EXEC_ERRNO = b"\0"  # then errno, 4 bytes little endian: the exec stub's execve failed


def failure_record(exc: BaseException) -> bytes:
    return FAILED + describe(exc).encode(errors="replace")


def exec_errno(record: bytes) -> int:
    return int.from_bytes(record[1:5], "little")


def exec_failure(arg0: str, number: int) -> str:
    return f'exec: "{arg0}": {os.strerror(number)}'


def read_failure(data: bytes, arg0: str) -> str | None:
    """What the init reported after RELEASED (None: nothing, the user's process was exec'd)."""
    if not data:
        return None
    if data[:1] == FAILED:
        return data[1:].decode(errors="replace")
    if data[:1] == EXEC_ERRNO and len(data) >= 5:
        return exec_failure(arg0, exec_errno(data))
    return f"unexpected message from the container's init: {data[:64]!r}"


def describe(exc: BaseException) -> str:
    if isinstance(exc, PyruncError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        # A libc.SyscallError's strerror already names the call: "capset: Operation not permitted".
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{exc.__class__.__name__}: {exc}"
