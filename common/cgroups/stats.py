"""A cgroup's statistics files, read and parsed once: cgroup v1 (per controller directory) and v2
(one directory). Values are the kernel's, in the kernel's units and names; each consumer builds
its own format from them: pyrunc runc's `events --stats` JSON (runtime/linux/cgroups/stats.py),
the shim containerd's io.containerd.cgroups.v1/v2 Metrics (shim/stats.py).

A file the kernel does not provide (a controller not enabled, a feature compiled out) reads as
missing (None, 0 or empty), never as an error; other read failures raise CgroupError.
"""

from __future__ import annotations

import os

from common.cgroups import (
    parse_cpu_list,
    parse_flat_keyed,
    parse_uint,
    read_optional,
    read_procs,
    read_uint,
)

UNLIMITED = 2**64 - 1  # what parse_uint makes of "max" (and v1's -1)


def _uint_or(directory: str, name: str, default: int) -> int:
    text = read_optional(directory, name)
    return parse_uint(text.strip()) if text and text.strip() else default


def _limit(directory: str, name: str) -> int:
    """A pids-style limit: the number, or 0 for "max" (unlimited), as runc and containerd report it."""
    text = (read_optional(directory, name) or "max").strip()
    return 0 if text == "max" else int(text)


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


def v1_pids(d: str) -> tuple[int, int]:
    """(pids.current, pids.max or 0 when unlimited) of a pids controller directory."""
    return read_uint(d, "pids.current"), _limit(d, "pids.max")


class CpuAcct:
    """cpuacct's counters, in nanoseconds."""

    __slots__ = ("total", "percpu", "percpu_user", "percpu_kernel", "user", "kernel")

    def __init__(
        self,
        total: int,
        percpu: list[int],
        percpu_user: list[int],
        percpu_kernel: list[int],
        user: int,
        kernel: int,
    ) -> None:
        self.total = total
        self.percpu = percpu
        self.percpu_user = percpu_user
        self.percpu_kernel = percpu_kernel
        self.user = user
        self.kernel = kernel


def v1_cpuacct(d: str) -> CpuAcct:
    percpu_user: list[int] = []
    percpu_kernel: list[int] = []
    for line in (read_optional(d, "cpuacct.usage_all") or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            percpu_user.append(int(parts[1]))
            percpu_kernel.append(int(parts[2]))
    ticks = parse_flat_keyed(read_optional(d, "cpuacct.stat") or "")
    # cpuacct.stat counts in USER_HZ ticks.
    ns_per_tick = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
    return CpuAcct(
        total=read_uint(d, "cpuacct.usage"),
        percpu=[int(x) for x in (read_optional(d, "cpuacct.usage_percpu") or "").split()],
        percpu_user=percpu_user,
        percpu_kernel=percpu_kernel,
        user=ticks.get("user", 0) * ns_per_tick,
        kernel=ticks.get("system", 0) * ns_per_tick,
    )


def v1_cpu_stat(d: str) -> dict[str, int]:
    """cpu.stat of the cpu controller: nr_periods, nr_throttled, throttled_time (ns)."""
    return parse_flat_keyed(read_optional(d, "cpu.stat") or "")


V1_CPUSET_FLAGS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
    "sched_relax_domain_level",
)


def v1_cpuset(d: str) -> tuple[list[int], list[int], dict[str, int]]:
    """(cpus, mems, the flag files by name) of a cpuset directory."""
    flags = {}
    for key in V1_CPUSET_FLAGS:
        text = read_optional(d, f"cpuset.{key}")
        flags[key] = int(text.strip()) if text and text.strip() else 0
    cpus = parse_cpu_list(read_optional(d, "cpuset.cpus") or "")
    mems = parse_cpu_list(read_optional(d, "cpuset.mems") or "")
    return cpus, mems, flags


def v1_memory_stat(d: str) -> dict[str, int]:
    """memory.stat, every key as the kernel names it (cache, rss, ..., total_cache, ...)."""
    return parse_flat_keyed(read_optional(d, "memory.stat") or "")


def v1_memory_entry(d: str, prefix: str) -> dict[str, int] | None:
    """{limit, usage, max, failcnt} of the PREFIX* files ("memory.", "memory.memsw.", "memory.kmem.",
    "memory.kmem.tcp."), or None where the kernel has no PREFIXusage_in_bytes (no swap accounting)."""
    if read_optional(d, prefix + "usage_in_bytes") is None:
        return None
    return {
        "limit": _uint_or(d, prefix + "limit_in_bytes", 0),
        "usage": _uint_or(d, prefix + "usage_in_bytes", 0),
        "max": _uint_or(d, prefix + "max_usage_in_bytes", 0),
        "failcnt": _uint_or(d, prefix + "failcnt", 0),
    }


def v1_oom_control(d: str) -> dict[str, int]:
    """memory.oom_control: oom_kill_disable, under_oom and (kernels >= 4.13) oom_kill."""
    return parse_flat_keyed(read_optional(d, "memory.oom_control") or "")


# blkio statistics: the first group whose first file has data (BFQ with its debug files, BFQ, CFQ,
# recursive throttle, plain throttle), as runc and containerd choose; each entry is
# (file suffix, name of the statistic).
_BLKIO_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "blkio.bfq.",
        (
            ("sectors_recursive", "sectors_recursive"),
            ("io_service_time_recursive", "io_service_time_recursive"),
            ("io_wait_time_recursive", "io_wait_time_recursive"),
            ("io_merged_recursive", "io_merged_recursive"),
            ("io_queued_recursive", "io_queued_recursive"),
            ("time_recursive", "io_time_recursive"),
            ("io_serviced_recursive", "io_serviced_recursive"),
            ("io_service_bytes_recursive", "io_service_bytes_recursive"),
        ),
    ),
    (
        "blkio.bfq.",
        (
            ("io_serviced_recursive", "io_serviced_recursive"),
            ("io_service_bytes_recursive", "io_service_bytes_recursive"),
        ),
    ),
    (
        "blkio.",
        (
            ("sectors_recursive", "sectors_recursive"),
            ("io_service_time_recursive", "io_service_time_recursive"),
            ("io_wait_time_recursive", "io_wait_time_recursive"),
            ("io_merged_recursive", "io_merged_recursive"),
            ("io_queued_recursive", "io_queued_recursive"),
            ("time_recursive", "io_time_recursive"),
            ("io_serviced_recursive", "io_serviced_recursive"),
            ("io_service_bytes_recursive", "io_service_bytes_recursive"),
        ),
    ),
    (
        "blkio.throttle.",
        (
            ("io_serviced_recursive", "io_serviced_recursive"),
            ("io_service_bytes_recursive", "io_service_bytes_recursive"),
        ),
    ),
    (
        "blkio.throttle.",
        (
            ("io_serviced", "io_serviced_recursive"),
            ("io_service_bytes", "io_service_bytes_recursive"),
        ),
    ),
)

BlkioEntry = tuple[int, int, str, int]  # (major, minor, op: "Read", "Write"... or "", value)


def _v1_blkio_file(d: str, name: str) -> list[BlkioEntry] | None:
    text = read_optional(d, name)
    if not text:
        return None
    entries = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue  # the "Total N" line
        op = fields[2] if len(fields) == 4 else ""
        entries.append((int(fields[0]), int(fields[1]), op, int(fields[-1])))
    return entries or None


def v1_blkio(d: str) -> dict[str, list[BlkioEntry]]:
    """The blkio statistics this kernel keeps, by name (io_service_bytes_recursive, io_time_recursive...)."""
    for prefix, files in _BLKIO_GROUPS:
        out: dict[str, list[BlkioEntry]] = {}
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


def v1_hugetlb(d: str) -> dict[str, tuple[int, int, int]]:
    """page size -> (usage, max usage, failcnt) of a hugetlb directory."""
    out = {}
    for size in hugepage_sizes():
        prefix = f"hugetlb.{size}."
        if read_optional(d, prefix + "usage_in_bytes") is None:
            continue
        out[size] = (
            read_uint(d, prefix + "usage_in_bytes"),
            read_uint(d, prefix + "max_usage_in_bytes"),
            read_uint(d, prefix + "failcnt"),
        )
    return out


# ---- cgroup v2 --------------------------------------------------------------------------------


def v2_pids(d: str) -> tuple[int, int]:
    """(current, limit: UNLIMITED for "max"); without the pids controller (0 for the limit) the
    processes of the cgroup and its descendants are counted, as runc does."""
    current_text = read_optional(d, "pids.current")
    if current_text is None:
        return sum(len(read_procs(x)) for x, _, _ in os.walk(d)), 0
    return int(current_text), _uint_or(d, "pids.max", UNLIMITED)


def v2_cpu_stat(d: str) -> dict[str, int]:
    """cpu.stat (always there, the cpu controller adds throttling): usage_usec, user_usec,
    system_usec, nr_periods, nr_throttled, throttled_usec."""
    return parse_flat_keyed(read_optional(d, "cpu.stat") or "")


def v2_cpuset(d: str) -> tuple[list[int], list[int]] | None:
    """(effective cpus, effective mems), or None without the cpuset controller."""
    cpus = read_optional(d, "cpuset.cpus.effective")
    mems = read_optional(d, "cpuset.mems.effective")
    if cpus is None and mems is None:
        return None
    return parse_cpu_list(cpus or ""), parse_cpu_list(mems or "")


class V2Memory:
    """The memory controller's files; limits are UNLIMITED for "max"."""

    __slots__ = ("stat", "current", "max", "peak", "swap_current", "swap_max", "swap_peak", "events")

    def __init__(
        self,
        stat: dict[str, int],
        current: int,
        max: int,
        peak: int,
        swap_current: int,
        swap_max: int | None,
        swap_peak: int,
        events: dict[str, int],
    ) -> None:
        self.stat = stat  # memory.stat: anon, file, kernel_stack, ..., pgfault, ...
        self.current = current
        self.max = max
        self.peak = peak  # 0 on kernels without memory.peak (< 5.19)
        self.swap_current = swap_current
        self.swap_max = swap_max  # None without swap accounting
        self.swap_peak = swap_peak
        self.events = events  # memory.events: low, high, max, oom, oom_kill


def v2_memory(d: str) -> V2Memory | None:
    """None without the memory controller."""
    stat_text = read_optional(d, "memory.stat")
    current_text = read_optional(d, "memory.current")
    if stat_text is None or current_text is None:
        return None
    swap_max = read_optional(d, "memory.swap.max")
    return V2Memory(
        stat=parse_flat_keyed(stat_text),
        current=parse_uint(current_text.strip()),
        max=_uint_or(d, "memory.max", UNLIMITED),
        peak=_uint_or(d, "memory.peak", 0),
        swap_current=_uint_or(d, "memory.swap.current", 0),
        swap_max=parse_uint(swap_max.strip()) if swap_max is not None else None,
        swap_peak=_uint_or(d, "memory.swap.peak", 0),
        events=v2_memory_events(d),
    )


def v2_memory_events(d: str) -> dict[str, int]:
    """memory.events (empty without the memory controller); a change to it wakes a poll() for POLLPRI."""
    return parse_flat_keyed(read_optional(d, "memory.events") or "")


def v2_io_stat(d: str) -> list[tuple[int, int, dict[str, int]]]:
    """io.stat: (major, minor, {rbytes, wbytes, rios, wios, dbytes, dios}) per device."""
    out = []
    for line in (read_optional(d, "io.stat") or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":", 1))
        values = {}
        for item in parts[1:]:
            key, _, value = item.partition("=")
            if value.isdigit():
                values[key] = int(value)
        out.append((major, minor, values))
    return out


def v2_hugetlb(d: str) -> dict[str, tuple[int, int, int]]:
    """page size -> (current, limit: UNLIMITED for "max", the "max" event count)."""
    out = {}
    for size in hugepage_sizes():
        current = read_optional(d, f"hugetlb.{size}.current")
        if current is None:
            continue
        events = parse_flat_keyed(read_optional(d, f"hugetlb.{size}.events") or "")
        out[size] = (int(current), _uint_or(d, f"hugetlb.{size}.max", UNLIMITED), events.get("max", 0))
    return out
