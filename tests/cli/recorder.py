"""A recording proxy for the Engine API socket: what a client really sends.

Tests point the Docker CLI and pydocker at it in turn and compare the request bodies
(POST /containers/create, /networks/create, /build ...), so pydocker is held to the
bodies Docker's own CLI builds rather than to our reading of its source.

It relays every byte between the client and the daemon's unix socket, in both directions,
and on the client side parses HTTP/1.1 requests (Content-Length or chunked bodies) as
they pass. A connection that switches protocols (attach, exec) stops being parsed and is
relayed as it is.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the /vX.Y prefix, with the query string
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def route(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.path.partition("?")[2]


@dataclass
class Recorder:
    socket: Path
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, req: Request) -> None:
        with self._lock:
            self.requests.append(req)

    def take(self) -> list[Request]:
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def find(self, method: str, route: str) -> list[Request]:
        """The recorded requests to `route` (e.g. "/containers/create") with `method`."""
        return [r for r in self.requests if r.method == method and r.route == route]


def _strip_version(path: str) -> str:
    if path.startswith("/v") and "/" in path[1:]:
        head, rest = path[1:].split("/", 1)
        if head[1:].replace(".", "").isdigit():
            return "/" + rest
    return path


class _Parser:
    """Incremental HTTP/1.1 request parser over the client's byte stream."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buf = b""
        self.dead = False  # protocol switched or unparseable: relay only

    def feed(self, data: bytes) -> None:
        if self.dead:
            return
        self.buf += data
        while not self.dead and self._one():
            pass

    def _one(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = self.buf[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3:
            self.dead = True
            return False
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = self.buf[end + 4 :]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            pos = 0
            while True:
                nl = rest.find(b"\r\n", pos)
                if nl < 0:
                    return False
                size = int(rest[pos:nl].split(b";")[0], 16)
                if len(rest) < nl + 2 + size + 2:
                    return False
                body += rest[nl + 2 : nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    break
            consumed = pos
        else:
            length = int(headers.get("content-length", "0") or 0)
            if len(rest) < length:
                return False
            body, consumed = rest[:length], length
        self.buf = rest[consumed:]
        self.recorder.add(Request(parts[0], _strip_version(parts[1]), headers, body))
        if headers.get("upgrade") or "upgrade" in headers.get("connection", "").lower():
            self.dead = True
        return True


def _pipe(src: socket.socket, dst: socket.socket, parser: _Parser | None) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if parser is not None:
                try:
                    parser.feed(data)
                except ValueError:
                    parser.dead = True
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@contextmanager
def recording_proxy(upstream: Path) -> Iterator[Recorder]:
    """A unix socket relaying to `upstream` and recording the requests it sees."""
    tmp = Path(tempfile.mkdtemp(prefix="pdc-rec-"))
    path = tmp / "rec.sock"
    recorder = Recorder(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(str(upstream))
            except OSError:
                client.close()
                server.close()
                continue
            conns.extend((client, server))
            threading.Thread(target=_pipe, args=(client, server, _Parser(recorder)), daemon=True).start()
            threading.Thread(target=_pipe, args=(server, client, None), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for conn in conns:
            try:
                conn.close()
            except OSError:
                pass
        os.unlink(path)
        os.rmdir(tmp)
