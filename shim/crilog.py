"""Container output into a CRI log file, written by the shim itself (`k8s-file://` stdio URIs).

Why the shim and not pycontainerd's CRI plugin: the shim holds the container's pipe from the
first byte to the last and outlives the daemon. A daemon copying a FIFO into the log loses what
it has read but not yet written when it is killed (kill -9, OOM killer, crash), and writing
before consuming would write it twice instead; here no daemon restart can touch the log.

URI: `k8s-file:///abs/log/path?max_line=N&tee=/abs/fifo`, the values percent-encoded. Both
stdout and stderr name the same file; each record is one write(2) on an O_APPEND descriptor,
so the two streams interleave by whole records. `tee` is a FIFO that gets the raw bytes too,
for CRI attach sessions the daemon serves; it is lossy by design (attach shows output from
now on, as containerd's does): what the FIFO cannot take at once is dropped, never spooled.

Records, as containerd's CRI plugin writes them (kubelet and `crictl logs` parse them):
`<RFC3339Nano UTC> <stdout|stderr> <F|P> <text>\\n`, F a full line, P a piece of a line longer
than max_line (the rest follows) or a last line the stream ended without a line end; the line
end "\\n" or "\\r\\n" is not part of the text.
Rotation: kubelet renames the file, then calls ReopenContainerLog; the writer checks before each
batch that the path still names its file and otherwise opens it anew, so a rotation needs no
call into the shim (the daemon only makes sure the new file exists).
"""

from __future__ import annotations

import os
import time

SCHEME = "k8s-file://"
DEFAULT_MAX_LINE = 16 * 1024


def _unquote(text: str) -> str:
    """%XX decoding (urllib.parse imports re, which the shim does not load)."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode()
    while i < len(raw):
        if raw[i] == 0x25 and i + 2 < len(raw):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode()


def parse(uri: str) -> tuple[str, int, str]:
    """(log path, max line, tee FIFO path or "") of a k8s-file:// URI; ValueError if malformed."""
    rest = uri[len(SCHEME) :]
    path, _, query = rest.partition("?")
    path = _unquote(path)
    if not path.startswith("/"):
        raise ValueError(f"{SCHEME} needs an absolute path: {uri!r}")
    max_line, tee = DEFAULT_MAX_LINE, ""
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        if key == "max_line":
            try:
                max_line = int(value)
            except ValueError:
                raise ValueError(f"{SCHEME}: max_line must be a number: {uri!r}") from None
        elif key == "tee":
            tee = _unquote(value)
        else:
            raise ValueError(f"{SCHEME}: unknown parameter {key!r}")
    return path, (max_line if max_line > 0 else 1 << 30), tee


class Clock:
    """Go's RFC3339Nano in UTC, as containerd stamps records: nanoseconds with trailing zeros
    dropped (no fraction at all on a whole second); the seconds part formatted once per second."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def now(self) -> bytes:
        ns = time.time_ns()
        second, frac = divmod(ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        if not frac:
            return self._prefix + b"Z"
        return self._prefix + (b".%09d" % frac).rstrip(b"0") + b"Z"


class CRILog:
    """One stream's writer into the log file: records whole lines, keeps the unfinished one."""

    __slots__ = ("path", "stream", "max_line", "fd", "ident", "pending", "clock")

    def __init__(self, path: str, stream: str, max_line: int) -> None:
        self.path = path
        self.stream = stream.encode()
        self.max_line = max_line
        self.pending = b""
        self.clock = Clock()
        self.fd = -1
        self.ident = (0, 0)
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        st = os.fstat(fd)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.ident = fd, (st.st_dev, st.st_ino)

    def _follow_rotation(self) -> None:
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self.ident:
                return
        except FileNotFoundError:
            pass
        self._open()

    def feed(self, data: bytes) -> None:
        """The container wrote DATA: log every line it completes (and pieces of over-long ones)."""
        buf = self.pending + data if self.pending else data
        records: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl  # "\r\n" ends a line too
            self._line(records, buf[start:end], b"F")
            start = nl + 1
        rest = buf[start:]
        while len(rest) > self.max_line:
            cut = self.max_line
            if rest[cut - 1] == 0x0D:  # a "\r\n" split across pieces: the "\r" waits for its "\n"
                cut -= 1
            records.append(self._record(rest[:cut], b"P"))
            rest = rest[cut:]
        self.pending = rest
        self._write(records)

    def finish(self) -> None:
        """The stream ended: an unfinished last line is logged as it is, a piece (P), as containerd
        logs it (readers show it without a line end)."""
        if self.pending:
            rest, self.pending = self.pending, b""
            self._write([self._record(rest, b"P")])

    def _line(self, records: list[bytes], line: bytes, tag: bytes) -> None:
        while len(line) > self.max_line:
            records.append(self._record(line[: self.max_line], b"P"))
            line = line[self.max_line :]
        records.append(self._record(line, tag))

    def _record(self, text: bytes, tag: bytes) -> bytes:
        return b"%s %s %s %s\n" % (self.clock.now(), self.stream, tag, text)

    def _write(self, records: list[bytes]) -> None:
        if not records or self.fd < 0:
            return
        data = b"".join(records)
        try:
            self._follow_rotation()
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError as exc:
            # A full or failing disk never blocks the container: the lines are dropped, and said so.
            from shim.loop import log

            log(f"cannot write the CRI log {self.path}: {exc}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
