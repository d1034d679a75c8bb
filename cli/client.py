"""The Engine API over HTTP/1.1: unix sockets and TCP (TLS when configured), version
negotiation, JSON helpers, streamed bodies, and hijacked connections for attach/exec.

HTTP is spoken by hand on a socket rather than through http.client: that module pulls
in email.parser and ssl at import (about 40 ms, more than the whole of a `pydocker ps`
otherwise), and its buffered reader would swallow stream bytes that arrive in the same
packet as a 101 response. A request here is one connection: write the request, read the
status line and headers, then read the body by Content-Length, chunks or until close.
"""

from __future__ import annotations

import json
import os
import socket

from cli import API_VERSION, __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

USER_AGENT = f"pydocker-cli/{__version__}"
# Used when a daemon's /_ping does not say which API it speaks.
MIN_API_VERSION = "1.24"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class DaemonUnreachable(Exception):
    """No daemon answers at the configured host (or the TLS handshake with it failed)."""

    def __init__(self, host: str, reason: str = "") -> None:
        if reason:
            super().__init__(f"error during connect: {host}: {reason}")
        else:
            super().__init__(f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?")


class APIError(Exception):
    """The daemon answered with an error status (or broke the protocol); str() is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TLSConfig:
    """Client-side TLS for tcp:// hosts (CA to verify the daemon, our certificate and key)."""

    __slots__ = ("ca", "cert", "key", "verify")

    def __init__(self, ca: str | None, cert: str | None, key: str | None, verify: bool) -> None:
        self.ca = ca
        self.cert = cert
        self.key = key
        self.verify = verify


class Host:
    """Where the daemon listens: unix:///path or tcp://host:port."""

    __slots__ = ("url", "scheme", "address", "port")

    def __init__(self, url: str, scheme: str, address: str, port: int = 0) -> None:
        self.url = url
        self.scheme = scheme
        self.address = address  # socket path, or host name
        self.port = port

    @classmethod
    def parse(cls, url: str) -> Host:
        if url.startswith("unix://"):
            path = url[len("unix://") :]
            if not path:
                raise ValueError(f"invalid host {url!r}: empty socket path")
            return cls(url, "unix", path)
        if url.startswith("/"):
            return cls("unix://" + url, "unix", url)
        if url.startswith(("tcp://", "http://", "https://")):
            rest = url.split("://", 1)[1].rstrip("/")
            hostpart, _, port = rest.rpartition(":")
            if not hostpart or hostpart.endswith(":"):
                hostpart, port = rest, "2375"
            try:
                return cls(url, "tcp", hostpart.strip("[]") or "localhost", int(port))
            except ValueError:
                raise ValueError(f"invalid host {url!r}: bad port {port!r}") from None
        if url.startswith(("fd://", "npipe://")):
            raise ValueError(f"invalid host {url!r}: a client cannot connect to {url.split(':')[0]}://")
        raise ValueError(f"invalid host {url!r}: use unix:///path or tcp://host:port")


def quote(text: str, safe: str = "/") -> str:
    """Percent-encode for a URL (urllib.parse.quote without importing urllib)."""
    allowed = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in allowed else f"%{b:02X}" for b in text.encode())


def urlencode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, '')}={quote(v, '')}" for k, v in pairs)


def encode_filters(filters: dict[str, list[str]]) -> str:
    """Docker's filter query value: {"key": {"value": true, ...}}."""
    # compact, keys sorted: what the Docker client's json.Marshal of a map sends
    return json.dumps(
        {k: {v: True for v in vs} for k, vs in filters.items()}, sort_keys=True, separators=(",", ":")
    )


class Headers(dict[str, str]):
    """Response headers; lookups ignore case."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def _ssl_context(tls: TLSConfig) -> Any:
    import ssl  # only TCP with TLS pays for it

    if tls.verify:
        ctx = ssl.create_default_context(cafile=tls.ca)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        ctx.load_cert_chain(tls.cert, tls.key)
    return ctx


class Response:
    """A response whose headers have been read; the body is read on demand (logs -f,
    events, stats and save stream it)."""

    def __init__(self, sock: socket.socket, status: int, headers: Headers, buf: bytes, method: str) -> None:
        self._sock = sock
        self.status = status
        self.headers = headers
        self._buf = buf
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._remaining: int | None = int(length) if length is not None and not self._chunked else None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
            self._chunked = False
        self._chunk_left = 0
        self._done = False

    def _recv(self) -> bytes:
        data = self._sock.recv(65536)
        return data

    def _fill(self) -> bool:
        data = self._recv()
        if not data:
            return False
        self._buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            if not self._fill():
                raise APIError(0, "the daemon closed the connection in the middle of a response")
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives, in whatever pieces the network gives."""
        while not self._done:
            if self._chunked:
                if self._chunk_left == 0:
                    size_line = self._line()
                    try:
                        self._chunk_left = int(size_line.split(b";")[0].strip(), 16)
                    except ValueError:
                        raise APIError(0, f"bad chunk size {size_line[:20]!r} from the daemon") from None
                    if self._chunk_left == 0:
                        while self._line():  # trailers, up to the empty line
                            pass
                        self._done = True
                        return
                if not self._buf and not self._fill():
                    raise APIError(0, "the daemon closed the connection in the middle of a chunk")
                piece = self._buf[: self._chunk_left]
                self._buf = self._buf[len(piece) :]
                self._chunk_left -= len(piece)
                if self._chunk_left == 0:
                    while len(self._buf) < 2:
                        if not self._fill():
                            break
                    self._buf = self._buf[2:]
                if piece:
                    yield piece
            elif self._remaining is not None:
                if self._remaining == 0:
                    self._done = True
                    return
                if not self._buf and not self._fill():
                    self._done = True
                    return
                piece = self._buf[: self._remaining]
                self._buf = self._buf[len(piece) :]
                self._remaining -= len(piece)
                yield piece
            else:  # no framing: the body ends when the daemon closes the connection
                if self._buf:
                    piece, self._buf = self._buf, b""
                    yield piece
                elif not self._fill():
                    self._done = True
                    return

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def json(self) -> Any:
        raw = self.read()
        return json.loads(raw) if raw.strip() else None

    def json_stream(self) -> Iterator[Any]:
        """Decode a stream of concatenated (usually newline-separated) JSON values."""
        decoder = json.JSONDecoder()
        buf = ""
        for chunk in self.chunks():
            buf += chunk.decode("utf-8", errors="replace")
            while True:
                buf = buf.lstrip()
                if not buf:
                    break
                try:
                    value, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break  # incomplete: wait for more bytes
                buf = buf[end:]
                yield value
        if buf.strip():
            yield json.loads(buf)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class Hijacked:
    """A connection the daemon switched to a raw bidirectional stream (101 Upgrade: tcp)."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.pending = pending  # stream bytes that arrived together with the headers

    def close_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except (OSError, ValueError, NotImplementedError):
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _api_error(resp: Response) -> APIError:
    """The APIError for a failed response (its body read and the response closed)."""
    try:
        message = _error_message(resp.read(), resp.status)
    except (OSError, APIError):
        message = f"HTTP {resp.status}"
    finally:
        resp.close()
    return APIError(resp.status, message)


def _error_message(body: bytes, status: int) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or f"HTTP {status}"
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


def _read_head(sock: socket.socket, what: str) -> tuple[int, Headers, bytes]:
    """Read the status line and headers; return (status, headers, bytes already past them)."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        data = sock.recv(65536)
        if not data:
            raise APIError(0, f"the daemon closed the connection before answering {what}")
        buf += data
    head, rest = buf[:end], buf[end + 4 :]
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise APIError(0, f"malformed HTTP status line from the daemon: {lines[0][:80]!r}")
    headers = Headers()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, rest


class Client:
    """One daemon endpoint; every request opens its own connection (streams and hijacks need it)."""

    def __init__(self, host: Host, tls: TLSConfig | None = None, version: str | None = None) -> None:
        self.host = host
        self.tls = tls
        self._version = version
        self.server_version: str | None = None

    def _connect(self) -> socket.socket:
        try:
            if self.host.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.host.address)
                except OSError:
                    sock.close()
                    raise
                return sock
            if self.tls is not None:
                return self._connect_tls()
            return socket.create_connection((self.host.address, self.host.port))
        except OSError as exc:
            raise DaemonUnreachable(self.host.url) from exc

    def _connect_tls(self) -> socket.socket:
        import ssl

        from cli import tls

        try:
            stream = tls.connect(self.host.address, self.host.port, _ssl_context(self.tls))  # type: ignore[arg-type]
        except ssl.SSLError as exc:
            raise DaemonUnreachable(self.host.url, str(exc)) from exc
        # TLSStream offers the socket methods this module and the attach pump use.
        return stream  # type: ignore[return-value]

    def _host_header(self) -> str:
        return "docker" if self.host.scheme == "unix" else f"{self.host.address}:{self.host.port}"

    # ---- version negotiation -----------------------------------------------------------
    @property
    def version(self) -> str:
        if self._version is None:
            self._version = self.negotiate()
        return self._version

    def negotiate(self) -> str:
        """GET /_ping; use min(our newest API, the daemon's)."""
        resp = self._send("GET", "/_ping", None, None)
        try:
            resp.read()
        finally:
            resp.close()
        server = resp.headers.get("api-version")
        self.server_version = server
        if not server:
            return MIN_API_VERSION
        return server if version_lt(server, API_VERSION) else API_VERSION

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = f"/v{self.version}{path}"
        if params:
            pairs: list[tuple[str, str]] = []
            for key, value in params.items():
                if value is None:
                    continue
                if isinstance(value, bool):
                    pairs.append((key, "1" if value else "0"))
                elif isinstance(value, list | tuple):
                    pairs.extend((key, str(v)) for v in value)
                else:
                    pairs.append((key, str(value)))
            if pairs:
                url += "?" + urlencode(pairs)
        return url

    # ---- requests ----------------------------------------------------------------------
    def _send(
        self,
        method: str,
        url: str,
        body: bytes | Iterable[bytes] | None,
        headers: dict[str, str] | None,
    ) -> Response:
        lines = [f"{method} {url} HTTP/1.1", f"Host: {self._host_header()}", f"User-Agent: {USER_AGENT}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        streamed = body is not None and not isinstance(body, bytes | bytearray)
        if streamed:
            lines.append("Transfer-Encoding: chunked")
        elif isinstance(body, bytes | bytearray):
            lines.append(f"Content-Length: {len(body)}")
        elif method in ("POST", "PUT"):
            lines.append("Content-Length: 0")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        sock = self._connect()
        try:
            try:
                if streamed:
                    sock.sendall(head)
                    assert body is not None and not isinstance(body, bytes | bytearray)
                    for chunk in body:
                        if chunk:
                            sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    sock.sendall(b"0\r\n\r\n")
                else:
                    sock.sendall(head + (body or b""))  # type: ignore[operator]
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon answered early (an error, usually): read what it said
            status, resp_headers, rest = _read_head(sock, f"{method} {url}")
        except DaemonUnreachable:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise APIError(0, f"error during connect: {method} {url}: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return Response(sock, status, resp_headers, rest, method)

    def open(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (),
    ) -> Response:
        """Send a request and return the response once its headers arrived; raise APIError
        for a status >= 400 (unless listed in ok)."""
        resp = self._send(method, self.url(path, params), body, headers)
        if resp.status >= 400 and resp.status not in ok:
            raise _api_error(resp)
        return resp

    def call(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        ok: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """A JSON request: body is JSON-encoded unless None; returns (status, decoded body or None)."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        resp = self.open(method, path, params, data, headers, ok)
        try:
            raw = resp.read()
        finally:
            resp.close()
        if not raw.strip():
            return resp.status, None
        ctype = resp.headers.get("content-type", "")
        if "json" in ctype or raw[:1] in (b"{", b"["):
            try:
                return resp.status, json.loads(raw)
            except ValueError:
                pass
        return resp.status, raw.decode(errors="replace")

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params)[1]

    def post(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self.call("POST", path, params, body)[1]

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, params)[1]

    # ---- hijack ------------------------------------------------------------------------
    def hijack(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Hijacked:
        """POST with `Connection: Upgrade, Upgrade: tcp`; after 101 the socket is a raw stream."""
        payload = json.dumps(body).encode() if body is not None else b""
        headers = {
            "Connection": "Upgrade",
            "Upgrade": "tcp",
            "Content-Type": "application/json" if body is not None else "text/plain",
        }
        resp = self._send("POST", self.url(path, params), payload, headers)
        if resp.status in (101, 200):
            return Hijacked(resp._sock, resp._buf)
        raise _api_error(resp)


def version_lt(a: str, b: str) -> bool:
    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split(".") if p.isdigit())

    return key(a) < key(b)


def quote_path(name: str) -> str:
    """A container or image name as URL path text (image names keep their '/' and ':')."""
    return quote(name, safe="/:@")


def host_from_env(flag_host: str | None, config_host: str | None) -> str:
    """-H beats DOCKER_HOST beats the config file beats the default socket."""
    return flag_host or os.environ.get("DOCKER_HOST") or config_host or "unix:///run/pydocker.sock"
