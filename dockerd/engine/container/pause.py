"""POST /containers/{id}/pause and /unpause (the task's cgroup frozen and thawed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockerd.engine.errors import Conflict

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def pause(d: Containers, ref: str) -> None:
    """POST /containers/{id}/pause: the task frozen (its cgroup's freezer)."""
    c = d.get(ref)
    if not c.running():
        raise Conflict(f"Container {c.id} is not running")
    if c.state.get("Paused"):
        raise Conflict(f"Container {c.id} is already paused")
    d.client.tasks.pause(c.id)
    with d.store.lock:
        c.state.update(Paused=True, Status="paused")
        d.store.save(c)
    d.health.paused(c.id)
    d.publish("container", "pause", c.id, {"name": c.name})


def unpause(d: Containers, ref: str) -> None:
    """POST /containers/{id}/unpause."""
    c = d.get(ref)
    if not c.state.get("Paused"):
        raise Conflict(f"Container {c.id} is not paused")
    d.client.tasks.resume(c.id)
    with d.store.lock:
        c.state.update(Paused=False, Status="running")
        d.store.save(c)
    d.health.unpaused(c)
    d.publish("container", "unpause", c.id, {"name": c.name})
