"""Hijacked HTTP connections (Docker's attach / exec start) for an ASGI app served by uvicorn.

Docker's attach and exec-start endpoints take over the HTTP connection: the client sends
`Connection: Upgrade` + `Upgrade: tcp`, the daemon answers `HTTP/1.1 101 UPGRADED`, and from then
on the socket carries stdin one way and (multiplexed) output the other, with half-close in
both directions. Clients without the Upgrade header get `200 OK` and a close-delimited body.
ASGI cannot express any of that, so this module teaches uvicorn's h11 protocol to hand such
requests to a plain async handler instead of the ASGI app:

    router = HijackRouter()
    router.add("POST", r"/containers/(?P<name>[^/]+)/attach", attach_handler)
    config = uvicorn.Config(app, uds=path, http=make_protocol_class(router))

A route matches with or without the `/vX.Y` prefix. The handler receives a `HijackRequest`
(head and the complete body) and a `RawStream`; it either answers a complete HTTP response
(`send_error` / `send_response`, after which the connection goes back to HTTP keep-alive) or
starts a stream (`send_upgrade_response` / `send_plain_response` / `begin_stream`), after which
the connection is raw bytes until it closes.

Behaviour worth knowing when writing handlers:
* dockerd (API <= 1.41) labels every attach/exec stream `application/vnd.docker.raw-stream`, framed
  or not; `multiplexed-stream` only appears with API 1.42.
* docker-py reads the 101 head through a buffered file and then reads frames from the bare socket,
  so output written in the same instant as the head can be lost to it; dockerd gets away with it
  because the exec'd process or the container output only starts afterwards. Keep that order.
* A client half-close (the CLI's stdin EOF) leaves the output direction open, on unix sockets, TCP
  and TLS alike. For TLS that takes `_TlsHalfClose`: asyncio's SSL protocol would otherwise shut
  the whole connection down on the client's close_notify (what the Go CLI sends) or TCP FIN.

The hook points are uvicorn's `_should_upgrade` / `handle_websocket_upgrade` (the place where
uvicorn itself leaves HTTP for WebSockets; checked against uvicorn 0.54) and, for TLS, asyncio's
SSLProtocol `_start_shutdown` / `eof_received` (CPython 3.11+); tests/dockerd/test_hijack.py pins
both behaviours.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar
from urllib.parse import parse_qs

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string, is_ssl

from dockerd import accesslog

__all__ = [
    "MULTIPLEXED_STREAM",
    "RAW_STREAM",
    "HijackError",
    "HijackHandler",
    "HijackRequest",
    "HijackRouter",
    "HijackingH11Protocol",
    "RawStream",
    "ResponseStateError",
    "StreamClosedError",
    "make_protocol_class",
]

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# Request bodies of hijacked endpoints are small JSON documents (exec start's {"Detach":..,"Tty":..}).
MAX_BODY = 1 << 20
# Unread stdin held per connection before the socket stops being read (back-pressure to the client).
READ_HIGH_WATER = 1 << 16

logger = logging.getLogger("dockerd.hijack")


class HijackError(Exception):
    """Misuse of a hijacked connection by its handler."""


class ResponseStateError(HijackError):
    """A response method was called in the wrong order (e.g. write before any response head)."""


class StreamClosedError(ConnectionError):
    """The connection is closed (the client went away, or the handler closed it)."""


@dataclass(frozen=True)
class HijackRequest:
    """The head and body of a request handed to a hijack handler."""

    method: str
    path: str  # decoded, without the query string and without root_path
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in arrival order
    params: dict[str, str]  # the route regex's named groups
    api_version: str | None  # "1.41" for /v1.41/..., None when unversioned
    upgrade: bool  # the client sent an Upgrade header (Docker's test): answer 101, else 200
    body: bytes
    http_version: str
    client: tuple[str, int] | None

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter `name` (as Go's FormValue), or `default`."""
        values = self.query.get(name)
        return values[0] if values else default

    def query_bool(self, name: str) -> bool:
        """Docker's boolean query parsing: absent, "", "0", "no", "false", "none" are false."""
        value = (self.query_value(name) or "").strip().lower()
        return value not in ("", "0", "no", "false", "none")

    def json(self) -> Any:
        """The body parsed as JSON (None when empty); raises ValueError when malformed."""
        try:
            return json.loads(self.body) if self.body.strip() else None
        except RecursionError:  # nesting deeper than Python's stack: malformed for us
            raise ValueError("JSON nested too deeply") from None


HijackHandler = Callable[[HijackRequest, "RawStream"], Awaitable[None]]


@dataclass(frozen=True)
class HijackRoute:
    method: str
    pattern: re.Pattern[str]
    handler: HijackHandler


@dataclass(frozen=True)
class HijackMatch:
    route: HijackRoute
    params: dict[str, str]
    api_version: str | None


@dataclass
class HijackRouter:
    """The routes whose requests bypass ASGI. Path regexes are matched in full against the path."""

    routes: list[HijackRoute] = field(default_factory=list)

    def add(self, method: str, path_regex: str, handler: HijackHandler) -> None:
        """Register `handler` for `method` on `path_regex` (e.g. r"/exec/(?P<id>[^/]+)/start")."""
        body = path_regex.removeprefix("^").removesuffix("$")
        if not body.startswith("/"):
            raise ValueError(f"hijack route {path_regex!r} must start with '/'")
        pattern = re.compile(r"(?:/v(?P<api_version>[0-9]+(?:\.[0-9]+)*))?" + body)
        self.routes.append(HijackRoute(method.upper(), pattern, handler))

    def match(self, method: str, path: str) -> HijackMatch | None:
        for route in self.routes:
            if route.method != method.upper():
                continue
            found = route.pattern.fullmatch(path)
            if found is not None:
                params = {k: v for k, v in found.groupdict().items() if k != "api_version" and v is not None}
                return HijackMatch(route, params, found.group("api_version"))
        return None


class _ResponseState(Enum):
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
        self._state = _ResponseState.NONE
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
        return self._state is not _ResponseState.NONE

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
        if self._state is not _ResponseState.NONE:
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
        self._state = _ResponseState.COMPLETE
        self.status = status
        self._protocol.log_access(self._request_line, status)
        if not self._transport.is_closing():
            self._transport.write(out)

    async def send_error(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer Docker's error shape, `{"message": ...}`, with `status` (e.g. 404, 409)."""
        body = json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"
        await self.send_response(status, body, "application/json", headers)

    def _start_stream(self, head: bytes, status: int) -> None:
        if self._state is not _ResponseState.NONE:
            raise ResponseStateError("a response was already sent on this connection")
        if self._lost or self._transport.is_closing():
            raise StreamClosedError("the client closed the connection")
        self._state = _ResponseState.STREAMING
        self.status = status
        self._protocol.log_access(self._request_line, status)
        self._transport.write(head)

    # --- raw bytes ---------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send raw bytes after a streaming head; waits while the client is slow to read."""
        if self._state is not _ResponseState.STREAMING:
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
        if self._state is not _ResponseState.STREAMING:
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


class _TlsHalfClose:
    """Keep a hijacked TLS connection sending after the client stops sending.

    asyncio's SSLProtocol treats the peer's close_notify and its TCP FIN as the end of the whole
    connection; Go's TLS (and so dockerd) treats them as a half-close, and the docker CLI relies
    on that: it sends close_notify at stdin EOF and keeps reading the output. While installed,
    those two events only end the reading side; our own close() still shuts TLS down normally.
    """

    def __init__(self, transport: asyncio.Transport, ssl_protocol: asyncio.sslproto.SSLProtocol) -> None:
        self._transport = transport
        self._ssl = ssl_protocol
        self._start_shutdown_original = ssl_protocol._start_shutdown
        self._eof_received_original = ssl_protocol.eof_received
        setattr(ssl_protocol, "_start_shutdown", self._start_shutdown)  # noqa: B010 (instance override)
        setattr(ssl_protocol, "eof_received", self._eof_received)  # noqa: B010

    @classmethod
    def install(cls, transport: asyncio.Transport) -> _TlsHalfClose | None:
        ssl_protocol = getattr(transport, "_ssl_protocol", None)
        if not isinstance(ssl_protocol, asyncio.sslproto.SSLProtocol) or not all(
            hasattr(ssl_protocol, name)
            for name in ("_start_shutdown", "_do_read", "_call_eof_received", "_state")
        ):
            return None  # another TLS implementation (e.g. uvloop's): keep its behaviour
        return cls(transport, ssl_protocol)

    def remove(self) -> None:
        for name in ("_start_shutdown", "eof_received"):
            self._ssl.__dict__.pop(name, None)

    def _start_shutdown(self) -> None:
        # Called by transport.close() (which marks the transport closing first) and on the peer's
        # close_notify; only the first is the end of the connection.
        if self._transport.is_closing():
            self._start_shutdown_original()

    def _eof_received(self) -> bool | None:
        ssl: Any = self._ssl  # CPython internals, checked by install()
        if self._transport.is_closing() or ssl._state is not asyncio.sslproto.SSLProtocolState.WRAPPED:
            return self._eof_received_original()
        # TCP FIN without close_notify: deliver what was decrypted, then EOF; keep the socket open
        # for writing, and skip the close_notify exchange at our close since the peer cannot answer.
        ssl._eof_received = True
        ssl._do_read()
        ssl._call_eof_received()
        return True


class _Phase(Enum):
    HTTP = "http"
    BODY = "body"  # a hijack route matched; collecting its request body through h11
    RAW = "raw"  # the handler owns the connection


class HijackingH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus routes (`hijack_router`) whose requests bypass ASGI.

    Use `make_protocol_class(router)` to get a subclass bound to a router for `uvicorn.Config(http=...)`.
    """

    hijack_router: ClassVar[HijackRouter | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _Phase.HTTP
        self._pending: HijackMatch | None = None
        self._match: HijackMatch | None = None
        self._body = bytearray()
        self._stream: RawStream | None = None
        self._handler_task: asyncio.Task[None] | None = None
        self._tls_half_close: _TlsHalfClose | None = None

    # --- uvicorn hooks -------------------------------------------------------------------------

    def _should_upgrade(self) -> bool:
        router = self.hijack_router
        if router is not None:
            path = self.scope["path"]
            if self.root_path and path.startswith(self.root_path):
                path = path[len(self.root_path) :]
            found = router.match(self.scope["method"], path)
            if found is not None:
                self._pending = found
                return True
        return super()._should_upgrade()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        found, self._pending = self._pending, None
        if found is None:
            super().handle_websocket_upgrade(event)
            return
        self._begin_hijack(found)

    def data_received(self, data: bytes) -> None:
        if self._phase is _Phase.HTTP:
            super().data_received(data)
        elif self._phase is _Phase.BODY:
            self.conn.receive_data(data)
            self._pump_body()
        elif self._stream is not None:
            self._stream._feed(data)

    def eof_received(self) -> bool | None:  # type: ignore[override]
        if self._phase is _Phase.BODY:
            self.conn.receive_data(b"")
            self._pump_body()
            return None
        if self._phase is _Phase.RAW and self._stream is not None:
            self._stream._feed_eof()
            # Keep our sending side open: docker half-closes stdin and still expects the output.
            # (With TLS this is _TlsHalfClose's job; asyncio warns when this returns True there.)
            return not is_ssl(self.transport)
        super().eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stream is not None:
            self._stream._connection_lost()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._phase is _Phase.HTTP:
            super().shutdown()
            return
        # Server shutdown: a hijacked connection has no natural end, so end it.
        if not self.transport.is_closing():
            self.transport.close()
        if self._handler_task is not None:
            self._handler_task.cancel()

    # --- hijack ---------------------------------------------------------------------------------

    def log_access(self, request_line: tuple[str, str, str], status: int) -> None:
        if self.access_log:
            method, path, version = request_line
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope), method, path, version, status
            )

    def _begin_hijack(self, found: HijackMatch) -> None:
        self._phase = _Phase.BODY
        self._match = found
        self._body = bytearray()
        request_line = (
            self.scope["method"],
            get_path_with_query_string(self.scope),
            self.scope["http_version"],
        )
        self._stream = RawStream(
            self, request_line, upgrade=any(name == b"upgrade" for name, _ in self.headers)
        )
        accesslog.calling(request_line[0], request_line[1])
        if self.conn.they_are_waiting_for_100_continue:
            self.transport.write(
                self.conn.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                or b""
            )
        self._pump_body()

    def _pump_body(self) -> None:
        while self._phase is _Phase.BODY:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(400, f"malformed request: {exc}")
                return
            if event is h11.NEED_DATA:
                return
            if isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_BODY:
                    self._refuse(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._start_handler()
                return
            else:  # ConnectionClosed (or anything unexpected) before the body ended
                self._phase = _Phase.RAW
                self.transport.close()
                return

    def _refuse(self, status: int, message: str) -> None:
        """Answer an unusable hijack request and drop the connection (its framing is lost)."""
        self._phase = _Phase.RAW
        body = json.dumps({"message": message}, separators=(",", ":")).encode() + b"\n"
        head = (
            f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()

    def _start_handler(self) -> None:
        assert self._stream is not None and self._match is not None
        self._phase = _Phase.RAW
        if is_ssl(self.transport):
            self._tls_half_close = _TlsHalfClose.install(self.transport)
        leading, closed = self.conn.trailing_data
        self._stream._start_raw(leading, closed)
        found = self._match
        path = self.scope["path"]
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]
        request = HijackRequest(
            method=self.scope["method"],
            path=path,
            query=parse_qs(self.scope["query_string"].decode("latin-1"), keep_blank_values=True),
            headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers),
            params=dict(found.params),
            api_version=found.api_version,
            upgrade=self._stream._upgrade,
            body=bytes(self._body),
            http_version=self.scope["http_version"],
            client=self.client,
        )
        self._body = bytearray()
        task = self.loop.create_task(self._run_handler(found.route.handler, request, self._stream))
        self._handler_task = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_handler(self, handler: HijackHandler, request: HijackRequest, stream: RawStream) -> None:
        try:
            await handler(request, stream)
            if not stream.responded:
                logger.error(
                    "hijack handler for %s %s returned without a response", request.method, request.path
                )
                await stream.send_error(500, "the server sent no response")
        except StreamClosedError:
            pass  # the client left; nothing more to say to it
        except asyncio.CancelledError:
            self._close_after_hijack()
            raise
        except Exception:
            logger.exception("hijack handler for %s %s failed", request.method, request.path)
            if not stream.responded and not stream.closed:
                try:
                    await stream.send_error(500, "internal server error")
                except (h11.LocalProtocolError, OSError):
                    pass
        finally:
            # The session is over: one access line for it, as for every other request.
            method, request_target, _ = stream._request_line
            accesslog.answered(method, request_target, stream.status, time.monotonic() - stream.started)
        self._finish_hijack(stream)

    def _finish_hijack(self, stream: RawStream) -> None:
        leftover = stream._unread_after_request()
        reusable = (
            stream._state is _ResponseState.COMPLETE
            and leftover is not None
            and not self.transport.is_closing()
            and self.conn.our_state is h11.DONE
            and self.conn.their_state is h11.DONE
        )
        if not reusable:
            self._close_after_hijack()
            return
        # Only a complete answer was sent and no stdin consumed: the connection is plain HTTP again.
        self._phase = _Phase.HTTP
        if self._tls_half_close is not None:
            self._tls_half_close.remove()
            self._tls_half_close = None
        self._stream = None
        self._handler_task = None
        self._match = None
        if leftover:
            self.conn.receive_data(leftover)
        self.on_response_complete()

    def _close_after_hijack(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def make_protocol_class(router: HijackRouter) -> type[HijackingH11Protocol]:
    """A HijackingH11Protocol subclass bound to `router`, for `uvicorn.Config(app, http=...)`."""

    class BoundHijackingH11Protocol(HijackingH11Protocol):
        hijack_router = router

    return BoundHijackingH11Protocol
