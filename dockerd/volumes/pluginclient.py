"""The client side of Docker's plugin protocol: JSON POSTed over HTTP to a unix socket or TCP.

Each call is `POST /<Method>` with a JSON body and `Accept: application/vnd.docker.plugins.v1.2+json`;
an answer other than 200 is an error whose text is the body's `Err` (or the body itself).
Every call has a deadline (moby's: one minute for questions, two for Create/Remove/Mount/
Unmount), so a plugin that never answers costs one request its deadline and never the
daemon; a refused connection is retried with moby's backoff (1, 2, 4, 8 s...) for
`connect_retry` seconds, for a plugin that is still starting. One connection per call: the
standard library's http.client, with the socket made here.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from dockerd.volumes.errors import DriverError

MIMETYPE = "application/vnd.docker.plugins.v1.2+json"


@dataclass(frozen=True)
class Timeouts:
    short: float = 60.0  # Get, Path, List, Capabilities
    long: float = 120.0  # Activate, Create, Remove, Mount, Unmount
    connect_retry: float = 15.0  # how long a refused connection is retried


class PluginUnreachable(DriverError):
    """The plugin could not be asked (connection refused, no answer in time, broken answer)."""


class PluginAnswerError(DriverError):
    """The plugin answered, with an error."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class PluginClient:
    def __init__(self, address: str, timeouts: Timeouts) -> None:
        self.address = address
        self.timeouts = timeouts
        parts = urlsplit(address)
        self._scheme = parts.scheme
        self._tcp: tuple[str, int] = ("", 0)
        if parts.scheme == "unix":
            self._socket = parts.path or parts.netloc
            self._host = quote(self._socket, safe="")  # how Go's client names a unix socket in URLs
            self._dial = f"dial unix {self._socket}"
        elif parts.scheme in ("tcp", "http"):
            self._socket = ""
            self._host = parts.netloc
            self._dial = f"dial tcp {parts.netloc}"
            self._tcp = (parts.hostname or "127.0.0.1", parts.port or 80)
        else:
            raise DriverError(f"unsupported plugin address {address!r}: only unix:// and tcp:// are")

    def call(
        self, method: str, args: dict[str, Any] | None, timeout: float, retry: bool = True
    ) -> dict[str, Any]:
        """POST /METHOD with ARGS; the decoded answer. Raises PluginUnreachable or PluginAnswerError.

        retry: retry a refused connection for `connect_retry` seconds (moby does, except when it
        scans the plugin directories).
        """
        body = b"" if args is None else json.dumps(args).encode() + b"\n"
        url = f'Post "http://{self._host}/{method}"'
        start = time.monotonic()
        retries = 0
        while True:
            deadline = time.monotonic() + timeout
            try:
                status, raw = self._post(method, body, deadline)
                break
            except TimeoutError as exc:
                raise PluginUnreachable(f"{url}: context deadline exceeded") from exc
            except ConnectionError as exc:
                if retry and isinstance(exc, ConnectionRefusedError):
                    wait = min(2**retries, 30)
                    if time.monotonic() - start + wait < self.timeouts.connect_retry:
                        retries += 1
                        time.sleep(wait)
                        continue
                raise PluginUnreachable(f"{url}: {self._dial}: connect: {_go_strerror(exc)}") from exc
            except FileNotFoundError as exc:
                raise PluginUnreachable(f"{url}: {self._dial}: connect: {_go_strerror(exc)}") from exc
            except (OSError, http.client.HTTPException) as exc:
                raise PluginUnreachable(f"{url}: {exc}") from exc
        if status != 200:
            text = raw.decode(errors="replace")
            try:
                decoded = json.loads(raw)
                if isinstance(decoded, dict) and decoded.get("Err"):
                    text = str(decoded["Err"])
            except ValueError:
                pass
            raise PluginAnswerError(f"{method}: {text}")
        try:
            answer = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise PluginUnreachable(f"{method}: the plugin's answer is not JSON: {exc}") from exc
        if not isinstance(answer, dict):
            raise PluginUnreachable(f"{method}: the plugin's answer is not a JSON object")
        return answer

    def _post(self, method: str, body: bytes, deadline: float) -> tuple[int, bytes]:
        remaining = max(deadline - time.monotonic(), 0.001)
        conn: http.client.HTTPConnection
        if self._scheme == "unix":
            conn = _UnixHTTPConnection(self._socket, remaining)
        else:
            conn = http.client.HTTPConnection(self._tcp[0], self._tcp[1], timeout=remaining)
        try:
            conn.request(
                "POST", "/" + method, body=body, headers={"Accept": MIMETYPE, "Content-Type": MIMETYPE}
            )
            if conn.sock is not None:
                conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            resp = conn.getresponse()
            chunks = []
            while True:
                if conn.sock is not None:
                    conn.sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = resp.read(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
            return resp.status, b"".join(chunks)
        finally:
            conn.close()


def _go_strerror(exc: OSError) -> str:
    code = exc.errno or errno.EIO
    text = os.strerror(code)
    return text[:1].lower() + text[1:]
