"""`pyrunc delete`: remove every trace of a container: processes, cgroups, state."""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import os
import time

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux import hooks, log
from runtime.linux.cgroups import load_manager


def delete(root: str, container_id: str, force: bool) -> None:
    try:
        cs = statemod.load(root, container_id)
    except PyruncError:
        # A create that died before writing state.json can leave the bare directory behind.
        statemod.validate_id(container_id)
        leftover = os.path.join(root, container_id)
        if os.path.isdir(leftover):
            statemod.remove_dir(root, container_id)
            return
        if force:
            return
        raise
    current = statemod.status(root, cs)
    if current in ("running", "paused") and not force:
        raise PyruncError(f"cannot delete container {container_id} that is not stopped: {current}")
    cgroups = load_manager(cs.cgroup)
    if current != "stopped":
        # A frozen task cannot die; kill everything, then thaw so SIGKILL is delivered.
        cgroups.kill_all(_signal.SIGKILL)
        if current == "paused":
            cgroups.thaw()
        _wait_gone(cs)
    cgroups.destroy()
    if cs.rootfs_mount:
        from runtime.linux.mounts import detach_if_ours

        detach_if_ours(cs.rootfs, cs.rootfs_mount)
    # The spec: a failed poststop hook is a warning, and the remaining hooks still run.
    for failure in hooks.run_all(cs.config.get("hooks"), "poststop", statemod.oci_state(root, cs, "stopped")):
        log.warning(failure)
    statemod.remove_dir(root, container_id)


def _wait_gone(cs: statemod.ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while statemod.init_alive(cs):
        if time.monotonic() > deadline:
            raise PyruncError(f"container {cs.id} init {cs.pid} did not die after SIGKILL")
        time.sleep(0.01)
