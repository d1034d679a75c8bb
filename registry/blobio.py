"""Serving a blob file: Range requests (one range, 206) and a read-ahead streaming response.

The file is read in CHUNK-sized preads in a worker thread, one read ahead of the socket,
so disk and network overlap and Python touches each MiB once.
"""

from __future__ import annotations

import asyncio
import os
import re

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, None for the whole blob.

    A header we do not understand (several ranges, another unit) is ignored, as RFC 9110
    allows; a well-formed range outside the blob raises RangeNotSatisfiable.
    """
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise RangeNotSatisfiable
        return max(size - n, 0), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable
    return start, min(end, size - 1)


class FileSliceResponse(Response):
    """Streams bytes [start, end] of an open file descriptor, which it closes when done."""

    def __init__(
        self, fd: int, start: int, end: int, status_code: int, headers: dict[str, str], head: bool
    ) -> None:
        self.fd = fd
        self.start = start
        self.end = end
        self.head = head
        super().__init__(content=b"", status_code=status_code, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        nxt: asyncio.Future[bytes] | None = None
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            if self.head:
                await send({"type": "http.response.body", "body": b""})
                return
            pos, remaining = self.start, self.end - self.start + 1
            fd = self.fd

            def read(at: int, n: int) -> bytes:
                return os.pread(fd, n, at)

            nxt = (
                asyncio.ensure_future(asyncio.to_thread(read, pos, min(CHUNK, remaining)))
                if remaining
                else None
            )
            while nxt is not None:
                chunk = await nxt
                if not chunk:
                    raise OSError("blob file shorter than its size")
                pos += len(chunk)
                remaining -= len(chunk)
                nxt = (
                    asyncio.ensure_future(asyncio.to_thread(read, pos, min(CHUNK, remaining)))
                    if remaining
                    else None
                )
                await send({"type": "http.response.body", "body": chunk, "more_body": nxt is not None})
            if self.end < self.start:
                await send({"type": "http.response.body", "body": b""})
        finally:
            if nxt is not None and not nxt.done():
                await asyncio.wait([nxt])  # never close the fd under a read still running
            os.close(self.fd)
