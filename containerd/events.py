"""The event exchange: publish once, deliver to every subscriber whose filters match.

Events are (timestamp ns, namespace, topic, type_url, payload bytes) — the Envelope of
containerd's events service without the protobuf, so stores and the task manager can
publish without importing grpc. Subscribers get a bounded queue each; a subscriber too
slow to keep up is dropped rather than allowed to stall publishers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    timestamp: int
    namespace: str
    topic: str
    type_url: str
    payload: bytes


Matcher = Callable[[Event], bool]

_CLOSED = object()


@dataclass
class _Subscriber:
    matches: Matcher
    queue: queue.Queue[object] = field(default_factory=lambda: queue.Queue(maxsize=4096))
    dropped: bool = False


class Exchange:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []

    def publish(
        self, namespace: str, topic: str, type_url: str, payload: bytes, timestamp: int | None = None
    ) -> Event:
        if not topic.startswith("/"):
            raise ValueError(f"topic {topic!r} must start with '/'")
        event = Event(timestamp or time.time_ns(), namespace, topic, type_url, payload)
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            if sub.dropped or not sub.matches(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except queue.Full:
                sub.dropped = True
                sub.queue = queue.Queue(maxsize=1)
                sub.queue.put_nowait(_CLOSED)
        return event

    def subscribe(self, matches: Matcher, is_active: Callable[[], bool]) -> Iterator[Event]:
        """Yield matching events until IS_ACTIVE turns false (the client went away)."""
        sub = _Subscriber(matches)
        with self._lock:
            self._subscribers.append(sub)
        try:
            while is_active():
                try:
                    item = sub.queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is _CLOSED:
                    return
                assert isinstance(item, Event)
                yield item
        finally:
            with self._lock:
                self._subscribers.remove(sub)

    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
