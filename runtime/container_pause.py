"""`pyrunc pause` / `resume`: freeze and thaw every process through the freezer cgroup."""

from __future__ import annotations

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux.cgroups import load_manager


def pause(root: str, container_id: str) -> None:
    cs = statemod.load(root, container_id)
    current = statemod.status(root, cs)
    if current not in ("running", "created"):
        raise PyruncError(f"container not running or created: {current}")
    load_manager(cs.cgroup).freeze()


def resume(root: str, container_id: str) -> None:
    cs = statemod.load(root, container_id)
    current = statemod.status(root, cs)
    if current != "paused":
        raise PyruncError(f"container not paused: {current}")
    load_manager(cs.cgroup).thaw()
