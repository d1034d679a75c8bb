"""The container verbs' hooks into the volume service: one call per verb, so the verbs
(dockerd/engine/container/) stay small and the mount logic stays here.

  create   plan(d, config, host, image_config)     the mount points, validated (400), nothing made
           create(d, cid, points, top)             volumes made and referenced, copy-up; undone on failure
  start    setup(d, c) -> OCI mounts               volume mounts taken (ids kept in the record)
  stop     teardown(d, c)                          after the task is gone, or a start that failed
  rm       remove(d, c, anonymous)                 references released; `rm -v` / `--rm`: anonymous volumes
  restore  restore(d)                              references from the records, running containers' mounts

The container record keeps the points as Docker's `MountPoints` (Container.mount_points).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from containerd.client import ContainerdError
from dockerd.engine.container import rootfs
from dockerd.volumes import containermounts, mountplan, oci
from dockerd.volumes.errors import EngineError, InvalidParameter, NotFound
from dockerd.volumes.mountpoint import VOLUME, MountPoint

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container
    from dockerd.engine.image.service import ResolvedImage

log = logging.getLogger("pydockerd.volumes")
SNAPSHOTTER = "overlayfs"


def points_of(c: Container) -> list[MountPoint]:
    return [MountPoint.from_record(raw) for raw in c.mount_points]


def _save_points(d: Containers, c: Container, points: Sequence[MountPoint]) -> None:
    with d.store.lock:
        c.mount_points = [p.to_record() for p in points]
        if c.id in d.store:
            d.store.save(c)


def plan(
    d: Containers, config: dict[str, Any], host: dict[str, Any], image_config: dict[str, Any]
) -> list[MountPoint]:
    """The mount points of a container about to be created: the request's Binds, Mounts and
    VolumesFrom, then an anonymous volume for each VOLUME of the image and of Config.Volumes."""
    volumes = [*(image_config.get("Volumes") or {}), *(config.get("Volumes") or {})]

    def mounts_of(ref: str) -> list[MountPoint]:
        try:
            return points_of(d.get(ref))
        except NotFound as exc:  # dockerd: a bad --volumes-from is the request's fault (400)
            raise InvalidParameter(str(exc)) from exc

    return mountplan.plan(host, volumes, mounts_of, d.data_root)


def create(d: Containers, cid: str, points: Sequence[MountPoint], image: ResolvedImage) -> None:
    """Make the points' volumes (referenced by CID), then fill new, empty ones from the image
    (copy-up, from a read-only view of its unpacked layers). All or nothing."""
    if not any(p.type == VOLUME for p in points):
        return
    containermounts.create_volumes(points, d.volumes, cid)
    try:
        top = d.images.ensure_unpacked(image)
        with _image_view(d, cid, top) as root:
            containermounts.populate(points, root, d.volumes)
    except BaseException:
        undo(d, cid, points)
        raise


def undo(d: Containers, cid: str, points: Sequence[MountPoint]) -> None:
    """A create that failed after create(): the references go, and the anonymous volumes."""
    for problem in containermounts.remove(points, d.volumes, cid, remove_anonymous=True):
        log.warning("undoing the volumes of %s: %s", cid, problem)


@contextlib.contextmanager
def _image_view(d: Containers, cid: str, top: str) -> Iterator[str]:
    """A read-only view of the image's layers TOP, mounted under the daemon's private mount root
    for the block (containerd's View, as rootfs.image_root; copy-up walks it by fd)."""
    snaps = d.client.snapshots(SNAPSHOTTER)
    key = f"{cid}-volumes"
    with d.client.lease():
        mounts = snaps.view(key, top)
        try:
            with rootfs.mounted(mounts, d.mount_root) as path:
                yield path
        finally:
            with contextlib.suppress(ContainerdError):
                snaps.remove(key)


def setup(d: Containers, c: Container) -> list[dict[str, Any]]:
    """At start: the container's volume mounts taken and its bind sources checked; the OCI mounts."""
    points = points_of(c)
    if not points:
        return []
    paths = containermounts.setup(points, d.volumes)
    _save_points(d, c, points)  # the mount ids, released with the same ids
    for p in points:
        if p.type == VOLUME:  # dockerd's event, with its attributes
            d.publish("volume", "mount", p.name, {
                "driver": p.driver, "container": c.id, "destination": p.destination,
                "read/write": "true" if p.rw else "false", "propagation": p.propagation,
            })  # fmt: skip
    return oci.mounts(points, paths)


def teardown(d: Containers, c: Container) -> None:
    """The task is gone (or never started): its volume mounts are released."""
    points = points_of(c)
    held = [p for p in points if p.type == VOLUME and p.mount_id]
    if not held:
        return
    containermounts.teardown(points, d.volumes)
    _save_points(d, c, points)
    for p in held:
        d.publish("volume", "unmount", p.name, {"driver": p.driver, "container": c.id})


def remove(d: Containers, c: Container, anonymous: bool) -> None:
    """The container is removed: its references go, and with ANONYMOUS (rm -v, --rm) its
    anonymous volumes that no other container uses; named volumes never."""
    points = points_of(c)
    containermounts.teardown(points, d.volumes)
    for problem in containermounts.remove(points, d.volumes, c.id, remove_anonymous=anonymous):
        log.warning("removing the volumes of %s: %s", c.id, problem)


def restore(d: Containers) -> None:
    """At daemon start: the references become what the records hold (a crash between removing a
    container and releasing its volumes is repaired), running containers' mounts are counted
    again, and mounts nobody uses any more (containers gone meanwhile) are undone."""
    records = d.all()
    d.volumes.reconcile_references({c.id: containermounts.volume_names(points_of(c)) for c in records})
    for c in records:
        if c.running():
            containermounts.restore_mounts(points_of(c), d.volumes)
    try:
        d.volumes.unmount_idle()
    except EngineError as exc:
        log.warning("unmounting unused volumes: %s", exc)


def inspect_view(c: Container) -> list[dict[str, Any]]:
    """Inspect's and the list's `Mounts`, ordered by destination."""
    return [p.to_inspect() for p in sorted(points_of(c), key=lambda p: p.destination)]


def uses_volume(c: Container, value: str) -> bool:
    """`docker ps --filter volume=X`: a mount point named X (a bind's source) or at destination X."""
    for p in points_of(c):
        if value in (p.destination, p.name or p.source):
            return True
    return False
