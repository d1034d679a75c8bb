"""SPDY/3.1 framing, server side: what Kubernetes' streaming protocols (remotecommand's exec and
attach, portforward) run on, as kubelet's and containerd's streaming servers speak them with
moby/spdystream. No maintained Python library speaks SPDY, so the little of it these protocols
use is written here: SYN_STREAM from the client, SYN_REPLY, data frames with FIN, RST_STREAM,
PING, GOAWAY; header blocks compressed with zlib primed with the protocol's dictionary (one
compression context per direction for the connection's life). Flow control is not enforced by
spdystream and is not here either: WINDOW_UPDATE and SETTINGS are read and ignored.
"""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections.abc import Callable

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_FRAME = 1 << 24

# The header-compression dictionary of the SPDY/3 specification (draft 3, section 2.6.10.1):
# length-prefixed header names and values, then a run of common strings.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
    "allow authorization cache-control connection content-base content-encoding content-language content-length "
    "content-location content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class ProtocolError(Exception):
    pass


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        off, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, off)
            name = block[off + 4 : off + 4 + n].decode()
            off += 4 + n
            (v,) = struct.unpack_from(">I", block, off)
            out[name] = block[off + 4 : off + 4 + v].decode()
            off += 4 + v
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"bad header block: {exc}") from None


class Stream:
    """One client-opened stream: its headers, a blocking reader of what the client sends, a writer."""

    def __init__(self, conn: Connection, stream_id: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.id = stream_id
        self.headers = headers
        self._buf = bytearray()
        self._eof = False
        self._cond = threading.Condition()
        self.closed = False  # our side sent FIN

    def feed(self, data: bytes, fin: bool) -> None:
        with self._cond:
            self._buf += data
            self._eof = self._eof or fin
            self._cond.notify_all()

    def read(self, n: int = 65536) -> bytes:
        """Up to N bytes; b"" at the client's FIN (or the connection's end)."""
        with self._cond:
            while not self._buf and not self._eof:
                self._cond.wait()
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data

    def write(self, data: bytes) -> None:
        for i in range(0, len(data), 32768):
            self.conn.send_data(self.id, data[i : i + 32768])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.send_data(self.id, b"", fin=True)


class Connection:
    """A server-side SPDY session on an upgraded socket; `on_stream` is called for each new stream
    (from the reader thread: it must not block)."""

    def __init__(self, sock: socket.socket, on_stream: Callable[[Stream], None]) -> None:
        self.sock = sock
        self.on_stream = on_stream
        self.streams: dict[int, Stream] = {}
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._send_lock = threading.Lock()
        self.closed = threading.Event()

    # --- sending -------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        with self._send_lock:
            if self.closed.is_set():
                return
            try:
                self.sock.sendall(frame)
            except OSError:
                self.closed.set()

    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        self._send(struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload)

    def send_data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        self._send(
            struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data
        )

    def reply(self, stream_id: int, headers: dict[str, str] | None = None) -> None:
        with self._send_lock:  # the compression context is the connection's: one block at a time, in order
            block = self._deflate.compress(encode_headers(headers or {})) + self._deflate.flush(
                zlib.Z_SYNC_FLUSH
            )
        self._control(SYN_REPLY, 0, struct.pack(">I", stream_id & 0x7FFFFFFF) + block)

    def reset(self, stream_id: int, status: int = RST_CANCEL) -> None:
        self._control(RST_STREAM, 0, struct.pack(">II", stream_id & 0x7FFFFFFF, status))

    def close(self) -> None:
        if self.closed.is_set():
            return
        self._control(GOAWAY, 0, struct.pack(">II", 0, 0))
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for stream in list(self.streams.values()):
            stream.feed(b"", True)

    # --- receiving -----------------------------------------------------------------------------

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def serve(self) -> None:
        """Read frames until the client goes away; then every stream sees EOF."""
        try:
            while not self.closed.is_set():
                head = self._recv_exact(8)
                first, second = struct.unpack(">II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                payload = self._recv_exact(length) if length else b""
                if first & 0x80000000:
                    self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, payload)
                else:
                    stream = self.streams.get(first & 0x7FFFFFFF)
                    if stream is not None:
                        stream.feed(payload, bool(flags & FLAG_FIN))
        except (EOFError, OSError, ProtocolError, zlib.error):
            pass
        finally:
            self.closed.set()
            for stream in list(self.streams.values()):
                stream.feed(b"", True)

    def _on_control(self, version: int, kind: int, flags: int, payload: bytes) -> None:
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}")
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = Stream(self, stream_id, headers)
            if flags & FLAG_FIN:
                stream.feed(b"", True)
            self.streams[stream_id] = stream
            self.reply(stream_id)
            self.on_stream(stream)
        elif kind == HEADERS:
            self._inflate.decompress(payload[4:])  # keep the compression context in step
        elif kind == RST_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            reset = self.streams.get(stream_id)
            if reset is not None:
                reset.closed = True
                reset.feed(b"", True)
        elif kind == PING:
            self._control(PING, 0, payload)
        elif kind == GOAWAY:
            raise EOFError
