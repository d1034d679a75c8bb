"""Container I/O on the client side: Docker's multiplexed frames, the hijacked attach/exec
stream (stdin in, stdout/stderr out, one select loop), raw terminal mode, SIGWINCH resize,
signal proxying and detach keys."""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from cli.client import Hijacked

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# Signals forwarded to the container when the client is attached (docker's --sig-proxy).
PROXIED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class DetachKeysError(ValueError):
    """A --detach-keys value that is not a comma-separated list of keys."""


def parse_detach_keys(spec: str) -> bytes:
    """ "ctrl-p,ctrl-q" -> b"\\x10\\x11"; single characters stand for themselves."""
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if len(key) == 1:
            out.append(ord(key))
            continue
        if key.lower().startswith("ctrl-") and len(key) == 6:
            ch = key[5].lower()
            if "a" <= ch <= "z":
                out.append(ord(ch) - ord("a") + 1)
                continue
            special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if ch in special:
                out.append(special[ch])
                continue
        raise DetachKeysError(f"Invalid detach keys ({spec}) provided")
    if not out:
        raise DetachKeysError(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


class Demuxer:
    """Splits Docker's stream frames ([type, 0, 0, 0, size32be] + payload) into stdout/stderr."""

    def __init__(self, write_out: Callable[[bytes], None], write_err: Callable[[bytes], None]) -> None:
        self._buf = b""
        self._out = write_out
        self._err = write_err

    def feed(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= 8:
            stream, size = self._buf[0], struct.unpack(">I", self._buf[4:8])[0]
            if len(self._buf) < 8 + size:
                return
            payload = self._buf[8 : 8 + size]
            self._buf = self._buf[8 + size :]
            (self._err if stream == 2 else self._out)(payload)

    def leftover(self) -> bytes:
        return self._buf


def write_fd(fd: int, data: bytes) -> None:
    """Write everything, tolerating a non-blocking fd (a terminal shared with the stdin side)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def copy_stream(chunks: Iterable[bytes], tty: bool, out_fd: int = 1, err_fd: int = 2) -> None:
    """Copy a logs-style body to our stdout/stderr, demultiplexing unless the container has a TTY."""
    if tty:
        for chunk in chunks:
            write_fd(out_fd, chunk)
        return
    demux = Demuxer(lambda b: write_fd(out_fd, b), lambda b: write_fd(err_fd, b))
    for chunk in chunks:
        demux.feed(chunk)


class RawTerminal:
    """Puts a terminal fd into raw mode (like cfmakeraw) and restores it on exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios

        try:
            self._saved = termios.tcgetattr(self.fd)
        except termios.error:
            return self
        mode = termios.tcgetattr(self.fd)
        mode[0] &= ~(
            termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
            | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON
        )  # fmt: skip
        mode[1] &= ~termios.OPOST
        mode[2] &= ~(termios.CSIZE | termios.PARENB)
        mode[2] |= termios.CS8
        mode[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSAFLUSH, mode)
        return self

    def __exit__(self, *_exc: object) -> None:
        import termios

        if self._saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass


def terminal_size(fd: int = 1) -> tuple[int, int] | None:
    """(rows, cols) of the terminal on fd, or None when it is not a terminal."""
    import fcntl
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return (rows, cols) if rows and cols else None


class PumpOptions:
    """How to run an attached session."""

    def __init__(
        self,
        tty: bool,  # the container has a TTY: output is raw, not framed
        stdin: bool,  # copy our stdin into the stream
        detach_keys: bytes = b"",
        on_resize: Callable[[], None] | None = None,  # called on SIGWINCH
        on_signal: Callable[[int], None] | None = None,  # proxied signals (sig-proxy)
    ) -> None:
        self.tty = tty
        self.stdin = stdin
        self.detach_keys = detach_keys
        self.on_resize = on_resize
        self.on_signal = on_signal


class PumpResult:
    def __init__(self, detached: bool) -> None:
        self.detached = detached  # the user typed the detach keys


class _DetachScanner:
    """Holds back a possible detach-key prefix; says when the whole sequence was typed."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    return bytes(out), True
                continue
            out += candidate
            self.held = b""
        return bytes(out), False


def pump(conn: Hijacked, opts: PumpOptions) -> PumpResult:
    """Run the attached session until the daemon ends the stream or the user detaches.

    One select loop, no threads: stdin is read only when the previous input has been
    fully sent, so a container that stops reading can never make us stop draining its
    output (which would deadlock both sides)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    previous_handlers: dict[int, object] = {}
    watched: list[int] = []
    if opts.on_resize is not None:
        watched.append(signal.SIGWINCH)
    if opts.on_signal is not None:
        watched.extend(PROXIED_SIGNALS)
    for sig in watched:
        previous_handlers[sig] = signal.signal(sig, lambda *_: None)
    old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    sock = conn.sock
    # A TLS socket stays blocking: its non-blocking errors are ssl-specific, and select()
    # cannot see bytes OpenSSL already decrypted (drained below with pending()).
    tls_pending = getattr(sock, "pending", None)
    if tls_pending is None:
        sock.setblocking(False)
    demux = Demuxer(lambda b: write_fd(1, b), lambda b: write_fd(2, b))
    scanner = _DetachScanner(opts.detach_keys)
    stdin_open = opts.stdin
    outgoing = b""
    detached = False
    try:
        if conn.pending:
            (write_fd(1, conn.pending) if opts.tty else demux.feed(conn.pending))
        while True:
            rlist: list[int | socket.socket] = [sock, wake_r]
            if stdin_open and not outgoing:
                rlist.append(0)
            wlist: list[socket.socket] = [sock] if outgoing else []
            try:
                readable, writable, _ = select.select(rlist, wlist, [])
            except InterruptedError:
                continue
            if wake_r in readable:
                _handle_signals(wake_r, opts)
            if writable and outgoing:
                try:
                    sent = sock.send(outgoing)
                    outgoing = outgoing[sent:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    outgoing, stdin_open = b"", False
                if not outgoing and not stdin_open:
                    conn.close_write()
            if 0 in readable:
                try:
                    data = os.read(0, 65536)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is not None:
                    if not data:
                        stdin_open = False
                        if not outgoing:
                            conn.close_write()
                    else:
                        data, detached = scanner.feed(data)
                        outgoing += data
                        if detached:
                            break
            if sock in readable:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                        break
                    raise
                if not data:
                    break
                while tls_pending is not None and tls_pending() > 0:
                    data += sock.recv(65536)
                if opts.tty:
                    write_fd(1, data)
                else:
                    demux.feed(data)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        os.close(wake_r)
        os.close(wake_w)
    return PumpResult(detached=detached)


def _handle_signals(wake_r: int, opts: PumpOptions) -> None:
    try:
        data = os.read(wake_r, 512)
    except BlockingIOError:
        return
    for signum in data:
        if signum == signal.SIGWINCH:
            if opts.on_resize is not None:
                opts.on_resize()
        elif opts.on_signal is not None:
            opts.on_signal(signum)
