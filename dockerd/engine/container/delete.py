"""DELETE /containers/{id}: a container and everything of it (task, snapshot, containerd
record, FIFOs, shm, its directory)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from containerd.client import ContainerdError
from dockerd.engine import sharing
from dockerd.engine.container import start, task
from dockerd.engine.errors import Conflict
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def remove(d: Containers, ref: str, force: bool, volumes: bool) -> None:
    """DELETE /containers/{id}: a running one only with FORCE (killed first); its task,
    snapshot, containerd record, FIFOs and directory go."""
    c = d.get(ref)
    if c.state.get("Restarting") and not c.running():
        if not force:
            raise Conflict(
                f"You cannot remove a restarting container {c.id}. Stop the container before attempting removal or force remove"
            )
        with d.store.lock:
            c.manually_stopped = True  # cancels the pending restart
    d.store.wait_until(lambda: c.id not in d.store.restarting_now, 60)
    if c.running():
        if not force:
            raise Conflict(
                f"You cannot remove a running container {c.id}. Stop the container before attempting removal or force remove"
            )
        c.manually_stopped = True
        task.kill_quietly(d.client, c.id, 9, all=True)
        d.store.wait_until(lambda: not c.running(), 30)
    start.released(d, c)
    with d.store.lock:
        if c.removal_in_progress:
            return
        c.removal_in_progress = True
    d.health.removed(c.id)
    if c.id not in d.store.tasks_deleted:  # (the exit's handling deleted it: no round trip for nothing)
        task.delete_quietly(d.client, c.id)
    for copier in d.stdio.take_copiers(c.id) or []:
        copier.stop()
    d.stdio.close_log(c)
    try:
        with d.rootfs_guard.hold(c.id):  # not under a cp that has it mounted
            d.client.snapshots("overlayfs").remove(c.id)
    except ContainerdError:
        pass
    try:
        d.client.containers.delete(c.id)
    except ContainerdError:
        pass
    d.stdio.remove_fifos(c.id)
    d.networking.release(c.id)
    sharing.unmount_shm(d.store.dir(c.id))
    lifecycle.remove(d, c, anonymous=volumes)  # references released; rm -v: its anonymous volumes
    shutil.rmtree(d.store.dir(c.id), ignore_errors=True)
    d.store.forget(c.id)
    d.publish("container", "destroy", c.id, {"name": c.name, "image": c.image_ref})
