"""Container records and their store: what dockerd keeps in <data-root>/containers/<id>/.

A record (`Container`) holds Docker's config, host config and state; the store keeps every
record in memory under one lock, persists each one as config.v2.json on every change, and
tells waiters (threads, and the API's wait with no thread of its own) when a state changed.
It also holds the bookkeeping the lifecycle verbs share: each container's last stop (for
wait), the exits being recorded, the restarts in progress.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from common import atomicfile, schema
from dockerd.engine.errors import InvalidParameter, no_such_container

log = logging.getLogger("pydockerd.containers")

ZERO_TIME = "0001-01-01T00:00:00Z"
RECORD_FILE = "config.v2.json"
# The records' layout (common/schema.py): release 0.1.0's, without a "Version", is 1.
LAYOUT_VERSION = 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], None]] = {}


@dataclass
class Container:
    id: str
    name: str
    created: str
    image_id: str
    image_ref: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    has_been_started: bool = False
    manually_stopped: bool = False
    removal_in_progress: bool = False
    # Docker's NetworkSettings.Networks as asked: network name -> EndpointSettings (engine/network.py)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Docker's MountPoints (volumes, binds, --mount tmpfs): dockerd/volumes/mountpoint.py's records
    mount_points: list[dict[str, Any]] = field(default_factory=list)

    def running(self) -> bool:
        return bool(self.state.get("Running"))

    def status(self) -> str:
        s = self.state
        if s.get("Paused"):
            return "paused"
        if s.get("Restarting"):
            return "restarting"
        if s.get("Running"):
            return "running"
        if self.removal_in_progress:
            return "removing"
        if s.get("Dead"):
            return "dead"
        return "exited" if self.has_been_started else "created"


@dataclass(frozen=True)
class Stop:
    """A container's stops so far (for Docker's wait) and the status of the last one."""

    count: int = 0
    exit_code: int = 0
    error: str = ""


def fresh_state() -> dict[str, Any]:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
        "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }  # fmt: skip


class ContainerStore:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(self.root, mode=0o710, exist_ok=True)
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        # Waiters that must not hold a thread (the API's wait): told of every state change.
        self._watchers: set[Callable[[], None]] = set()
        self._records: dict[str, Container] = {}
        self.stops: dict[str, Stop] = {}  # the last stop of each container, for waiters
        self.exiting: set[str] = set()  # containers whose exit is being recorded
        self.restarting_now: set[str] = set()  # containers a restart policy is starting right now
        self.starting: Counter[str] = Counter()  # starts under way per container (their exits wait)
        # The OCI process each start wrote into the containerd record (only start writes it): an
        # exec's base without a Containers.Get; unknown after a daemon restart (then asked).
        self.process_specs: dict[str, dict[str, Any]] = {}
        # Containers whose task this process deleted at their last exit: removal need not ask again.
        self.tasks_deleted: set[str] = set()
        self._load()

    # --- records -------------------------------------------------------------------------

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def save(self, c: Container) -> None:
        doc = schema.stamped(asdict(c), LAYOUT_VERSION)
        atomicfile.write_text(os.path.join(self.dir(c.id), RECORD_FILE), json.dumps(doc))

    def _load(self) -> None:
        for cid in os.listdir(self.root):
            if cid.startswith("."):
                continue
            path = os.path.join(self.dir(cid), RECORD_FILE)
            try:
                doc, migrated = schema.load(path, json.loads, LAYOUT_VERSION, MIGRATIONS)
                del doc[schema.VERSION_KEY]
                c = Container(**doc)
            except schema.LayoutError as exc:
                # A newer release's record or a damaged one: named, left as it is, and the
                # other containers are still restored.
                log.error("skipping container %s: %s", cid, exc)
                continue
            except (OSError, TypeError) as exc:
                log.error("skipping container %s: %s: %s", cid, path, exc)
                continue
            if migrated:
                self.save(c)
            self._records[cid] = c

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without its leading slash)."""
        with self.lock:
            if ref in self._records:
                return self._records[ref]
            name = ref.lstrip("/")
            for c in self._records.values():
                if c.name == name:
                    return c
            matches = [c for c in self._records.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def find(self, cid: str) -> Container | None:
        """The record of exactly this id, None once it is removed."""
        with self.lock:
            return self._records.get(cid)

    def __contains__(self, cid: str) -> bool:
        return cid in self._records

    def all(self) -> list[Container]:
        """Newest first."""
        with self.lock:
            return sorted(self._records.values(), key=lambda c: c.created, reverse=True)

    def add(self, c: Container) -> None:
        """Under the lock, with the record's directory made and its files written."""
        self.save(c)
        self._records[c.id] = c

    def forget(self, cid: str) -> None:
        """The container is removed: its record and its stops go, waiters are told."""
        with self.lock:
            self._records.pop(cid, None)
            self.stops.pop(cid, None)
            self.process_specs.pop(cid, None)
            self.tasks_deleted.discard(cid)
            self.notify()

    def owner_of(self, name: str, other_than: str = "") -> str | None:
        """The id of the container named NAME (but OTHER_THAN), if any; call under the lock."""
        return next((c.id for c in self._records.values() if c.name == name and c.id != other_than), None)

    def names(self) -> set[str]:
        with self.lock:
            return {c.name for c in self._records.values()}

    # --- changes and waiting -------------------------------------------------------------------

    def record_stop(self, cid: str, exit_code: int, error: str) -> None:
        """Under the lock: one more stop of CID, with its status."""
        self.stops[cid] = Stop(self.stops.get(cid, Stop()).count + 1, exit_code, error)

    def stop_count(self, cid: str) -> int:
        return self.stops.get(cid, Stop()).count

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a container's state changes; returns the unwatch."""
        with self.lock:
            self._watchers.add(callback)

        def unwatch() -> None:
            with self.lock:
                self._watchers.discard(callback)

        return unwatch

    def notify(self) -> None:
        with self.lock:
            self.changed.notify_all()
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

    def wait_until(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until PREDICATE holds (re-checked at every change, and every second); False
        if TIMEOUT seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)
        return True
