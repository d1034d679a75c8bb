"""A container's stdio: copying between its pipes (or pty master) and the client's FIFOs.

The client (pycontainerd's caller, like containerd's cio) makes FIFOs and passes their
paths; the shim opens each one O_RDWR, so it is always a reader and a writer of its own
FIFOs: a client that goes away is neither EOF on stdin nor EPIPE on stdout, and data
sitting in a FIFO survives until the next reader opens it.

Output never blocks the container and is never dropped: what the stdout FIFO cannot take
right now (nobody reads, or the reader is slow) is appended to a spool file in the state
directory and fed to the FIFO as it drains; when the spool is empty it is truncated, so
it only grows while no one reads. The shim's memory stays flat whatever the container
writes. When the container's side is closed and everything is delivered, the shim waits
for the FIFO itself to be read empty and then closes it, which is the reader's EOF.

A `k8s-file://` target (shim/crilog.py) is different: the shim writes the CRI log file itself,
and the FIFO named in the URI only gets a lossy copy for live readers (CRI attach).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys

from shim import crilog
from shim.loop import ERR, IN, OUT, Loop, Timer

CHUNK = 65536
_FIONREAD = 0x541B


def open_target(path: str, for_output: bool) -> int:
    """A FIFO path (containerd's cio), or file:///path (append to a regular file); for a
    k8s-file:// URI its tee FIFO (/dev/null without one), the log being opened by open_log."""
    if path.startswith(crilog.SCHEME):
        if not for_output:
            raise ValueError(f"{crilog.SCHEME} works for stdout and stderr, not stdin")
        tee = crilog.parse(path)[2]
        return open_target(tee, True) if tee else null_fd(os.O_WRONLY | os.O_NONBLOCK)
    if path.startswith("file://"):
        if not for_output:
            raise ValueError("file:// works for stdout and stderr, not stdin")
        return os.open(path[7:], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o640)
    if "://" in path:
        raise ValueError(f"unsupported stdio URI {path!r}: use a FIFO path, file:///path or k8s-file:///path")
    # O_RDWR on a FIFO never blocks and keeps the FIFO alive between readers (Linux semantics).
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def open_log(path: str, stream: str) -> crilog.CRILog | None:
    """The CRI log writer of a k8s-file:// target, None for any other."""
    if not path.startswith(crilog.SCHEME):
        return None
    log_path, max_line, _ = crilog.parse(path)
    return crilog.CRILog(log_path, stream, max_line)


def _queued(fd: int) -> int:
    """Bytes written to a FIFO that no reader has taken yet."""
    return int.from_bytes(fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0"), sys.byteorder)


class Output:
    """One container output stream (pipe read end or pty master) into one FIFO, spooling what it cannot take."""

    def __init__(
        self, loop: Loop, src: int, fifo: int, spool_path: str, log: crilog.CRILog | None = None
    ) -> None:
        """FIFO is an fd from open_target, or -1 to read and discard (a terminal nobody asked to see);
        with LOG, the output is logged there and FIFO only gets what it can take at once."""
        self.loop = loop
        self.log = log
        self.fifo = fifo
        self.is_fifo = fifo >= 0 and stat.S_ISFIFO(os.fstat(fifo).st_mode)
        self.src = src
        self.spool_path = spool_path
        self.spool = -1
        self.read_off = 0
        self.size = 0
        self.timer: Timer | None = None
        self.poll_delay = 0.05
        os.set_blocking(src, False)
        loop.watch(src, IN, self._on_src)

    @property
    def done(self) -> bool:
        """The container's side is closed and every byte has been handed to the FIFO."""
        return self.src < 0 and self.read_off == self.size

    def _on_src(self, _mask: int) -> None:
        self.drain(limit=16)

    def drain(self, limit: int = 1 << 30) -> None:
        """Read what the container has written (at most LIMIT chunks, so one stream cannot starve the rest)."""
        while self.src >= 0 and limit > 0:
            limit -= 1
            try:
                data = os.read(self.src, CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: a pty master whose last slave closed
                    raise
                data = b""
            if not data:
                self.loop.unwatch(self.src)
                os.close(self.src)
                self.src = -1
                if self.log is not None:
                    self.log.finish()
                self._maybe_finish()
                return
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        if self.log is not None:
            self.log.feed(data)
            self._tee(data)
            return
        if self.fifo < 0:
            return
        if self.read_off == self.size:  # nothing queued: straight into the FIFO
            try:
                written = os.write(self.fifo, data)
            except BlockingIOError:
                written = 0
            if written == len(data):
                return
            data = data[written:]
        if self.spool < 0:
            self.spool = os.open(self.spool_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        os.pwrite(self.spool, data, self.size)
        self.size += len(data)
        self.loop.watch(self.fifo, OUT, self._on_fifo)

    def _tee(self, data: bytes) -> None:
        """A live copy: whatever the FIFO cannot take now is dropped (nobody is attached)."""
        if self.fifo >= 0:
            try:
                os.write(self.fifo, data)
            except OSError:
                pass

    def _on_fifo(self, _mask: int) -> None:
        while self.read_off < self.size:
            chunk = os.pread(self.spool, min(CHUNK, self.size - self.read_off), self.read_off)
            try:
                written = os.write(self.fifo, chunk)
            except BlockingIOError:
                return
            self.read_off += written
            if written < len(chunk):
                return
        # All delivered: the spool starts again from empty.
        os.ftruncate(self.spool, 0)
        self.read_off = self.size = 0
        self.loop.unwatch(self.fifo)
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self.done:
            return
        if self.spool >= 0:
            os.close(self.spool)
            self.spool = -1
            _unlink(self.spool_path)
        if self.log is not None:
            self.log.close()
        if self.fifo < 0:
            return
        # Closing our end while bytes still sit in the FIFO would discard them (we may be its
        # only holder): wait, with growing pauses, until a reader has taken them.
        if self.is_fifo and self.log is None and _queued(self.fifo) > 0:
            self.timer = self.loop.call_later(self.poll_delay, self._maybe_finish)
            self.poll_delay = min(self.poll_delay * 2, 0.5)
            return
        os.close(self.fifo)
        self.fifo = -1

    def close(self) -> None:
        """Stop now (the process is being deleted): whatever is still queued is dropped."""
        if self.timer is not None:
            self.timer.cancel()
        for fd in (self.src, self.fifo, self.spool):
            if fd >= 0:
                self.loop.unwatch(fd)
                os.close(fd)
        self.src = self.fifo = self.spool = -1
        if self.log is not None:
            self.log.close()
        _unlink(self.spool_path)


class Input:
    """The stdin FIFO into the container's stdin pipe (or pty master), with back-pressure instead of buffers."""

    def __init__(self, loop: Loop, fifo: int, dst: int, is_terminal: bool) -> None:
        self.loop = loop
        self.fifo = fifo
        self.dst = dst
        self.is_terminal = is_terminal
        self.pending = b""
        self.closing = False
        os.set_blocking(dst, False)
        loop.watch(self.fifo, IN, self._on_fifo)

    def _on_fifo(self, _mask: int) -> None:
        try:
            data = os.read(self.fifo, CHUNK)
        except BlockingIOError:
            return
        if data:
            self._write(data)

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self.dst, data)
        except BlockingIOError:
            written = 0
        except OSError:  # EPIPE/EIO: the container closed its stdin or is gone
            self.close()
            return
        if written < len(data):
            self.pending = data[written:]
            self.loop.unwatch(self.fifo)
            self.loop.watch(self.dst, OUT | ERR, self._on_dst)
        elif self.closing:
            self.close()

    def _on_dst(self, _mask: int) -> None:
        data, self.pending = self.pending, b""
        self.loop.unwatch(self.dst)
        if not self.closing and self.fifo >= 0:
            self.loop.watch(self.fifo, IN, self._on_fifo)
        self._write(data)

    def close_stdin(self) -> None:
        """CloseIO: deliver what the client already wrote, then EOF the container's stdin."""
        if self.closing or self.fifo < 0:
            return
        self.closing = True
        self.loop.unwatch(self.fifo)
        chunks = [self.pending]
        while True:
            try:
                data = os.read(self.fifo, CHUNK)
            except BlockingIOError:
                break
            if not data:
                break
            chunks.append(data)
        os.close(self.fifo)
        self.fifo = -1
        self.pending = b""
        if self.loop.handlers.get(self.dst) is not None:
            self.loop.unwatch(self.dst)
        self._write(b"".join(chunks) + (b"\x04" if self.is_terminal else b""))

    def close(self) -> None:
        for fd in (self.fifo, self.dst):
            if fd >= 0:
                self.loop.unwatch(fd)
                os.close(fd)
        self.fifo = self.dst = -1
        self.pending = b""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def null_fd(flags: int) -> int:
    return os.open(os.devnull, flags | os.O_CLOEXEC)
