"""A container's mount points as OCI runtime-spec mounts (what dockerd puts in config.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockerd.volumes.mountplan import sorted_for_mounting
from dockerd.volumes.mountpoint import DEFAULT_PROPAGATION, TMPFS, MountPoint
from dockerd.volumes.mountspec import tmpfs_data

# dockerd's options for a tmpfs mount before the user's own
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]


def mounts(points: Sequence[MountPoint], paths: Mapping[str, str]) -> list[dict[str, Any]]:
    """OCI mounts for POINTS, parents first. PATHS: destination -> host path (containermounts.setup).

    Volumes and binds are recursive binds, read-only when the point is, with the point's
    propagation (rprivate by default); a `--mount type=tmpfs` is a tmpfs with its size and mode.
    A read-only root file system (`--read-only`) does not make these read-only.
    """
    out: list[dict[str, Any]] = []
    for p in sorted_for_mounting(points):
        if p.type == TMPFS:
            data = tmpfs_data(p.spec)
            options = TMPFS_DEFAULTS + ([DEFAULT_PROPAGATION] + (data.split(",") if data else []))
            out.append({"destination": p.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            continue
        options = ["rbind"]
        if not p.rw:
            options.append("ro")
        options.append(p.propagation or DEFAULT_PROPAGATION)
        out.append(
            {"destination": p.destination, "type": "bind", "source": paths[p.destination], "options": options}
        )
    return out
