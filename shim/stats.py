"""A task's cgroup statistics as containerd's Metrics (dicts for shim/messages.py).

The task's cgroups are found as pyrunc made them (common/cgroups/layout.py): cgroup v2 on a
unified host, v1 hierarchies otherwise (hybrid included). Their files are read by
common/cgroups/stats.py, the reader pyrunc's `events --stats` uses too; this module only lays
the values out in containerd's messages:

- v1: io.containerd.cgroups.v1.Metrics with pids, cpu (usage with per-cpu, throttling), memory
  (memory.stat, usage, swap, kernel, kernel_tcp), blkio and memory_oom_control;
- v2: io.containerd.cgroups.v2.Metrics with pids, cpu, memory, io, hugetlb and memory_events
  (what the controllers enabled for the cgroup provide: the core files give pids and cpu usage).

rdma, network and v1's hugetlb and cgroup_stats stay empty.
"""

from __future__ import annotations

from common.cgroups import CgroupError
from common.cgroups import stats as files
from common.cgroups.layout import ProcessCgroups, process_cgroups
from shim import messages as m

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"
_READ = {1: ("pids", "cpu", "cpuacct", "memory", "blkio"), 2: ("",)}  # the hierarchies read


class StatsError(Exception):
    """The task's cgroups cannot be read."""


def locate(pid: int) -> ProcessCgroups:
    """The cgroups of the task's init PID."""
    try:
        return process_cgroups(pid)
    except CgroupError as exc:
        raise StatsError(str(exc)) from None


def metrics(cgroups: ProcessCgroups) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """(type URL, schema, message) of the statistics of CGROUPS, ready for an Any."""
    import os

    read = [cgroups.paths[c] for c in _READ[cgroups.version] if c in cgroups.paths]
    gone = [d for d in read if not os.path.isdir(d)]
    if gone:
        raise StatsError(f"its cgroup {gone[0]} is gone")
    try:
        if cgroups.version == 2:
            return V2_TYPE, m.METRICS_V2, metrics_v2(cgroups.paths[""])
        return V1_TYPE, m.METRICS_V1, metrics_v1(cgroups.paths)
    except (CgroupError, ValueError) as exc:
        raise StatsError(str(exc)) from None


# ---- v1 ---------------------------------------------------------------------------------------

_MEMORY_ENTRIES = (
    ("usage", "memory."),
    ("swap", "memory.memsw."),
    ("kernel", "memory.kmem."),
    ("kernel_tcp", "memory.kmem.tcp."),
)


def metrics_v1(dirs: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "pids" in dirs:
        current, limit = files.v1_pids(dirs["pids"])
        out["pids"] = {"current": current, "limit": limit}
    cpu: dict[str, Any] = {}
    if "cpuacct" in dirs:
        a = files.v1_cpuacct(dirs["cpuacct"])
        cpu["usage"] = {"total": a.total, "user": a.user, "kernel": a.kernel, "per_cpu": a.percpu}
    if "cpu" in dirs:
        s = files.v1_cpu_stat(dirs["cpu"])
        cpu["throttling"] = {
            "periods": s.get("nr_periods", 0),
            "throttled_periods": s.get("nr_throttled", 0),
            "throttled_time": s.get("throttled_time", 0),
        }
    if cpu:
        out["cpu"] = cpu
    if "memory" in dirs:
        d = dirs["memory"]
        memory: dict[str, Any] = {}
        for key, value in files.v1_memory_stat(d).items():
            total = key.startswith("total_")
            field = m.MEMORY_FIELD_OF.get(key[6:] if total else key)
            if field:
                memory[("total_" if total else "") + field] = value
        for name, prefix in _MEMORY_ENTRIES:
            entry = files.v1_memory_entry(d, prefix)
            if entry is not None:
                memory[name] = entry
        out["memory"] = memory
        oom = files.v1_oom_control(d)
        out["memory_oom_control"] = {k: oom.get(k, 0) for k in ("oom_kill_disable", "under_oom", "oom_kill")}
    if "blkio" in dirs:
        out["blkio"] = {
            name: [{"major": ma, "minor": mi, "op": op, "value": value} for ma, mi, op, value in entries]
            for name, entries in files.v1_blkio(dirs["blkio"]).items()
        }
    return out


# ---- v2 ---------------------------------------------------------------------------------------


def metrics_v2(d: str) -> dict[str, Any]:
    current, limit = files.v2_pids(d)
    cpu = files.v2_cpu_stat(d)
    out: dict[str, Any] = {
        "pids": {"current": current, "limit": limit},
        "cpu": {name: cpu.get(name, 0) for _, name, _ in m.CPU_STAT_V2},
    }
    mem = files.v2_memory(d)
    if mem is not None:
        memory = {key: mem.stat.get(key, 0) for key in m.MEMORY_STAT_V2_KEYS}
        memory.update(
            usage=mem.current,
            usage_limit=mem.max,
            swap_usage=mem.swap_current,
            swap_limit=mem.swap_max or 0,
            max_usage=mem.peak,
            swap_max_usage=mem.swap_peak,
        )
        out["memory"] = memory
        out["memory_events"] = {name: mem.events.get(name, 0) for _, name, _ in m.MEMORY_EVENTS}
    io = files.v2_io_stat(d)
    if io:
        out["io"] = {
            "usage": [
                {
                    "major": major,
                    "minor": minor,
                    **{k: values.get(k, 0) for k in ("rbytes", "wbytes", "rios", "wios")},
                }
                for major, minor, values in io
            ]
        }
    hugetlb = files.v2_hugetlb(d)
    if hugetlb:
        out["hugetlb"] = [
            {"current": current, "max": limit, "pagesize": size}
            for size, (current, limit, _events) in hugetlb.items()
        ]
    return out
