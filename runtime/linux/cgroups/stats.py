"""The `runc events --stats` data object: reading it from v1 or v2 cgroup files, and building it.

runc encodes these with Go's encoding/json and `omitempty` on many fields, so zero counters vanish
from its output; these helpers reproduce exactly which keys appear (checked against runc 1.1).
Only `pyrunc events` needs this module, so the managers import it when stats() is called.
"""

from __future__ import annotations

import os

from .common import parse_cpu_list, parse_flat_keyed, parse_uint, read_optional, read_procs, read_uint

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


# ---- cgroup v1 --------------------------------------------------------------------------------

# blkio statistics: runc reads the first group whose first file has data (BFQ debug, BFQ, CFQ,
# recursive throttle, plain throttle); each entry is (file suffix, JSON key).
_BLKIO_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "blkio.bfq.",
        (
            ("sectors_recursive", "sectorsRecursive"),
            ("io_service_time_recursive", "ioServiceTimeRecursive"),
            ("io_wait_time_recursive", "ioWaitTimeRecursive"),
            ("io_merged_recursive", "ioMergedRecursive"),
            ("io_queued_recursive", "ioQueueRecursive"),
            ("time_recursive", "ioTimeRecursive"),
            ("io_serviced_recursive", "ioServicedRecursive"),
            ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
        ),
    ),
    (
        "blkio.bfq.",
        (
            ("io_serviced_recursive", "ioServicedRecursive"),
            ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
        ),
    ),
    (
        "blkio.",
        (
            ("sectors_recursive", "sectorsRecursive"),
            ("io_service_time_recursive", "ioServiceTimeRecursive"),
            ("io_wait_time_recursive", "ioWaitTimeRecursive"),
            ("io_merged_recursive", "ioMergedRecursive"),
            ("io_queued_recursive", "ioQueueRecursive"),
            ("time_recursive", "ioTimeRecursive"),
            ("io_serviced_recursive", "ioServicedRecursive"),
            ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
        ),
    ),
    (
        "blkio.throttle.",
        (
            ("io_serviced_recursive", "ioServicedRecursive"),
            ("io_service_bytes_recursive", "ioServiceBytesRecursive"),
        ),
    ),
    (
        "blkio.throttle.",
        (
            ("io_serviced", "ioServicedRecursive"),
            ("io_service_bytes", "ioServiceBytesRecursive"),
        ),
    ),
)


def v1_stats(paths: dict[str, str]) -> dict[str, Any]:
    """The stats of a v1 manager: paths maps each controller to its directory."""
    out = empty_stats()
    if "cpu" in paths or "cpuacct" in paths:
        out["cpu"] = _v1_cpu(paths)
    if "cpuset" in paths:
        out["cpuset"] = _v1_cpuset(paths["cpuset"])
    if "memory" in paths:
        out["memory"] = _v1_memory(paths["memory"])
    if "pids" in paths:
        d = paths["pids"]
        limit_text = (read_optional(d, "pids.max") or "max").strip()
        limit = 0 if limit_text == "max" else int(limit_text)
        out["pids"] = {k: v for k, v in (("current", read_uint(d, "pids.current")), ("limit", limit)) if v}
    if "blkio" in paths:
        out["blkio"] = _v1_blkio(paths["blkio"])
    if "hugetlb" in paths:
        out["hugetlb"] = _v1_hugetlb(paths["hugetlb"])
    return out


def _v1_cpu(paths: dict[str, str]) -> dict[str, Any]:
    usage = cpu_usage()
    acct = paths.get("cpuacct")
    if acct is not None:
        percpu_user: list[int] = []
        percpu_kernel: list[int] = []
        for line in (read_optional(acct, "cpuacct.usage_all") or "").splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                percpu_user.append(int(parts[1]))
                percpu_kernel.append(int(parts[2]))
        ticks = parse_flat_keyed(read_optional(acct, "cpuacct.stat") or "")
        # cpuacct.stat counts in USER_HZ ticks; runc reports nanoseconds.
        ns_per_tick = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
        usage = cpu_usage(
            total=read_uint(acct, "cpuacct.usage"),
            percpu=[int(x) for x in (read_optional(acct, "cpuacct.usage_percpu") or "").split()],
            percpu_kernel=percpu_kernel,
            percpu_user=percpu_user,
            kernel=ticks.get("system", 0) * ns_per_tick,
            user=ticks.get("user", 0) * ns_per_tick,
        )
    throttle: dict[str, int] = {}
    cpu = paths.get("cpu")
    if cpu is not None:
        s = parse_flat_keyed(read_optional(cpu, "cpu.stat") or "")
        throttle = throttling(s.get("nr_periods", 0), s.get("nr_throttled", 0), s.get("throttled_time", 0))
    return {"usage": usage, "throttling": throttle}


def _v1_cpuset(d: str) -> dict[str, Any]:
    flags = {}
    for key in (
        "cpu_exclusive",
        "mem_hardwall",
        "mem_exclusive",
        "memory_migrate",
        "memory_spread_page",
        "memory_spread_slab",
        "memory_pressure",
        "sched_load_balance",
        "sched_relax_domain_level",
    ):
        text = read_optional(d, f"cpuset.{key}")
        flags[key] = int(text.strip()) if text and text.strip() else 0
    return cpuset(
        parse_cpu_list(read_optional(d, "cpuset.cpus") or ""),
        parse_cpu_list(read_optional(d, "cpuset.mems") or ""),
        **flags,
    )


def _v1_memory_entry(d: str, prefix: str) -> dict[str, int]:
    def value(name: str) -> int:
        text = read_optional(d, f"{prefix}{name}")
        return parse_uint(text.strip()) if text and text.strip() else 0

    return memory_entry(
        limit=value("limit_in_bytes"),
        usage=value("usage_in_bytes"),
        max_usage=value("max_usage_in_bytes"),
        failcnt=value("failcnt"),
    )


def _v1_memory(d: str) -> dict[str, Any]:
    raw = parse_flat_keyed(read_optional(d, "memory.stat") or "")
    return memory(
        cache=raw.get("cache", 0),
        usage=_v1_memory_entry(d, "memory."),
        swap=_v1_memory_entry(d, "memory.memsw."),
        kernel=_v1_memory_entry(d, "memory.kmem."),
        kernel_tcp=_v1_memory_entry(d, "memory.kmem.tcp."),
        raw=raw,
    )


def _v1_blkio_file(d: str, name: str) -> list[dict[str, Any]] | None:
    text = read_optional(d, name)
    if not text:
        return None
    entries = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue  # the "Total N" line
        op = fields[2] if len(fields) == 4 else ""
        entries.append(blkio_entry(int(fields[0]), int(fields[1]), op, int(fields[-1])))
    return entries or None


def _v1_blkio(d: str) -> dict[str, Any]:
    for prefix, files in _BLKIO_GROUPS:
        out: dict[str, Any] = {}
        for i, (suffix, key) in enumerate(files):
            entries = _v1_blkio_file(d, prefix + suffix)
            if entries is None:
                if i == 0:
                    break  # this kind of statistics is not available: try the next group
                return out
            out[key] = entries
        else:
            return out
    return {}


def _v1_hugetlb(d: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}."
        if read_optional(d, prefix + "usage_in_bytes") is None:
            continue
        out[size] = hugetlb_entry(
            read_uint(d, prefix + "usage_in_bytes"),
            read_uint(d, prefix + "max_usage_in_bytes"),
            read_uint(d, prefix + "failcnt"),
        )
    return out


# ---- cgroup v2 --------------------------------------------------------------------------------


def v2_stats(d: str) -> dict[str, Any]:
    """The stats of the v2 cgroup at directory d."""
    out = empty_stats()
    out["pids"] = _v2_pids(d)
    out["cpu"] = _v2_cpu(d)
    cpus = read_optional(d, "cpuset.cpus.effective")
    mems = read_optional(d, "cpuset.mems.effective")
    if cpus is not None or mems is not None:
        out["cpuset"] = cpuset(parse_cpu_list(cpus or ""), parse_cpu_list(mems or ""))
    mem = _v2_memory(d)
    if mem is not None:
        out["memory"] = mem
    out["blkio"] = _v2_io(d)
    out["hugetlb"] = _v2_hugetlb(d)
    return out


def _v2_pids(d: str) -> dict[str, int]:
    current_text = read_optional(d, "pids.current")
    if current_text is None:
        # No pids controller: count what cgroup.procs lists, as runc does.
        current = sum(len(read_procs(x)) for x, _, _ in os.walk(d))
        return {"current": current} if current else {}
    limit_text = (read_optional(d, "pids.max") or "max").strip()
    limit = 0 if limit_text == "max" else int(limit_text)
    return {k: v for k, v in (("current", int(current_text)), ("limit", limit)) if v}


def _v2_cpu(d: str) -> dict[str, Any]:
    s = parse_flat_keyed(read_optional(d, "cpu.stat") or "")
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


def _v2_memory(d: str) -> dict[str, Any] | None:
    stat_text = read_optional(d, "memory.stat")
    current_text = read_optional(d, "memory.current")
    if stat_text is None or current_text is None:
        return None
    raw = parse_flat_keyed(stat_text)
    usage = parse_uint(current_text.strip())
    limit = parse_uint((read_optional(d, "memory.max") or "max").strip())
    peak = parse_uint((read_optional(d, "memory.peak") or "0").strip())
    events = parse_flat_keyed(read_optional(d, "memory.events") or "")
    swap_usage = parse_uint((read_optional(d, "memory.swap.current") or "0").strip())
    swap_limit_text = read_optional(d, "memory.swap.max")
    swap_limit = parse_uint(swap_limit_text.strip()) if swap_limit_text is not None else 0
    # v1 reported swap as memory+swap; keep that meaning so consumers need not care.
    swap_usage += usage
    if swap_limit != 2**64 - 1:
        swap_limit += limit
    return memory(
        cache=raw.get("file", 0),
        usage=memory_entry(limit, usage, peak, events.get("max", 0)),
        swap=memory_entry(swap_limit, swap_usage),
        kernel=memory_entry(),
        kernel_tcp=memory_entry(),
        raw=raw,
    )


def _v2_io(d: str) -> dict[str, Any]:
    text = read_optional(d, "io.stat")
    if not text:
        return {}
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":", 1))
        for item in parts[1:]:
            key, _, value = item.partition("=")
            target = {
                "rbytes": (service_bytes, "Read"),
                "wbytes": (service_bytes, "Write"),
                "rios": (serviced, "Read"),
                "wios": (serviced, "Write"),
            }.get(key)
            if target is not None:
                target[0].append(blkio_entry(major, minor, target[1], int(value)))
    out: dict[str, Any] = {}
    if service_bytes:
        out["ioServiceBytesRecursive"] = service_bytes
    if serviced:
        out["ioServicedRecursive"] = serviced
    return out


def _v2_hugetlb(d: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in hugepage_sizes():
        current = read_optional(d, f"hugetlb.{size}.current")
        if current is None:
            continue
        events = parse_flat_keyed(read_optional(d, f"hugetlb.{size}.events") or "")
        out[size] = hugetlb_entry(int(current), 0, events.get("max", 0))
    return out
