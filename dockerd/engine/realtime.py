"""Real-time CPU bandwidth (cgroup v1 cpu.rt_period_us / cpu.rt_runtime_us), as dockerd does it.

A container's HostConfig.CpuRealtimeRuntime goes into its spec (the runtime writes it). The
kernel only grants a cgroup real-time time its parent has, and a new cgroup gets none, so the
daemon's --cpu-rt-period/--cpu-rt-runtime are written into every ancestor of the containers'
cgroup (from the top down) before each start; without them a container asking for real-time
time fails to start, as under dockerd.
"""

from __future__ import annotations

import os

from dockerd.engine.errors import EngineError

RUNTIME_FILE = "cpu.rt_runtime_us"
PERIOD_FILE = "cpu.rt_period_us"


def cpu_hierarchy() -> str | None:
    """Where the v1 cpu controller is mounted, as seen from its root (None: no v1 cpu controller)."""
    from common.cgroups.layout import current_layout

    for mount in current_layout().v1:
        if "cpu" in mount.controllers:
            return mount.mountpoint
    return None


def supported() -> bool:
    """Whether the kernel has real-time group scheduling (dockerd's sysInfo.CPURealtime)."""
    mountpoint = cpu_hierarchy()
    return mountpoint is not None and os.path.exists(os.path.join(mountpoint, RUNTIME_FILE))


def init_parents(cgroup_parent: str, period: int, runtime: int) -> None:
    """Give every ancestor of the containers' cgroups the daemon's period and runtime."""
    mountpoint = cpu_hierarchy()
    if mountpoint is None or not supported():
        raise EngineError("unable to init CPU RT controller: the kernel has no cgroup cpu real-time support")
    path = mountpoint
    for part in [p for p in os.path.normpath("/" + cgroup_parent).split("/") if p]:
        path = os.path.join(path, part)
        os.makedirs(path, mode=0o755, exist_ok=True)
        for name, value in ((PERIOD_FILE, period), (RUNTIME_FILE, runtime)):
            if value:
                _write(os.path.join(path, name), value)


def _write(path: str, value: int) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise EngineError(f"unable to init CPU RT controller: write {path}: {exc.strerror}") from None
