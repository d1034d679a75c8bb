"""The Engine API's version prefixes, Docker's response headers and the request log and metric,
as a plain ASGI middleware.

Not @app.middleware("http"): Starlette's BaseHTTPMiddleware runs every route in a task of
its own and relays streamed bodies (logs, events, pulls) through a memory stream, behind a
wrapped `receive`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi.responses import JSONResponse

from dockerd import accesslog
from dockerd.metrics import Metrics

MIN_API, MAX_API = (1, 24), (1, 41)
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


class ApiVersion:
    """/vX.Y prefixes (1.24-1.41), Docker's response headers, and the latency metric per route."""

    def __init__(self, app: Any, version: str, metrics: Metrics) -> None:
        self.app = app
        self.version = version
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_target = accesslog.target(scope["path"], scope.get("query_string", b""))
        accesslog.calling(scope["method"], request_target)
        status = [0]

        async def send_noting_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._versioned(scope, receive, send_noting_status, started)
        finally:
            # Once the response is over (a stream's too); 0: the client left before any answer.
            accesslog.answered(scope["method"], request_target, status[0], time.monotonic() - started)

    async def _versioned(self, scope: Any, receive: Any, send: Any, started: float) -> None:
        match = _VERSIONED.match(scope["path"])
        if match:
            version = (int(match.group(1)), int(match.group(2)))
            refusal = ""
            if version > MAX_API:
                refusal = f"client version {version[0]}.{version[1]} is too new. Maximum supported API version is 1.41"
            elif version < MIN_API:
                refusal = (
                    f"client version {version[0]}.{version[1]} is too old. Minimum supported API version is 1.24, "
                    "please upgrade your client to a newer version"
                )
            if refusal:
                await JSONResponse({"message": refusal}, status_code=400)(scope, receive, send)
                return
            scope["path"] = match.group(3)
        extra = [
            (b"api-version", b"1.41"),
            (b"server", f"Docker/{self.version} (linux)".encode()),
            (b"ostype", b"linux"),
        ]

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")  # the matched route's template keeps the label set small
            self.metrics.observe(
                scope["method"], time.monotonic() - started, getattr(route, "path", "") or "other"
            )
