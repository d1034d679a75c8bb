"""A container's mount points, from its create request: pure functions, nothing created.

dockerd's order (daemon.registerMountPoints, then the image's volumes): mount points copied
from `--volumes-from` containers, then `Binds`, then `Mounts`; a later source replaces an
earlier one at the same destination except that two Binds/Mounts at one destination (or a Bind
on a `--tmpfs` path) are a "Duplicate mount point"; last, every `VOLUME` of the image and of the
request's `Volumes` that nothing covers gets an anonymous volume. Validation happens here,
before any volume exists, so a refused request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dockerd.engine.errors import InvalidParameter
from dockerd.volumes.mountpoint import BIND, TMPFS, VOLUME, MountPoint
from dockerd.volumes.mountspec import (
    clean,
    needs_slave_propagation,
    parse_bind,
    parse_mount,
    parse_volumes_from,
    read_write,
)

# container reference -> its mount points (the engine's lookup; raises NotFound for no such container)
MountsOf = Callable[[str], Sequence[MountPoint]]


def duplicate(destination: str) -> InvalidParameter:
    return InvalidParameter(f"Duplicate mount point: {destination}")


def plan(
    host_config: Mapping[str, Any],
    volumes: Iterable[str],
    mounts_of: MountsOf,
    daemon_root: str,
) -> list[MountPoint]:
    """The mount points of a container to be created.

    host_config: the request's HostConfig (Binds, Mounts, VolumesFrom, VolumeDriver, Tmpfs).
    volumes: the image's VOLUMEs and the request's Config.Volumes together.
    mounts_of: the mount points of an existing container (for VolumesFrom).
    daemon_root: pydockerd's data root (binds of it default to rslave propagation).
    Volume points carry the name asked for ("" for anonymous) and the driver asked for ("" for
    the default); containermounts.create_volumes makes them real.
    """
    points: dict[str, MountPoint] = {}
    tmpfs = set((host_config.get("Tmpfs") or {}).keys())
    volume_driver = str(host_config.get("VolumeDriver") or "")

    for entry in host_config.get("VolumesFrom") or []:
        container, mode = parse_volumes_from(entry)
        for m in mounts_of(container):
            # (dockerd keeps neither the mode string nor the mount id of the donor's point)
            cp = m.copy(
                rw=m.rw and read_write(mode), copy_data=False, mount_id="", mode="", from_container=True
            )
            if cp.type == VOLUME:
                cp.source = ""  # the volume's path is asked of its driver again
            points[cp.destination] = cp

    taken: set[str] = set()
    for raw in host_config.get("Binds") or []:
        bind = parse_bind(raw, volume_driver)
        if needs_slave_propagation(bind, daemon_root):
            bind.propagation = "rslave"
        if bind.destination in taken or bind.destination in tmpfs:
            raise duplicate(bind.destination)
        taken.add(bind.destination)
        points[bind.destination] = bind

    for spec in host_config.get("Mounts") or []:
        mp = parse_mount(spec)
        if needs_slave_propagation(mp, daemon_root):
            mp.propagation = "rslave"
        if mp.destination in taken:
            raise duplicate(str(spec.get("Target", "")))
        if mp.type == BIND:
            mp.skip_mountpoint_creation = True  # --mount type=bind never creates its source
        taken.add(mp.destination)
        points[mp.destination] = mp

    for raw in sorted(set(volumes)):
        if not raw.startswith("/"):
            raise InvalidParameter(f"invalid mount path: '{raw}' mount path must be absolute")
        dest = clean(raw)
        if dest == "/":
            raise InvalidParameter("invalid specification: destination can't be '/'")
        if dest in points or dest in tmpfs:
            continue  # covered by a mount the request asked for
        points[dest] = MountPoint(type=VOLUME, destination=dest, driver=volume_driver)
    return list(points.values())


def sorted_for_mounting(points: Iterable[MountPoint]) -> list[MountPoint]:
    """Parents before children (fewer path components first), as dockerd orders the OCI mounts."""
    return sorted(points, key=lambda m: len(clean(m.destination).split("/")))


def tmpfs_destinations(points: Iterable[MountPoint]) -> list[str]:
    return [m.destination for m in points if m.type == TMPFS]
