"""Builders for the `runc events --stats` data object.

runc encodes these with Go's encoding/json and `omitempty` on many fields, so zero counters vanish
from its output; these helpers reproduce exactly which keys appear (checked against runc 1.1).
"""

from __future__ import annotations

import os
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


def hugepage_sizes() -> list[str]:
    """Page sizes in the kernel's cgroup file naming ('2MB', '1GB', '64KB')."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    sizes = []
    for name in sorted(names):
        if name.startswith("hugepages-") and name.endswith("kB"):
            sizes.append(format_page_size(int(name[len("hugepages-") : -2]) * 1024))
    return sizes


def format_page_size(size: int) -> str:
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    value = float(size)
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{value:g}{units[i]}"
