"""POST /containers/prune."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dockerd.engine.container import sizes
from dockerd.engine.errors import EngineError
from dockerd.engine.filters import CONTAINER_PRUNE, Filters, match_labels, prune_until, pruned_after
from dockerd.engine.logs import parse_time

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

log = logging.getLogger("pydockerd.containers")


def prune_containers(d: Containers, filters: Filters) -> dict[str, Any]:
    """dockerd's ContainersPrune: stopped containers the filters keep in; one that cannot be
    removed (removed meanwhile, or started again) is skipped, not an error."""
    filters.validate(CONTAINER_PRUNE)
    until = prune_until(filters)
    deleted, reclaimed = [], 0
    for c in d.all():
        # Paused and restarting containers count as running, as dockerd's IsRunning.
        if c.running() or c.state.get("Paused") or c.state.get("Restarting") or c.removal_in_progress:
            continue
        if pruned_after(parse_time(c.created), until) or not match_labels(filters, c.config.get("Labels")):
            continue
        size = sizes.writable_size(d, c)
        try:
            d.remove(c.id, False, False)
        except EngineError as exc:
            log.warning("prune: skipping container %s: %s", c.id, exc)
            continue
        deleted.append(c.id)
        reclaimed += size
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
