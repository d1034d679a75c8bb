"""One log line per API request: dockerd's debug "Calling METHOD PATH" when a request
arrives, and at info level, once it is answered, its method, path, status and duration.

Both the ASGI middleware (dockerd/app.py) and the hijacked routes (dockerd/hijack.py: attach,
exec start) report here, so every request the daemon serves is in the log. The levels follow
`--log-level` / `-D` and daemon.json's `log-level` / `debug` (dockerd/main.py sets them up).
"""

from __future__ import annotations

import logging

log = logging.getLogger("pydockerd.api.access")


def target(path: str, query: bytes | str) -> str:
    """The request target as the client sent it: path, then `?query` when there is one."""
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    return f"{path}?{text}" if text else path


def calling(method: str, request_target: str) -> None:
    """dockerd's debug line for a request that just arrived."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("Calling %s %s", method, request_target)


def answered(method: str, request_target: str, status: int, seconds: float) -> None:
    """The access line of a request that is done (for a stream: when the stream ended)."""
    if log.isEnabledFor(logging.INFO):
        fields = {
            "method": method,
            "path": request_target,
            "status": status,
            "duration": f"{seconds * 1000:.3f}ms",
        }
        log.info("API request", extra={"fields": fields})
