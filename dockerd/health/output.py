"""A probe's output as dockerd keeps it: the first 4096 bytes of stdout and stderr together, in
the order they came, "..." appended when anything was cut; the bytes then become a JSON string
as Go's encoder makes one (each byte of an invalid UTF-8 sequence becomes U+FFFD)."""

from __future__ import annotations

import codecs
import threading

from dockerd.health.state import MAX_OUTPUT_LEN


def _go_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd" * (exc.end - exc.start), exc.end


codecs.register_error("pydockerd-go-replace", _go_replace)


class LimitedBuffer:
    """Keeps up to `limit` bytes; the rest is read and dropped (the writer never blocks)."""

    def __init__(self, limit: int = MAX_OUTPUT_LEN) -> None:
        self._limit = limit
        self._data = bytearray()
        self._truncated = False
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            keep = max(0, min(self._limit - len(self._data), len(data)))
            self._data += data[:keep]
            if keep < len(data):
                self._truncated = True

    def text(self) -> str:
        with self._lock:
            out = bytes(self._data).decode("utf-8", errors="pydockerd-go-replace")
            return out + "..." if self._truncated else out
