"""Cgroup v1 statistics as containerd's io.containerd.cgroups.v1.Metrics (a dict for shim/messages.py).

Filled: pids, cpu (usage with per-cpu, throttling), memory (memory.stat, usage, swap,
kernel, kernel_tcp), blkio (the *_recursive files) and memory_oom_control. Left empty:
hugetlb (on this host it lives in the cgroup2 hierarchy), rdma, network, cgroup_stats.
A host with only cgroup v2 has no v1 statistics: StatsError says so.
"""

from __future__ import annotations

import os

from shim.messages import MEMORY_FIELD_OF

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_USER_HZ = 100  # cpuacct.stat counts in USER_HZ ticks, fixed at 100 on Linux


class StatsError(Exception):
    """The task's cgroups cannot be read."""


def _cgroup_mounts() -> dict[str, tuple[str, str]]:
    """controller -> (mount point, root) for every cgroup v1 hierarchy mounted here."""
    found: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(tail) < 3 or tail[0] != "cgroup":
                continue
            for option in tail[2].split(","):
                if option.startswith("name="):
                    option = option[5:]
                found.setdefault(option, (fields[4], fields[3]))
    return found


def cgroup_dirs(pid: int) -> dict[str, str]:
    """controller -> directory of PID's cgroup, from /proc/PID/cgroup (v1 hierarchies only)."""
    mounts = _cgroup_mounts()
    dirs: dict[str, str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(","):
                if controller.startswith("name="):
                    controller = controller[5:]
                if controller in mounts:
                    mountpoint, root = mounts[controller]
                    rel = path[len(root) :] if root != "/" and path.startswith(root) else path
                    dirs[controller] = mountpoint + rel.rstrip("/")
    return dirs


def _read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name)) as f:
        return f.read()


def _number(directory: str, name: str) -> int:
    try:
        text = _read(directory, name).strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def _pairs(text: str) -> dict[str, int]:
    result = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            result[key] = int(value)
    return result


def _entry(directory: str, prefix: str) -> dict[str, int] | None:
    if not os.path.exists(os.path.join(directory, prefix + "usage_in_bytes")):
        return None
    return {
        "limit": _number(directory, prefix + "limit_in_bytes"),
        "usage": _number(directory, prefix + "usage_in_bytes"),
        "max": _number(directory, prefix + "max_usage_in_bytes"),
        "failcnt": _number(directory, prefix + "failcnt"),
    }


def _memory(directory: str) -> tuple[dict[str, Any], dict[str, int]]:
    stat = _pairs(_read(directory, "memory.stat"))
    memory: dict[str, Any] = {}
    for key, value in stat.items():
        total = key.startswith("total_")
        field = MEMORY_FIELD_OF.get(key[6:] if total else key)
        if field:
            memory[("total_" if total else "") + field] = value
    for name, prefix in (("usage", "memory."), ("swap", "memory.memsw."), ("kernel", "memory.kmem."), ("kernel_tcp", "memory.kmem.tcp.")):
        entry = _entry(directory, prefix)
        if entry is not None:
            memory[name] = entry
    oom = _pairs(_read(directory, "memory.oom_control"))
    oom_control = {k: oom.get(k, 0) for k in ("oom_kill_disable", "under_oom", "oom_kill")}
    return memory, oom_control


def _cpu(cpuacct: str | None, cpu: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if cpuacct:
        ticks = _pairs(_read(cpuacct, "cpuacct.stat"))
        result["usage"] = {
            "total": _number(cpuacct, "cpuacct.usage"),
            "user": ticks.get("user", 0) * 1_000_000_000 // _USER_HZ,
            "kernel": ticks.get("system", 0) * 1_000_000_000 // _USER_HZ,
            "per_cpu": [int(v) for v in _read(cpuacct, "cpuacct.usage_percpu").split()],
        }
    if cpu:
        stat = _pairs(_read(cpu, "cpu.stat"))
        result["throttling"] = {
            "periods": stat.get("nr_periods", 0),
            "throttled_periods": stat.get("nr_throttled", 0),
            "throttled_time": stat.get("throttled_time", 0),
        }
    return result


def _blkio(directory: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field, name in (
        ("io_service_bytes_recursive", "io_service_bytes_recursive"),
        ("io_serviced_recursive", "io_serviced_recursive"),
        ("io_queued_recursive", "io_queued_recursive"),
        ("io_service_time_recursive", "io_service_time_recursive"),
        ("io_wait_time_recursive", "io_wait_time_recursive"),
        ("io_merged_recursive", "io_merged_recursive"),
        ("io_time_recursive", "time_recursive"),
        ("sectors_recursive", "sectors_recursive"),
    ):
        entries = []
        path = "blkio." + name
        if not os.path.exists(os.path.join(directory, path)):
            path = "blkio.throttle." + name  # kernels without CFQ/BFQ only keep the throttle files
        try:
            text = _read(directory, path)
        except OSError:
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0] and parts[2].isdigit():
                major, _, minor = parts[0].partition(":")
                entries.append({"op": parts[1], "major": int(major), "minor": int(minor), "value": int(parts[2])})
            elif len(parts) == 2 and ":" in parts[0] and parts[1].isdigit():
                major, _, minor = parts[0].partition(":")
                entries.append({"major": int(major), "minor": int(minor), "value": int(parts[1])})
        if entries:
            result[field] = entries
    return result


def metrics_v1(dirs: dict[str, str]) -> dict[str, Any]:
    if not dirs:
        raise StatsError("no cgroup v1 hierarchy holds the task (cgroup v2 statistics are not supported)")
    memory_dir = dirs.get("memory")
    if memory_dir and not os.path.isdir(memory_dir):
        raise StatsError(f"its cgroup {memory_dir} is gone")
    try:
        metrics: dict[str, Any] = {}
        if "pids" in dirs:
            limit = _read(dirs["pids"], "pids.max").strip()
            metrics["pids"] = {
                "current": _number(dirs["pids"], "pids.current"),
                "limit": int(limit) if limit.isdigit() else 0,
            }
        cpu = _cpu(dirs.get("cpuacct"), dirs.get("cpu"))
        if cpu:
            metrics["cpu"] = cpu
        if memory_dir:
            metrics["memory"], metrics["memory_oom_control"] = _memory(memory_dir)
        if "blkio" in dirs:
            metrics["blkio"] = _blkio(dirs["blkio"])
    except OSError as exc:
        raise StatsError(str(exc)) from None
    return metrics
