"""The JSON progress stream of a pull or a push, as dockerd writes it.

The work runs in one worker thread feeding a queue (the lease lives in that thread's
context); the response body reads the queue. Work before the first progress message fails
as an HTTP error (the caller's `prepare()`); later errors go into the stream as
{"errorDetail": {"message"}, "error"}.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

from containerd.client.errors import ContainerdError
from dockerd.engine.distribution.registry_client import transport_text
from dockerd.engine.errors import EngineError


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def message(status: str, id_: str = "", current: int | None = None, total: int | None = None) -> bytes:
    out: dict[str, Any] = {"status": status}
    if id_:
        detail: dict[str, int] = {}
        if current is not None:
            detail["current"] = current
            if total:
                detail["total"] = total
        out["progressDetail"] = detail
        if current is not None and total:
            out["progress"] = _bar(current, total)
        out["id"] = id_
    return json.dumps(out, separators=(",", ":")).encode() + b"\r\n"


def error_message(text: str) -> bytes:
    return json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n"


def _bar(current: int, total: int) -> str:
    width = 50
    filled = min(width, current * width // total) if total else 0
    arrow = "=" * max(filled - 1, 0) + (">" if filled else "")
    return f"[{arrow:<{width}}] {_size(current)}/{_size(total)}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


class Cancelled(Exception):
    """The client went away: the pull or push stops at its next progress message."""


class Progress:
    """Messages from worker threads to the response, in order."""

    _END = object()

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.cancelled = threading.Event()

    def put(self, data: bytes) -> None:
        """Queue a message; raises Cancelled once nobody reads them any more.

        Every download reports its bytes through here, so a client hanging up stops the
        downloads (and their half-written ingests are aborted) within one progress tick.
        """
        if self.cancelled.is_set():
            raise Cancelled
        self.queue.put(data)

    def end(self, last: bytes = b"") -> None:
        if last:
            self.queue.put(last)
        self.queue.put(self._END)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item


class Streamed:
    """A pull or a push: work in a thread, its progress as the response body.

    `events` holds the (id, name) pairs of the image events to publish once the stream ended
    well; `cancel()` is for a client that went away.
    """

    def __init__(self) -> None:
        self.progress = Progress()
        self.events: list[tuple[str, str]] = []

    def _work(self, progress: Progress) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        self.progress.cancelled.set()

    def stream(self) -> Iterator[bytes]:
        import httpx  # not held by an idle daemon (registry_client)

        progress = self.progress

        def main() -> None:
            last = b""
            try:
                self._work(progress)
            except Cancelled:
                self.events.clear()
            except EngineError as exc:
                last = error_message(str(exc))
            except ContainerdError as exc:
                last = error_message(str(exc))
            except httpx.HTTPError as exc:
                last = error_message(transport_text(exc))
            except Exception as exc:  # noqa: BLE001 - never a traceback in the stream
                last = error_message(f"{type(exc).__name__}: {exc}")
            if last:
                self.events.clear()
            progress.end(last)

        threading.Thread(target=main, name=type(self).__name__.lower(), daemon=True).start()
        return iter(progress)
