"""What the engine does with a container's mount points at each step of its life.

create   points = mountplan.plan(...); create_volumes(points, service, cid) makes every
         volume (anonymous ones get their names) holding a reference for CID, undoing all of
         it if one fails; with the container's root file system mounted, populate(points,
         rootfs, service) copies the image's files into new, empty volumes (copy-up). Store
         [p.to_record() for p in points] in the container record.
start    paths = setup(points, service): mounts every volume (a mount id per point, kept in
         the record so the same id is released), makes missing `-v` bind sources, checks bind
         propagation; then oci.mounts(points, paths) goes into the OCI spec. If start fails
         afterwards: teardown(points, service).
stop     teardown(points, service) once the task is gone (after an exit, a kill, a failed start).
rm       remove(points, service, cid, remove_anonymous=rm -v or --rm).
restore  service.reconcile_references({cid: volume_names(points)} for every container); for a
         running container restore_mounts(points, service); then service.unmount_idle().
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence

from dockerd.volumes.copyup import copy_up, ensure_mountable
from dockerd.volumes.errors import DriverError, EngineError, InvalidParameter
from dockerd.volumes.mountplan import sorted_for_mounting
from dockerd.volumes.mountpoint import BIND, VOLUME, MountPoint
from dockerd.volumes.mountspec import PROPAGATION_MODES
from dockerd.volumes.names import new_anonymous_name
from dockerd.volumes.propagation import check_propagation
from dockerd.volumes.service import LOCAL, VolumeService

log = logging.getLogger(__name__)


def volume_names(points: Iterable[MountPoint]) -> list[str]:
    return [p.name for p in points if p.type == VOLUME and p.name]


def create_volumes(points: Sequence[MountPoint], service: VolumeService, cid: str) -> None:
    """Create or look up each volume point's volume, referenced by CID; all or nothing.

    Fills in each point's name (anonymous volumes get theirs here), driver, source (the volume's
    mount point) and dockerd's default mode "z" for local volumes the request named or mounted.
    On failure the references taken are released and the volumes this call created removed.
    """
    taken: list[str] = []
    made: list[str] = []
    try:
        for p in points:
            if p.type != VOLUME:
                continue
            from_image = not p.spec  # an image VOLUME or Config.Volumes entry
            options, labels = p.volume_options()
            vol, created = service.ensure(p.name, p.driver, options, labels, ref=cid)
            taken.append(vol.name)
            if created:
                made.append(vol.name)
            p.name, p.driver, p.source = vol.name, vol.driver, vol.mountpoint
            if vol.driver == LOCAL and not p.mode and not from_image and not p.from_container:
                p.mode = "z"
    except BaseException:
        for name in taken:
            service.release(name, cid)
        for name in made:
            with contextlib.suppress(EngineError):
                service.remove(name)
        raise


def populate(points: Sequence[MountPoint], rootfs: str, service: VolumeService) -> None:
    """Copy-up: each new, empty volume mounted over a path the image has gets the image's files.

    ROOTFS is the container's root file system, mounted. Points with nocopy (or from
    --volumes-from) are left alone; a volume that already holds anything is never touched.
    """
    for p in points:
        if p.type != VOLUME:
            continue
        ensure_mountable(rootfs, p.destination)
        if not p.copy_data:
            continue
        mount_id = new_anonymous_name()
        path = service.mount(p.name, mount_id, p.driver, source=p.source)
        try:
            copy_up(rootfs, p.destination, path)
        finally:
            service.unmount(p.name, mount_id, p.driver)


def setup(points: Sequence[MountPoint], service: VolumeService) -> dict[str, str]:
    """Mount what the container's points need; destination -> host path for the OCI spec.

    Volume points get a mount id (kept in the point: save the record afterwards); a `-v` bind
    whose host directory is missing gets it created (0755), a `--mount` bind is refused; a
    shared or slave propagation needs a host mount that allows it. All or nothing.
    """
    paths: dict[str, str] = {}
    mounted: list[MountPoint] = []
    try:
        for p in sorted_for_mounting(points):
            if p.type == VOLUME:
                p.mount_id = p.mount_id or new_anonymous_name()
                paths[p.destination] = service.mount(p.name, p.mount_id, p.driver, source=p.source)
                mounted.append(p)
            elif p.type == BIND:
                ensure_bind_source(p, service.root_owner)
                if _propagation_asked(p):  # (the rslave implied for a bind of the daemon root is not checked)
                    check_propagation(p.source, p.propagation)
                paths[p.destination] = p.source
    except BaseException:
        teardown(mounted, service)
        raise
    return paths


def restore_mounts(points: Sequence[MountPoint], service: VolumeService) -> None:
    """After a daemon restart, count a running container's volume mounts again (live restore)."""
    for p in points:
        if p.type == VOLUME and p.mount_id:
            try:
                service.mount(p.name, p.mount_id, p.driver, source=p.source)
            except EngineError as exc:
                log.warning("volume %s of a running container: %s", p.name, exc)


def teardown(points: Iterable[MountPoint], service: VolumeService) -> None:
    """Release the volume mounts the container held (the driver unmounts with its last user)."""
    for p in points:
        if p.type != VOLUME or not p.mount_id:
            continue
        try:
            service.unmount(p.name, p.mount_id, p.driver)
        except EngineError as exc:
            log.warning("unmounting volume %s: %s", p.name, exc)
        p.mount_id = ""


def remove(
    points: Iterable[MountPoint], service: VolumeService, cid: str, remove_anonymous: bool
) -> list[str]:
    """The container is removed: release its volumes; with rm -v / --rm remove its anonymous
    ones that no other container uses (named volumes never). Returns errors worth reporting."""
    anonymous = [p.name for p in points if p.anonymous and p.name] if remove_anonymous else []
    return service.remove_container_volumes(cid, anonymous)


def _propagation_asked(p: MountPoint) -> bool:
    """Whether the request named P's propagation (`-v a:b:rshared`, `bind-propagation=...`)."""
    if (p.spec.get("BindOptions") or {}).get("Propagation"):
        return True
    return any(option in PROPAGATION_MODES for option in p.mode.split(","))


def ensure_bind_source(p: MountPoint, owner: tuple[int, int] | None = None) -> None:
    """A missing `-v` source is made (0755), owned by OWNER when given (userns-remap: each
    directory it makes, as dockerd's MkdirAllAndChown)."""
    if os.path.lexists(p.source):
        return
    if p.skip_mountpoint_creation:
        raise InvalidParameter(
            f'invalid mount config for type "bind": bind source path does not exist: {p.source}'
        )
    try:
        made = _missing_ancestors(p.source)
        os.makedirs(p.source, 0o755, exist_ok=True)
        if owner is not None:
            for path in made:
                os.chown(path, *owner)
    except OSError as exc:
        # Go's MkdirAll names the component that failed, not the whole path
        raise DriverError(
            f"error while creating mount source path '{p.source}': mkdir {exc.filename or p.source}: "
            f"{(exc.strerror or str(exc)).lower()}"
        ) from exc


def _missing_ancestors(path: str) -> list[str]:
    """PATH and each of its missing parents, outermost first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing[::-1]
