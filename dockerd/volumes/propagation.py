"""Whether a host path can be bound with shared or slave propagation (dockerd's ensureShared)."""

from __future__ import annotations

import os

from common import mountinfo
from dockerd.engine.errors import InvalidParameter


def check_propagation(source: str, propagation: str) -> None:
    """Refuse shared/slave propagation from a host mount that is private, in dockerd's words."""
    wanted: tuple[str, ...]
    if propagation in ("shared", "rshared"):
        wanted, what = ("shared:",), "a shared mount"
    elif propagation in ("slave", "rslave"):
        wanted, what = ("shared:", "master:"), "a shared or slave mount"
    else:
        return
    holder = mountinfo.mount_of(os.path.realpath(source))
    point, fields = (holder.point, holder.optional) if holder is not None else ("/", ())
    if not any(f.startswith(w) for f in fields for w in wanted):
        raise InvalidParameter(f"path {source} is mounted on {point} but it is not {what}")
