"""The `runc events --stats` data object, built from the cgroup files common/cgroups/stats.py reads.

runc encodes these with Go's encoding/json and `omitempty` on many fields, so zero counters vanish
from its output; these helpers reproduce exactly which keys appear (checked against runc 1.1).
Only `pyrunc events` needs this module, so the managers import it when stats() is called.
"""

from __future__ import annotations

from common.cgroups import stats as files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _nonzero(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v}


def memory_entry(limit: int = 0, usage: int = 0, max_usage: int = 0, failcnt: int = 0) -> dict[str, int]:
    entry = {"limit": limit}
    entry.update(_nonzero(usage=usage, max=max_usage))
    entry["failcnt"] = failcnt
    return entry


def cpu_usage(
    total: int = 0,
    percpu: list[int] | None = None,
    percpu_kernel: list[int] | None = None,
    percpu_user: list[int] | None = None,
    kernel: int = 0,
    user: int = 0,
) -> dict[str, Any]:
    usage = _nonzero(total=total, percpu=percpu, percpu_kernel=percpu_kernel, percpu_user=percpu_user)
    usage["kernel"] = kernel
    usage["user"] = user
    return usage


def throttling(periods: int = 0, throttled_periods: int = 0, throttled_time: int = 0) -> dict[str, int]:
    return _nonzero(periods=periods, throttledPeriods=throttled_periods, throttledTime=throttled_time)


def cpuset(cpus: list[int] | None = None, mems: list[int] | None = None, **flags: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cpus:
        out["cpus"] = cpus
    out["cpu_exclusive"] = flags.get("cpu_exclusive", 0)
    if mems:
        out["mems"] = mems
    for key in (
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    ):
        out[key] = flags.get(key, 0)
    return out


def memory(
    cache: int,
    usage: dict[str, int],
    swap: dict[str, int],
    kernel: dict[str, int],
    kernel_tcp: dict[str, int],
    raw: dict[str, int],
) -> dict[str, Any]:
    out: dict[str, Any] = _nonzero(cache=cache)
    out.update(usage=usage, swap=swap, kernel=kernel, kernelTCP=kernel_tcp)
    if raw:
        out["raw"] = raw
    return out


def blkio_entry(major: int, minor: int, op: str, value: int) -> dict[str, Any]:
    return _nonzero(major=major, minor=minor, op=op, value=value)


def hugetlb_entry(usage: int, max_usage: int, failcnt: int) -> dict[str, int]:
    entry = _nonzero(usage=usage, max=max_usage)
    entry["failcnt"] = failcnt
    return entry


def empty_stats() -> dict[str, Any]:
    empty_mem = memory_entry()
    return {
        "cpu": {"usage": cpu_usage(), "throttling": {}},
        "cpuset": cpuset(),
        "memory": memory(0, dict(empty_mem), dict(empty_mem), dict(empty_mem), dict(empty_mem), {}),
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


# ---- cgroup v1 --------------------------------------------------------------------------------

# The JSON key of each blkio statistic common/cgroups/stats.py names.
_BLKIO_KEYS = {
    "sectors_recursive": "sectorsRecursive",
    "io_service_time_recursive": "ioServiceTimeRecursive",
    "io_wait_time_recursive": "ioWaitTimeRecursive",
    "io_merged_recursive": "ioMergedRecursive",
    "io_queued_recursive": "ioQueueRecursive",
    "io_time_recursive": "ioTimeRecursive",
    "io_serviced_recursive": "ioServicedRecursive",
    "io_service_bytes_recursive": "ioServiceBytesRecursive",
}


def v1_stats(paths: dict[str, str]) -> dict[str, Any]:
    """The stats of a v1 manager: paths maps each controller to its directory."""
    out = empty_stats()
    if "cpu" in paths or "cpuacct" in paths:
        out["cpu"] = _v1_cpu(paths)
    if "cpuset" in paths:
        cpus, mems, flags = files.v1_cpuset(paths["cpuset"])
        out["cpuset"] = cpuset(cpus, mems, **flags)
    if "memory" in paths:
        out["memory"] = _v1_memory(paths["memory"])
    if "pids" in paths:
        current, limit = files.v1_pids(paths["pids"])
        out["pids"] = _nonzero(current=current, limit=limit)
    if "blkio" in paths:
        out["blkio"] = {
            _BLKIO_KEYS[name]: [blkio_entry(*entry) for entry in entries]
            for name, entries in files.v1_blkio(paths["blkio"]).items()
        }
    if "hugetlb" in paths:
        out["hugetlb"] = {
            size: hugetlb_entry(*values) for size, values in files.v1_hugetlb(paths["hugetlb"]).items()
        }
    return out


def _v1_cpu(paths: dict[str, str]) -> dict[str, Any]:
    usage = cpu_usage()
    acct = paths.get("cpuacct")
    if acct is not None:
        a = files.v1_cpuacct(acct)
        usage = cpu_usage(a.total, a.percpu, a.percpu_kernel, a.percpu_user, a.kernel, a.user)
    throttle: dict[str, int] = {}
    cpu = paths.get("cpu")
    if cpu is not None:
        s = files.v1_cpu_stat(cpu)
        throttle = throttling(s.get("nr_periods", 0), s.get("nr_throttled", 0), s.get("throttled_time", 0))
    return {"usage": usage, "throttling": throttle}


def _v1_memory(d: str) -> dict[str, Any]:
    raw = files.v1_memory_stat(d)

    def entry(prefix: str) -> dict[str, int]:
        e = files.v1_memory_entry(d, prefix)
        return memory_entry() if e is None else memory_entry(e["limit"], e["usage"], e["max"], e["failcnt"])

    return memory(
        cache=raw.get("cache", 0),
        usage=entry("memory."),
        swap=entry("memory.memsw."),
        kernel=entry("memory.kmem."),
        kernel_tcp=entry("memory.kmem.tcp."),
        raw=raw,
    )


# ---- cgroup v2 --------------------------------------------------------------------------------


def v2_stats(d: str) -> dict[str, Any]:
    """The stats of the v2 cgroup at directory d."""
    out = empty_stats()
    current, limit = files.v2_pids(d)
    out["pids"] = _nonzero(current=current, limit=0 if limit == files.UNLIMITED else limit)
    out["cpu"] = _v2_cpu(d)
    cs = files.v2_cpuset(d)
    if cs is not None:
        out["cpuset"] = cpuset(*cs)
    mem = files.v2_memory(d)
    if mem is not None:
        out["memory"] = _v2_memory(mem)
    out["blkio"] = _v2_io(d)
    out["hugetlb"] = {
        size: hugetlb_entry(current, 0, events_max)
        for size, (current, _max, events_max) in files.v2_hugetlb(d).items()
    }
    return out


def _v2_cpu(d: str) -> dict[str, Any]:
    s = files.v2_cpu_stat(d)
    return {
        "usage": cpu_usage(
            total=s.get("usage_usec", 0) * 1000,
            kernel=s.get("system_usec", 0) * 1000,
            user=s.get("user_usec", 0) * 1000,
        ),
        "throttling": throttling(
            s.get("nr_periods", 0), s.get("nr_throttled", 0), s.get("throttled_usec", 0) * 1000
        ),
    }


def _v2_memory(m: files.V2Memory) -> dict[str, Any]:
    # v1 reported swap as memory+swap; keep that meaning so consumers need not care.
    swap_usage = m.swap_current + m.current
    swap_limit = 0 if m.swap_max is None else m.swap_max
    if swap_limit != files.UNLIMITED:
        swap_limit += m.max
    return memory(
        cache=m.stat.get("file", 0),
        usage=memory_entry(m.max, m.current, m.peak, m.events.get("max", 0)),
        swap=memory_entry(swap_limit, swap_usage),
        kernel=memory_entry(),
        kernel_tcp=memory_entry(),
        raw=m.stat,
    )


_V2_IO_KEYS = {
    "rbytes": ("ioServiceBytesRecursive", "Read"),
    "wbytes": ("ioServiceBytesRecursive", "Write"),
    "rios": ("ioServicedRecursive", "Read"),
    "wios": ("ioServicedRecursive", "Write"),
}


def _v2_io(d: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for major, minor, values in files.v2_io_stat(d):
        for key, value in values.items():
            if key in _V2_IO_KEYS:
                name, op = _V2_IO_KEYS[key]
                out.setdefault(name, []).append(blkio_entry(major, minor, op, value))
    return {name: out[name] for name in ("ioServiceBytesRecursive", "ioServicedRecursive") if name in out}
