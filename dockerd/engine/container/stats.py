"""GET /containers/{id}/stats: a container's cgroup statistics in Docker's JSON.

The task's statistics come from pycontainerd (Tasks.Metrics, containerd's cgroups v1
Metrics type); only what dockerd itself reads from the host is read here: /proc/stat and
/proc/meminfo for the machine's totals, and a container's network counters from
/proc/PID/net/dev (its namespace's interfaces). A stream holds no thread between samples.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from containerd.client.errors import ContainerdError
from dockerd.engine.container.state import Container
from dockerd.engine.errors import NotFound

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

ZERO_TIME = "0001-01-01T00:00:00Z"
_USER_HZ = 100  # /proc/stat counts in USER_HZ ticks, fixed at 100 on Linux
BLKIO_KEYS = (
    ("io_service_bytes_recursive", "io_service_bytes_recursive"),
    ("io_serviced_recursive", "io_serviced_recursive"),
    ("io_queue_recursive", "io_queued_recursive"),
    ("io_service_time_recursive", "io_service_time_recursive"),
    ("io_wait_time_recursive", "io_wait_time_recursive"),
    ("io_merged_recursive", "io_merged_recursive"),
    ("io_time_recursive", "io_time_recursive"),
    ("sectors_recursive", "sectors_recursive"),
)  # (Docker's key, containerd's field)
# memory_stats.stats keys as dockerd names them, from containerd's MemoryStat fields.
MEMORY_STATS = {
    "cache": "cache", "rss": "rss", "rss_huge": "rss_huge", "mapped_file": "mapped_file", "dirty": "dirty",
    "writeback": "writeback", "pgpgin": "pg_pg_in", "pgpgout": "pg_pg_out", "pgfault": "pg_fault",
    "pgmajfault": "pg_maj_fault", "inactive_anon": "inactive_anon", "active_anon": "active_anon",
    "inactive_file": "inactive_file", "active_file": "active_file", "unevictable": "unevictable",
    "hierarchical_memory_limit": "hierarchical_memory_limit", "hierarchical_memsw_limit": "hierarchical_swap_limit",
    "total_cache": "total_cache", "total_rss": "total_rss", "total_rss_huge": "total_rss_huge",
    "total_mapped_file": "total_mapped_file", "total_dirty": "total_dirty", "total_writeback": "total_writeback",
    "total_pgpgin": "total_pg_pg_in", "total_pgpgout": "total_pg_pg_out", "total_pgfault": "total_pg_fault",
    "total_pgmajfault": "total_pg_maj_fault", "total_inactive_anon": "total_inactive_anon",
    "total_active_anon": "total_active_anon", "total_inactive_file": "total_inactive_file",
    "total_active_file": "total_active_file", "total_unevictable": "total_unevictable",
}  # fmt: skip


def go_time(ns: int) -> str:
    """Go's RFC3339Nano: UTC, fraction without trailing zeros."""
    if ns <= 0:
        return ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def _zero_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def zero_stats(c: Container) -> dict[str, Any]:
    """What dockerd answers for a container that is not running: its name and ID, zeros elsewhere."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {key: None for key, _ in BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _zero_cpu(),
        "precpu_stats": _zero_cpu(),
        "memory_stats": {},
        "name": f"/{c.name}",
        "id": c.id,
    }


def system_cpu() -> tuple[int, int]:
    """(host CPU time in ns, online CPUs) from /proc/stat, as dockerd's stats collector reads them."""
    usage = cpus = 0
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if not parts or not parts[0].startswith("cpu"):
                continue
            if parts[0] == "cpu":
                usage = sum(int(v) for v in parts[1:8]) * 1_000_000_000 // _USER_HZ
            else:
                cpus += 1
    return usage, cpus


@functools.cache
def machine_memory() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def stats_from_metrics(metrics: Any, read_ns: int, machine: int) -> dict[str, Any]:
    """dockerd's statsV1: containerd's cgroups v1 Metrics as Docker's stats JSON (no name/id yet)."""
    out: dict[str, Any] = {"read": go_time(read_ns), "preread": ZERO_TIME, "pids_stats": {}}
    if metrics.HasField("pids"):
        pids = {"current": metrics.pids.current, "limit": metrics.pids.limit}
        out["pids_stats"] = {k: v for k, v in pids.items() if v}
    blkio: dict[str, Any] = {key: None for key, _ in BLKIO_KEYS}
    if metrics.HasField("blkio"):
        for key, field in BLKIO_KEYS:
            entries = getattr(metrics.blkio, field)
            blkio[key] = [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries]
    out.update(blkio_stats=blkio, num_procs=0, storage_stats={})
    cpu = _zero_cpu()
    if metrics.HasField("cpu"):
        usage = metrics.cpu.usage
        cpu["cpu_usage"] = {"total_usage": usage.total}
        if usage.per_cpu:
            cpu["cpu_usage"]["percpu_usage"] = list(usage.per_cpu)
        cpu["cpu_usage"].update(usage_in_kernelmode=usage.kernel, usage_in_usermode=usage.user)
        t = metrics.cpu.throttling
        cpu["throttling_data"] = {
            "periods": t.periods,
            "throttled_periods": t.throttled_periods,
            "throttled_time": t.throttled_time,
        }
    out["cpu_stats"] = cpu
    out["precpu_stats"] = _zero_cpu()
    memory: dict[str, Any] = {}
    if metrics.HasField("memory"):
        m = metrics.memory
        raw = {key: getattr(m, field) for key, field in sorted(MEMORY_STATS.items())}
        if m.HasField("usage"):
            memory = {
                "usage": m.usage.usage,
                "max_usage": m.usage.max,
                "stats": raw,
                "failcnt": m.usage.failcnt,
            }
        else:
            memory = {"stats": raw}
        # Without a limit of its own, the cgroup reports a huge number: the machine is the limit.
        limit = m.hierarchical_memory_limit
        memory["limit"] = machine if machine and limit > machine else limit
        memory = {k: v for k, v in memory.items() if v}
    out["memory_stats"] = memory
    return out


NET_COUNTERS = ("bytes", "packets", "errors", "dropped")  # the first four of each direction in /proc/net/dev


def network_stats(pid: int) -> dict[str, dict[str, int]]:
    """Docker's `networks` of stats: the counters of each interface of the container's network
    namespace but loopback (read, as dockerd reads them from its sandbox, from the kernel:
    /proc/PID/net/dev shows the namespace of PID). Empty when there is none, and dockerd then
    leaves the key out, as for a container with `--network none`."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.read().splitlines()[2:]  # two header lines
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name, values = name.strip(), counters.split()
        if name == "lo" or len(values) < 12:
            continue
        rx, tx = values[0:4], values[8:12]
        out[name] = {
            **{f"rx_{key}": int(v) for key, v in zip(NET_COUNTERS, rx, strict=True)},
            **{f"tx_{key}": int(v) for key, v in zip(NET_COUNTERS, tx, strict=True)},
        }
    return out


def stats(
    d: Containers, ref: str, stream: bool, one_shot: bool, interval: float = 1.0
) -> AsyncIterator[bytes]:
    """dockerd's ContainerStats: a sample per second, each with the one before as precpu.
    Without streaming, the second sample (so that CPU % can be computed) unless one-shot.
    Asynchronous, so that an open stream holds no worker thread between samples."""
    c = d.get(ref)
    if not stream and (not c.running() or c.state.get("Restarting")):
        return _one(_encode(zero_stats(c)))
    return _stats_stream(d, c, stream, one_shot, interval)


async def _stats_stream(
    d: Containers, c: Container, stream: bool, one_shot: bool, interval: float
) -> AsyncIterator[bytes]:
    pre_cpu, pre_read = _zero_cpu(), ZERO_TIME
    skip_first = not stream and not one_shot
    while True:
        try:
            d.get(c.id)
        except NotFound:
            return  # removed: dockerd closes the stream
        sampled = await anyio.to_thread.run_sync(sample, d, c)
        frame = sampled if sampled is not None else zero_stats(c)
        frame.update(preread=pre_read, precpu_stats=pre_cpu, name=f"/{c.name}", id=c.id)
        pre_cpu, pre_read = frame["cpu_stats"], frame["read"]
        if skip_first and sampled is not None:
            skip_first = False
            await anyio.sleep(interval)
            continue
        yield _encode(_ordered(frame))
        if not stream:
            return
        await anyio.sleep(interval)


def sample(d: Containers, c: Container) -> dict[str, Any] | None:
    """One reading of the task's cgroups, or None when there is no task to read."""
    if not c.running():
        return None
    try:
        metrics = d.client.tasks.metrics(f"id=={c.id}")
    except ContainerdError:
        return None
    for metric in metrics:
        if metric.container_id != c.id:
            continue
        data = metric.cgroups_v1()
        if data is None:
            return None  # not cgroup v1 statistics (a cgroup v2 host's): not converted yet
        out = stats_from_metrics(data, metric.timestamp or time.time_ns(), machine_memory())
        usage, online = system_cpu()
        if usage:
            out["cpu_stats"]["system_cpu_usage"] = usage
        if online:
            out["cpu_stats"]["online_cpus"] = online
        # dockerd's key order: the CPU figures sit between throttling and the usage block.
        cpu = out["cpu_stats"]
        out["cpu_stats"] = {
            k: cpu[k] for k in ("cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data") if k in cpu
        }
        networks = network_stats(int(c.state.get("Pid") or 0))
        if networks:
            out["networks"] = networks
        return out
    return None


def _ordered(frame: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "read",
        "preread",
        "pids_stats",
        "blkio_stats",
        "num_procs",
        "storage_stats",
        "cpu_stats",
        "precpu_stats",
        "memory_stats",
        "name",
        "id",
        "networks",
    )
    return {k: frame[k] for k in keys if k in frame}


def _encode(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":")).encode() + b"\n"  # one compact line, as Go's encoder


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
