"""GET /containers/json: which containers `docker ps` shows, with dockerd's filters."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dockerd.engine.errors import EngineError, InvalidParameter
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container

FILTERS = {
    "ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label", "name", "network",
    "publish", "since", "status", "volume",
}  # fmt: skip
STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH_STATES = ("starting", "healthy", "unhealthy", "none")


def check_filters(filters: dict[str, Any]) -> None:
    """dockerd refuses a status or health no container can be in (before listing anything)."""
    for key, allowed in (("status", STATES), ("health", HEALTH_STATES)):
        wanted = filters.get(key, [])
        for value in list(wanted) if isinstance(wanted, (list, dict)) else [wanted]:
            if value not in allowed:
                if key == "health":
                    raise InvalidParameter(f"Unrecognised filter value for health: {value}")
                raise InvalidParameter(f"Invalid filter '{key}={value}'")


def select(engine: Containers, show_all: bool, limit: int, filters: dict[str, Any]) -> list[Container]:
    """The containers to list, newest first: running ones (all with SHOW_ALL, or when a limit,
    status or exited filter is given) that match FILTERS, at most LIMIT (> 0) of them."""
    chosen = []
    for c in engine.all():
        # A container between restarts is listed as dockerd lists it: running (SetRestarting).
        shown = c.running() or c.state.get("Restarting")
        if not show_all and not shown and limit < 0 and "status" not in filters and "exited" not in filters:
            continue
        if not _matches(c, filters, engine):
            continue
        chosen.append(c)
    if limit > 0:
        chosen = chosen[:limit]
    return chosen


def with_shown_images(
    d: Containers, containers: list[Container], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """ROWS (the summaries of CONTAINERS) with the Image dockerd's list shows (refreshImage): the
    reference the container was created from while it still names the container's image, else
    the image ID (the tag was removed or moved to another image)."""
    images = None
    for c, row in zip(containers, rows, strict=True):
        if c.image_ref == c.image_id:
            continue
        if images is None:
            images = d.images.all()
        try:
            still = d.images.resolve(c.image_ref, images).id == c.image_id
        except EngineError:
            still = False
        if not still:
            row["Image"] = c.image_id
    return rows


def _matches(c: Container, filters: dict[str, Any], engine: Containers) -> bool:
    for key, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, (list, dict)) else [wanted]
        if key == "status" and c.status() not in values:
            return False
        # A container without a health state (no healthcheck, or never started) is "none".
        if key == "health" and ((c.state.get("Health") or {}).get("Status") or "none") not in values:
            return False
        if key == "name" and not any(_regex_search(v, c.name) for v in values):
            return False
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "label":
            labels = c.config.get("Labels") or {}
            for v in values:
                k, _, val = v.partition("=")
                if k not in labels or (val and labels[k] != val):
                    return False
        if key == "exited" and (c.status() != "exited" or str(c.state.get("ExitCode")) not in values):
            return False
        if key == "ancestor" and not any(
            v in (c.image_ref, c.image_id, c.image_id.removeprefix("sha256:")[:12]) for v in values
        ):
            return False
        if key in ("network", "publish", "expose") and not _network_match(engine, c, key, values):
            return False
        if key == "volume" and not any(lifecycle.uses_volume(c, v) for v in values):
            return False
        if key in ("before", "since"):
            ref = engine.get(values[0])
            if key == "before" and not c.created < ref.created:
                return False
            if key == "since" and not c.created > ref.created:
                return False
    return True


def _network_match(engine: Containers, c: Container, key: str, values: list[str]) -> bool:
    """network= (a network's name or id), publish= (host ports), expose= (container ports): dockerd's."""
    net = engine.networking
    if key == "network":
        ids = {str(s.get("NetworkID") or "") for s in net.endpoints(c).values()} | set(net.endpoints(c))
        return any(v in ids or any(i.startswith(v) for i in ids if i) for v in values)
    rows = net.summary_ports(c)
    ports = {(r["PublicPort"], r["Type"]) for r in rows if "PublicPort" in r} if key == "publish" else \
        {(r["PrivatePort"], r["Type"]) for r in rows} | {(int(k.partition("/")[0]), k.partition("/")[2] or "tcp")
                                                         for k in (c.config.get("ExposedPorts") or {})}  # fmt: skip
    for v in values:
        spec, _, proto = v.partition("/")
        low, _, high = spec.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            continue
        wanted = range(int(low), int(high or low) + 1)
        if any(p in wanted and t == (proto or "tcp") for p, t in ports):
            return True
    return False


def _regex_search(pattern: str, text: str) -> bool:
    """dockerd's filter regex match: a pattern that does not compile matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False
