"""RawStream: one hijacked connection as its handler sees it (responses, raw bytes both ways,
half-close), fed by the protocol (protocol.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES

from dockerd.hijack.routes import RAW_STREAM, ResponseStateError, StreamClosedError

if TYPE_CHECKING:
    from dockerd.hijack.protocol import HijackingH11Protocol

# Unread stdin held per connection before the socket stops being read (back-pressure to the client).
READ_HIGH_WATER = 1 << 16


class ResponseState(Enum):
    NONE = "none"  # nothing sent yet
    COMPLETE = "complete"  # a whole HTTP response was sent; the connection may go back to HTTP
    STREAMING = "streaming"  # a 101 or close-delimited 200 head was sent; raw bytes from now on


def _header_lines(headers: Sequence[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in headers:
        if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
            raise ValueError(f"invalid response header {name!r}: {value!r}")
        out += f"{name}: {value}\r\n".encode("latin-1")
    return bytes(out)


class RawStream:
    """The client connection of one hijacked request, as seen by its handler.

    Reads return stdin bytes as they arrive (b"" once the client half-closes or goes away).
    Writes raise StreamClosedError once the connection is gone, so an output pump stops by
    itself; `wait_closed()` lets a handler notice a departed client while it has nothing to write.
    Each `write` goes out whole, so write a multiplexed frame (header + payload) in one call when
    several tasks write concurrently.
    """

    def __init__(
        self, protocol: HijackingH11Protocol, request_line: tuple[str, str, str], upgrade: bool
    ) -> None:
        self._protocol = protocol
        self._upgrade = upgrade
        self._transport = protocol.transport
        self._request_line = request_line  # (method, path with query, http version) for the access log
        self.started = time.monotonic()
        self.status = 0  # of the response, once one is started
        self._state = ResponseState.NONE
        self._buffer = bytearray()
        self._leading = 0  # bytes of _buffer h11 also still holds (those after the request body)
        self._consumed = 0
        self._eof = False
        self._lost = False
        self._write_closed = False
        self._readable = asyncio.Event()
        self._closed = asyncio.Event()

    # --- responses -------------------------------------------------------------------------

    @property
    def responded(self) -> bool:
        """Whether a response (complete or streaming) has been started."""
        return self._state is not ResponseState.NONE

    async def send_upgrade_response(
        self, content_type: str = RAW_STREAM, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Answer `101 UPGRADED` exactly as dockerd does; `headers` go after `Upgrade: tcp`."""
        head = (
            f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        ).encode("latin-1")
        self._start_stream(head + _header_lines(headers) + b"\r\n", 101)

    async def send_plain_response(
        self, status: int = 200, content_type: str = RAW_STREAM, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Answer a non-upgrading client: a status line and a body that lasts until the connection closes."""
        if not 200 <= status < 600:
            raise ValueError(f"status {status} cannot carry a streamed body")
        reason = STATUS_PHRASES.get(status, b"").decode("latin-1")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n".encode("latin-1")
        self._start_stream(head + _header_lines(headers) + b"\r\n", status)

    async def begin_stream(
        self, content_type: str = RAW_STREAM, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """101 for a client that asked to upgrade, else a close-delimited 200 (dockerd's choice)."""
        if self._upgrade:
            await self.send_upgrade_response(content_type, headers)
        else:
            await self.send_plain_response(200, content_type, headers)

    async def send_response(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Answer a complete HTTP response; afterwards the connection returns to HTTP keep-alive."""
        if self._state is not ResponseState.NONE:
            raise ResponseStateError("a response was already sent on this connection")
        if not 200 <= status < 600:
            raise ValueError(f"status {status} is not a final response status")
        bodiless = status in (204, 304)
        if bodiless and body:
            raise ValueError(f"a {status} response has no body")
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        _header_lines(headers)  # validates
        head: list[tuple[bytes, bytes]] = list(self._protocol.server_state.default_headers)
        if content_type is not None and not bodiless:
            head.append((b"content-type", content_type.encode("latin-1")))
        if not bodiless:
            head.append((b"content-length", str(len(body)).encode()))
        conn = self._protocol.conn
        out = conn.send(
            h11.Response(status_code=status, headers=head + extra, reason=STATUS_PHRASES.get(status, b""))
        )
        if body:
            out = (out or b"") + (conn.send(h11.Data(data=body)) or b"")
        out = (out or b"") + (conn.send(h11.EndOfMessage()) or b"")
        self._state = ResponseState.COMPLETE
        self.status = status
        self._protocol.log_access(self._request_line, status)
        if not self._transport.is_closing():
            self._transport.write(out)

    async def send_error(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer Docker's error shape, `{"message": ...}`, with `status` (e.g. 404, 409)."""
        body = json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"
        await self.send_response(status, body, "application/json", headers)

    def _start_stream(self, head: bytes, status: int) -> None:
        if self._state is not ResponseState.NONE:
            raise ResponseStateError("a response was already sent on this connection")
        if self._lost or self._transport.is_closing():
            raise StreamClosedError("the client closed the connection")
        self._state = ResponseState.STREAMING
        self.status = status
        self._protocol.log_access(self._request_line, status)
        self._transport.write(head)

    # --- raw bytes ---------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send raw bytes after a streaming head; waits while the client is slow to read."""
        if self._state is not ResponseState.STREAMING:
            raise ResponseStateError("write() needs send_upgrade_response() or send_plain_response() first")
        if self._lost or self._write_closed or self._transport.is_closing():
            raise StreamClosedError("the client closed the connection")
        if data:
            self._transport.write(data)
        flow = self._protocol.flow
        if flow.write_paused:
            await flow.drain()

    async def read(self, n: int = 65536) -> bytes:
        """Up to `n` bytes from the client; b"" once it half-closed or disconnected."""
        if n <= 0:
            raise ValueError("read size must be positive")
        while not self._buffer and not self._eof and not self._lost:
            self._readable.clear()
            await self._readable.wait()
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._consumed += len(chunk)
        flow = self._protocol.flow
        if flow.read_paused and len(self._buffer) < READ_HIGH_WATER:
            flow.resume_reading()
        return chunk

    @property
    def at_eof(self) -> bool:
        """The client will send nothing more and everything it sent was read."""
        return (self._eof or self._lost) and not self._buffer

    @property
    def closed(self) -> bool:
        """The connection is gone (closed by either side)."""
        return self._lost

    async def wait_closed(self) -> None:
        """Return once the connection is gone."""
        await self._closed.wait()

    async def close_write(self) -> None:
        """Half-close: the client sees EOF and may keep sending (shutdown(SHUT_WR)); no-op on TLS,
        whose only end-of-data signal (close_notify) asyncio cannot send without closing."""
        if self._state is not ResponseState.STREAMING:
            raise ResponseStateError("close_write() needs a streaming response first")
        if self._write_closed or self._lost or self._transport.is_closing():
            return
        self._write_closed = True
        if self._transport.can_write_eof():
            self._transport.write_eof()

    async def close(self) -> None:
        """Close the connection once queued output is flushed."""
        if not self._transport.is_closing():
            self._transport.close()

    # --- called by the protocol ----------------------------------------------------------------

    def _start_raw(self, leading: bytes, eof: bool) -> None:
        self._buffer += leading
        self._leading = len(leading)
        self._eof = self._eof or eof
        self._readable.set()

    def _feed(self, data: bytes) -> None:
        self._buffer += data
        self._readable.set()
        if len(self._buffer) >= READ_HIGH_WATER:
            self._protocol.flow.pause_reading()

    def _feed_eof(self) -> None:
        self._eof = True
        self._readable.set()

    def _connection_lost(self) -> None:
        self._lost = True
        self._readable.set()
        self._closed.set()

    def _unread_after_request(self) -> bytes | None:
        """Bytes received after the request that h11 has not seen, if the handler read none."""
        if self._consumed or self._eof or self._lost:
            return None
        return bytes(self._buffer[self._leading :])
