"""`pyrunc events`: cgroup statistics (once with --stats, else every --interval) and OOM notices."""

from __future__ import annotations

import json
import sys
import time

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux.cgroups import load_manager


def parse_duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            try:
                return float(text[: -len(suffix)]) * units[suffix]
            except ValueError:
                break
    raise PyruncError(f"invalid duration {text!r} (use e.g. 5s, 500ms)")


def events(root: str, container_id: str, stats_once: bool, interval: float) -> None:
    cs = statemod.load(root, container_id)
    if statemod.status(root, cs) == "stopped":
        raise PyruncError(f"container with id {container_id} is not running")
    cgroups = load_manager(cs.cgroup)

    def emit(kind: str, data: object | None) -> None:
        event: dict[str, object] = {"type": kind, "id": container_id}
        if data is not None:
            event["data"] = data
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    if stats_once:
        emit("stats", cgroups.stats())
        return
    ooms = cgroups.oom_kill_count()
    next_stats = time.monotonic()
    while statemod.status(root, cs) != "stopped":
        now = time.monotonic()
        if now >= next_stats:
            emit("stats", cgroups.stats())
            next_stats = now + interval
        count = cgroups.oom_kill_count()
        if count > ooms:
            emit("oom", None)
            ooms = count
        time.sleep(min(0.2, interval))
