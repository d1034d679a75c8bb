"""The hijacked routes: which requests bypass ASGI (HijackRouter), what their handler gets
(HijackRequest), the content types and errors of a hijacked connection."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockerd.hijack.stream import RawStream

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# Request bodies of hijacked endpoints are small JSON documents (exec start's {"Detach":..,"Tty":..}).
MAX_BODY = 1 << 20


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
