"""Whether a host path can be bound with shared or slave propagation (dockerd's ensureShared)."""

from __future__ import annotations

import os
import re

from dockerd.engine.errors import InvalidParameter


def _mount_of(path: str) -> tuple[str, list[str]]:
    """(mount point, optional fields) of the mount that holds PATH, from /proc/self/mountinfo."""
    best, fields = "/", []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left = line.split(" - ", 1)[0].split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), left[4])
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fields = point, left[6:]
    return best, fields


def check_propagation(source: str, propagation: str) -> None:
    """Refuse shared/slave propagation from a host mount that is private, in dockerd's words."""
    wanted: tuple[str, ...]
    if propagation in ("shared", "rshared"):
        wanted, what = ("shared:",), "a shared mount"
    elif propagation in ("slave", "rslave"):
        wanted, what = ("shared:", "master:"), "a shared or slave mount"
    else:
        return
    point, fields = _mount_of(os.path.realpath(source))
    if not any(f.startswith(w) for f in fields for w in wanted):
        raise InvalidParameter(f"path {source} is mounted on {point} but it is not {what}")
