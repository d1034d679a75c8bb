"""Docker's /events: every engine action, kept for `since` and fanned out to listeners.

Backends publish through `EventBus.publish` (handed to them as a callable); `GET /events`
streams from `EventBus.stream`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

# What a backend is given to publish with: (type, action, actor id, attributes).
Publish = Callable[[str, str, str, dict[str, str]], None]


class EventBus:
    """Docker's /events: every engine action, kept for `since` and fanned out to listeners."""

    def __init__(self, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._history: list[dict[str, Any]] = []
        self._limit = history
        self._listeners: list[queue.Queue[dict[str, Any]]] = []

    def publish(self, kind: str, action: str, actor: str, attributes: dict[str, str]) -> None:
        t = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": attributes},
            "scope": "local",
            "time": t // 1_000_000_000,
            "timeNano": t,
        }
        if kind == "container":
            event.update(
                status=action, id=actor, **({"from": attributes["image"]} if "image" in attributes else {})
            )
        with self._lock:
            self._history = (self._history + [event])[-self._limit :]
            for q in self._listeners:
                q.put(event)

    def listeners(self) -> int:
        with self._lock:
            return len(self._listeners)

    def stream(self, filters: dict[str, Any], since: float | None, until: float | None) -> Iterator[bytes]:
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            # timeNano, not time: the CLI sends fractional seconds, and a whole-second compare
            # dropped events from the second `since` falls in
            backlog = [e for e in self._history if since is not None and e["timeNano"] >= since * 1e9]
            self._listeners.append(q)
        try:
            for event in backlog:
                if until is not None and event["timeNano"] > until * 1e9:
                    return
                if _event_matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
            while True:
                if until is not None and time.time() > until:
                    return
                try:
                    event = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if until is not None and event["timeNano"] > until * 1e9:
                    return
                if _event_matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
        finally:
            with self._lock:
                self._listeners.remove(q)


def _event_matches(event: dict[str, Any], filters: dict[str, Any]) -> bool:
    for key, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, (list, dict)) else [wanted]
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and not _event_name_matches(event["Action"], values):
            return False
        if key == "container":
            # dockerd's matchContainer: a container event by id or name, any other (a network's
            # connect/disconnect) by its `container` attribute, which is the container's id
            attrs = event["Actor"]["Attributes"]
            if event["Type"] == "container":
                if not any(event["Actor"]["ID"].startswith(v) or attrs.get("name") == v for v in values):
                    return False
            elif not any(v and attrs.get("container", "").startswith(v) for v in values):
                return False
        if key == "label":
            attrs = event["Actor"]["Attributes"]
            if not all(
                attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v else v in attrs
                for v in values
            ):
                return False
    return True


# Actions with a detail after a colon ("health_status: healthy", "exec_start: sh -c ...") that
# dockerd matches by prefix when the filter names one of them bare (moby#25798).
FUZZY_EVENTS = ("health_status", "exec_create", "exec_start")


def _event_name_matches(action: str, values: list[str]) -> bool:
    if any(v in FUZZY_EVENTS for v in values):
        return any(action.startswith(v) for v in values)
    return action in values


class ContainerAttributes:
    """A Publish that gives every container event the attributes dockerd's
    LogContainerEventWithAttributes gives it: the container's labels (image's included), then
    its image reference and name over the caller's attributes. Compose's attached `up` follows
    its project through `/events?filters={"label": [...]}`, which matches these labels.

    FIND is the store's lookup by id; what it found is remembered until the `destroy` event,
    which comes after the record is gone."""

    def __init__(self, publish: Publish, find: Callable[[str], Any]) -> None:
        self._publish = publish
        self._find = find
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, str]] = {}

    def __call__(self, kind: str, action: str, actor: str, attributes: dict[str, str]) -> None:
        if kind == "container":
            attributes = {**attributes, **self._of(actor, forget=action == "destroy")}
        self._publish(kind, action, actor, attributes)

    def _of(self, cid: str, forget: bool) -> dict[str, str]:
        c = self._find(cid)
        with self._lock:
            if c is not None:
                attrs = {str(k): str(v) for k, v in (c.config.get("Labels") or {}).items()}
                if c.image_ref:
                    attrs["image"] = c.image_ref
                attrs["name"] = c.name
                self._known[cid] = attrs
            found = self._known.pop(cid, {}) if forget else self._known.get(cid, {})
            return dict(found)
