"""`pyrunc kill`: signal the init, or with --all every process in the container's cgroup."""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import os

from common.procfs import process_start_time
from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux.cgroups import load_manager


def kill(root: str, container_id: str, sig: int, all_processes: bool) -> None:
    cs = statemod.load(root, container_id)
    if statemod.status(root, cs) == "stopped":
        raise PyruncError("container not running")
    if all_processes:
        load_manager(cs.cgroup).kill_all(sig)
        return
    # A pidfd pins the process we checked, so a recycled pid never gets the signal.
    try:
        pidfd = os.pidfd_open(cs.pid)
    except OSError:
        raise PyruncError("container not running") from None
    try:
        if process_start_time(cs.pid) != cs.pid_start:
            raise PyruncError("container not running")
        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise PyruncError("container not running") from None
    finally:
        os.close(pidfd)
