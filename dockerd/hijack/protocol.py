"""The h11 protocol that hands hijacked requests (the routes in routes.py) to their handlers on
the raw connection, and serves every other request through uvicorn's ASGI path."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import json
import logging
import time
from enum import Enum
from typing import Any, ClassVar
from urllib.parse import parse_qs

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string, is_ssl

from dockerd import accesslog
from dockerd.hijack.routes import (
    MAX_BODY,
    HijackHandler,
    HijackMatch,
    HijackRequest,
    HijackRouter,
    StreamClosedError,
)
from dockerd.hijack.stream import RawStream, ResponseState

logger = logging.getLogger("dockerd.hijack")


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
            stream._state is ResponseState.COMPLETE
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
