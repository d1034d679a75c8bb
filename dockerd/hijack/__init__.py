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

from dockerd.hijack.protocol import HijackingH11Protocol, make_protocol_class
from dockerd.hijack.routes import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    HijackError,
    HijackHandler,
    HijackRequest,
    HijackRouter,
    ResponseStateError,
    StreamClosedError,
)
from dockerd.hijack.stream import RawStream

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
