"""What a container uses and may use: top, stats, update, disk sizes, image prune, system df.

Everything about a running task comes from pycontainerd over gRPC: its pids (Tasks.ListPids),
its cgroup statistics (Tasks.Metrics, containerd's cgroups v1 Metrics type), new limits
(Tasks.Update with an OCI LinuxResources as JSON) and the disk usage of snapshots
(Snapshots.Usage). Only what dockerd itself reads from the host is read here: `ps` for top
and /proc/stat, /proc/meminfo for the machine's totals in stats.

Sizes are snapshot usage as containerd measures it (allocated blocks, each hard link once),
where Docker's overlay2 sums apparent file sizes (so `images`, `history` and `ps -s` show
block sizes); and the mount points the runtime creates in the rootfs, and the init entries
(initlayer.py), count in a container's writable layer (Docker keeps them in an "-init" layer).
A container's network counters are read from /proc/PID/net/dev (its namespace's interfaces).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread

from containerd.client import Client
from containerd.errors import ContainerdError
from containerd.errors import NotFound as ContainerdNotFound
from dockerd.engine.containers import Container, ContainerEngine
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from dockerd.engine.filters import CONTAINER_PRUNE, Filters, match_labels, prune_until, pruned_after
from dockerd.engine.image.service import ImageService, snapshot_usage
from dockerd.engine.logs import parse_time
from dockerd.engine.validate import json_kind

log = logging.getLogger("pydockerd.resources")
ZERO_TIME = "0001-01-01T00:00:00Z"
RESOURCES_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory
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
# `docker update` fields pydockerd applies; the CLI sends every Resources field, so others are
# refused only when they carry a value.
INT_FIELDS = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "NanoCpus",
    "CpuShares",
    "CpuQuota",
    "CpuPeriod",
    "BlkioWeight",
)
UPDATE_FIELDS = {*INT_FIELDS, "CpusetCpus", "PidsLimit", "RestartPolicy"}


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


# --- top ----------------------------------------------------------------------------------


def validate_ps_args(ps_args: str) -> None:
    """dockerd refuses renaming a column to PID (it would fool the PID column lookup)."""
    for key, value in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    """dockerd's parsePSOutput: keep the lines of PIDS (and the thread lines that follow them)."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    index = titles.index("PID")
    processes: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= index:
            continue
        if fields[index] == "-":
            if keep_threads:
                processes.append(_merge_tail(fields, len(titles)))
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise InvalidParameter(f"Unexpected pid '{fields[index]}': invalid syntax") from None
        keep_threads = pid in pids
        if keep_threads:
            processes.append(_merge_tail(fields, len(titles)))
    return {"Processes": processes, "Titles": titles}


def _merge_tail(fields: list[str], columns: int) -> list[str]:
    """The last column (the command) may hold spaces: join whatever overhangs into it."""
    return fields[: columns - 1] + [" ".join(fields[columns - 1 :])]


# --- update -------------------------------------------------------------------------------


def _online_cpus() -> set[int]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_cpuset(f.read().strip())
    except (OSError, ValueError):
        return set(range(os.cpu_count() or 1))


def parse_cpuset(text: str) -> set[int]:
    """A cpuset list like `0-2,4`; ValueError when malformed."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(text)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(text)
        cpus.update(range(first, last + 1))
    return cpus


def _format_cpuset(cpus: set[int]) -> str:
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and "-" in ranges[-1] and int(ranges[-1].split("-")[1]) == cpu - 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{cpu}"
        elif ranges and "-" not in ranges[-1] and int(ranges[-1]) == cpu - 1:
            ranges[-1] = f"{ranges[-1]}-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def _blkio_weight_supported(cgroup_root: str = "/sys/fs/cgroup") -> bool:
    return any(
        os.path.exists(os.path.join(cgroup_root, "blkio", name))
        for name in ("blkio.weight", "blkio.bfq.weight")
    )


def check_update_body(body: dict[str, Any]) -> None:
    """Types as Go's decoder would insist on them, and nothing pydockerd cannot apply."""
    for key, value in body.items():
        if (
            key in INT_FIELDS
            and value is not None
            and (not isinstance(value, int) or isinstance(value, bool))
        ):
            raise InvalidParameter(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field UpdateConfig.{key} of type int64"
            )
        if (
            key == "PidsLimit"
            and value is not None
            and (not isinstance(value, int) or isinstance(value, bool))
        ):
            raise InvalidParameter(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field UpdateConfig.PidsLimit of type int64"
            )
        if key == "CpusetCpus" and value is not None and not isinstance(value, str):
            raise InvalidParameter(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field UpdateConfig.CpusetCpus of type string"
            )
        if key == "RestartPolicy" and value is not None and not isinstance(value, dict):
            raise InvalidParameter(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field UpdateConfig.RestartPolicy of type container.RestartPolicy"
            )
        if key not in UPDATE_FIELDS and value not in (None, "", [], {}, False, 0):
            raise InvalidParameter(f"updating {key} is not supported by pydockerd")



def verify_resources(res: dict[str, Any]) -> list[str]:
    """dockerd's verifyPlatformContainerResources for an update: 400 errors, or warnings."""
    warnings: list[str] = []
    memory, swap, reservation = (
        res.get("Memory") or 0,
        res.get("MemorySwap") or 0,
        res.get("MemoryReservation") or 0,
    )
    if memory and memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, see usage")
    if reservation and reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    nano, period, quota = res.get("NanoCpus") or 0, res.get("CpuPeriod") or 0, res.get("CpuQuota") or 0
    if nano > 0 and period > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    ncpu = len(_online_cpus())
    if nano < 0 or nano > ncpu * 1_000_000_000:
        raise InvalidParameter(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if quota > 0 and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if (res.get("CpuShares") or 0) < 0:
        raise InvalidParameter(f"invalid CPU shares ({res['CpuShares']}): the value must not be negative")
    cpuset = res.get("CpusetCpus") or ""
    if cpuset:
        try:
            wanted = parse_cpuset(cpuset)
        except ValueError:
            raise InvalidParameter(f"Invalid value {cpuset} for cpuset cpus") from None
        online = _online_cpus()
        if not wanted <= online:
            raise InvalidParameter(
                f"Requested CPUs are not available - requested {cpuset}, available: {_format_cpuset(online)}"
            )
    weight = res.get("BlkioWeight") or 0
    if weight:
        if not _blkio_weight_supported():
            warnings.append(
                "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
            )
            res["BlkioWeight"] = 0
        elif not 10 <= weight <= 1000:
            raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    return warnings


def validate_restart_policy(policy: dict[str, Any]) -> None:
    name = policy.get("Name") or ""
    retries = policy.get("MaximumRetryCount") or 0
    if not isinstance(name, str) or not isinstance(retries, int) or isinstance(retries, bool):
        raise InvalidParameter(
            "invalid restart policy: Name must be a string and MaximumRetryCount an integer"
        )
    if name in ("always", "unless-stopped", "no"):
        if retries != 0:
            raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{name}'")
    elif name == "on-failure":
        if retries < 0:
            raise InvalidParameter("maximum retry count cannot be negative")
    elif name:
        raise InvalidParameter(f"invalid restart policy '{name}'")


def merge_update(c: Container, res: dict[str, Any], policy: dict[str, Any] | None) -> dict[str, Any]:
    """dockerd's Container.UpdateContainer over the stored HostConfig: the new HostConfig, or a
    409 for an update that contradicts what is already set."""
    host = dict(c.host_config)
    current = {k: host.get(k) or 0 for k in INT_FIELDS}
    if current["Memory"] > 0 and not current["MemorySwap"]:
        current["MemorySwap"] = current["Memory"] * 2  # dockerd's default, stored at create

    def conflict(message: str) -> Conflict:
        return Conflict(f"Cannot update container {c.id}: Conflicting options: {message}")

    nano, period, quota = res.get("NanoCpus") or 0, res.get("CpuPeriod") or 0, res.get("CpuQuota") or 0
    if nano > 0 and current["CpuPeriod"] > 0:
        raise conflict("Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and current["CpuQuota"] > 0:
        raise conflict("Nano CPUs cannot be updated as CPU Quota has already been set")
    if period > 0 and current["NanoCpus"] > 0:
        raise conflict("CPU Period cannot be updated as NanoCPUs has already been set")
    if quota > 0 and current["NanoCpus"] > 0:
        raise conflict("CPU Quota cannot be updated as NanoCPUs has already been set")
    memory, swap = res.get("Memory") or 0, res.get("MemorySwap") or 0
    if memory and memory > current["MemorySwap"] and swap == 0:
        raise Conflict(
            f"Cannot update container {c.id}: Memory limit should be smaller than already set memoryswap limit, "
            "update the memoryswap at the same time"
        )
    if current["Memory"] > 0 and not host.get("MemorySwap"):
        host["MemorySwap"] = current["MemorySwap"]
    for key in INT_FIELDS:
        if res.get(key):
            host[key] = res[key]
    if res.get("CpusetCpus"):
        host["CpusetCpus"] = res["CpusetCpus"]
    if res.get("PidsLimit") is not None:
        host["PidsLimit"] = res["PidsLimit"]
    if policy is not None and policy.get("Name"):
        if host.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict(
                f"Cannot update container {c.id}: Restart policy cannot be updated because AutoRemove is enabled for the container"
            )
        host["RestartPolicy"] = {
            "Name": policy["Name"],
            "MaximumRetryCount": policy.get("MaximumRetryCount") or 0,
        }
    return host


def linux_resources(res: dict[str, Any]) -> dict[str, Any]:
    """dockerd's toContainerdResources, keeping only what the update sets: the OCI LinuxResources."""
    out: dict[str, Any] = {}
    memory = {
        "limit": res.get("Memory") or None,
        "reservation": res.get("MemoryReservation") or None,
        "swap": res["MemorySwap"] if (res.get("MemorySwap") or 0) > 0 else None,
    }
    if any(v is not None for v in memory.values()):
        out["memory"] = {k: v for k, v in memory.items() if v is not None}
    cpu: dict[str, Any] = {}
    if res.get("CpuShares"):
        cpu["shares"] = res["CpuShares"]
    if res.get("NanoCpus"):
        cpu["period"] = 100_000
        cpu["quota"] = res["NanoCpus"] * 100_000 // 1_000_000_000
    if res.get("CpuQuota"):
        cpu["quota"] = res["CpuQuota"]
    if res.get("CpuPeriod"):
        cpu["period"] = res["CpuPeriod"]
    if res.get("CpusetCpus"):
        cpu["cpus"] = res["CpusetCpus"]
    if cpu:
        out["cpu"] = cpu
    if res.get("PidsLimit") is not None:
        # The API's 0 ("unlimited") is -1 for the runtime, which lifts an earlier limit.
        out["pids"] = {"limit": res["PidsLimit"] if res["PidsLimit"] > 0 else -1}
    if res.get("BlkioWeight"):
        out["blockIO"] = {"weight": res["BlkioWeight"]}
    return out


# --- the service --------------------------------------------------------------------------


class ResourceService:
    def __init__(
        self, engine: ContainerEngine, images: ImageService, client: Client, publish: Callable[..., None]
    ) -> None:
        import protos

        protos.load()
        from containerd_api.cgroups.stats.v1 import metrics_pb2
        from containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc

        self.engine = engine
        self.images = images
        self.client = client
        self.publish = publish
        self._metrics_pb2 = metrics_pb2
        self._tpb = tasks_pb2
        self._tasks = tasks_pb2_grpc.TasksStub(client.channel)
        self._machine_memory = machine_memory()

    # --- top ------------------------------------------------------------------------------

    def top(self, ref: str, ps_args: str) -> dict[str, Any]:
        ps_args = ps_args or "-ef"
        validate_ps_args(ps_args)
        c = self.engine.get(ref)
        if not c.running():
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Restarting"):
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        try:
            listed = self.client.call(self._tasks.ListPids, self._tpb.ListPidsRequest(container_id=c.id))
        except ContainerdError as exc:
            if isinstance(exc, ContainerdNotFound) or not c.running():
                raise Conflict(f"Container {c.id} is not running") from None
            raise EngineError(f"listing the processes of {c.id}: {exc}") from None
        pids = [p.pid for p in listed.processes]
        args = ps_args.split(" ")
        # As dockerd: ps restricted to the pids first; some options (f) refuse -q, so retry without.
        result = subprocess.run(
            ["ps", *args, "-q" + ",".join(map(str, pids))], capture_output=True, text=True
        )
        if result.returncode != 0:
            result = subprocess.run(["ps", *args], capture_output=True, text=True)
            if result.returncode != 0:
                first = (result.stderr.split("\n", 1)[0] or f"exit status {result.returncode}").strip()
                raise InvalidParameter(f"ps: {first}")
        answer = parse_ps_output(result.stdout, set(pids))
        self.publish("container", "top", c.id, {"image": c.image_ref, "name": c.name})
        return answer

    # --- stats ----------------------------------------------------------------------------

    def sample(self, c: Container) -> dict[str, Any] | None:
        """One reading of the task's cgroups, or None when there is no task to read."""
        if not c.running():
            return None
        request = self._tpb.MetricsRequest(filters=[f"id=={c.id}"])
        try:
            response = self.client.call(self._tasks.Metrics, request)
        except ContainerdError:
            return None
        for metric in response.metrics:
            if metric.id != c.id:
                continue
            if metric.data.type_url != "io.containerd.cgroups.v1.Metrics":
                return None  # a cgroup v2 host's io.containerd.cgroups.v2.Metrics: not converted yet
            data = self._metrics_pb2.Metrics.FromString(metric.data.value)
            out = stats_from_metrics(
                data, metric.timestamp.ToNanoseconds() or time.time_ns(), self._machine_memory
            )
            usage, online = system_cpu()
            if usage:
                out["cpu_stats"]["system_cpu_usage"] = usage
            if online:
                out["cpu_stats"]["online_cpus"] = online
            # dockerd's key order: the CPU figures sit between throttling and the usage block.
            cpu = out["cpu_stats"]
            out["cpu_stats"] = {
                k: cpu[k]
                for k in ("cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data")
                if k in cpu
            }
            networks = network_stats(int(c.state.get("Pid") or 0))
            if networks:
                out["networks"] = networks
            return out
        return None

    def stats(self, ref: str, stream: bool, one_shot: bool, interval: float = 1.0) -> AsyncIterator[bytes]:
        """dockerd's ContainerStats: a sample per second, each with the one before as precpu.
        Without streaming, the second sample (so that CPU % can be computed) unless one-shot.
        Asynchronous, so that an open stream holds no worker thread between samples."""
        c = self.engine.get(ref)
        if not stream and (not c.running() or c.state.get("Restarting")):
            return _one(_encode(zero_stats(c)))
        return self._stats_stream(c, stream, one_shot, interval)

    async def _stats_stream(
        self, c: Container, stream: bool, one_shot: bool, interval: float
    ) -> AsyncIterator[bytes]:
        pre_cpu, pre_read = _zero_cpu(), ZERO_TIME
        skip_first = not stream and not one_shot
        while True:
            try:
                self.engine.get(c.id)
            except NotFound:
                return  # removed: dockerd closes the stream
            sampled = await anyio.to_thread.run_sync(self.sample, c)
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

    # --- update ---------------------------------------------------------------------------

    def update(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        c = self.engine.get(ref)
        check_update_body(body)
        res: dict[str, Any] = {k: body.get(k) for k in UPDATE_FIELDS if k != "RestartPolicy"}
        if res.get("PidsLimit") is not None and res["PidsLimit"] <= 0:
            res["PidsLimit"] = 0  # 0 and any negative value both mean "unlimited"
        warnings = verify_resources(res)
        policy = body.get("RestartPolicy")
        if policy is not None:
            validate_restart_policy(policy)
        if c.removal_in_progress or c.state.get("Dead"):
            raise Conflict(
                f'Cannot update container {c.id}: container is marked for removal and cannot be "update"'
            )
        host = merge_update(c, res, policy)
        change = linux_resources(res)
        if change and c.running() and not c.state.get("Restarting"):
            from google.protobuf import any_pb2

            payload = any_pb2.Any(type_url=RESOURCES_TYPE, value=json.dumps(change).encode())
            try:
                self.client.call(
                    self._tasks.Update, self._tpb.UpdateTaskRequest(container_id=c.id, resources=payload)
                )
            except ContainerdError as exc:
                raise InvalidParameter(f"Cannot update container {c.id}: {exc}") from None
        self.engine.save_host_config(c, host)
        self.publish("container", "update", c.id, {"image": c.image_ref, "name": c.name})
        return {"Warnings": warnings or None}

    # --- sizes ----------------------------------------------------------------------------

    def writable_size(self, c: Container) -> int:
        """The disk usage of the container's writable layer (its snapshot), 0 before its first start."""
        usage = snapshot_usage(self.client, c.id)
        # A snapshot holding only its own directory has nothing written: Docker shows 0 for it.
        return usage[0] if usage is not None and usage[1] > 1 else 0

    def container_sizes(self, c: Container, image_sizes: dict[str, int] | None = None) -> dict[str, int]:
        """Docker's SizeRw (omitted when 0) and SizeRootFs: the writable layer, and it plus the image."""
        size_rw = self.writable_size(c)
        if image_sizes is not None:
            image_size = image_sizes.get(c.image_id, 0)  # 0: its image was removed (rmi -f)
        else:
            try:
                image_size = self.images.unpacked_size(self.images.resolve(c.image_id))
            except NotFound:
                image_size = 0
        out = {"SizeRw": size_rw} if size_rw else {}
        out["SizeRootFs"] = size_rw + image_size
        return out

    def with_sizes(
        self, c: Container, summary: dict[str, Any], image_sizes: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """A container summary (or inspect) with its sizes placed where dockerd puts them."""
        sizes = self.container_sizes(c, image_sizes)
        out: dict[str, Any] = {}
        for key, value in summary.items():
            out[key] = value
            if key in ("Ports", "GraphDriver"):
                out.update(sizes)
        if not sizes.keys() <= out.keys():
            out.update(sizes)
        return out

    def image_sizes(self) -> dict[str, int]:
        return {image.id: self.images.unpacked_size(image) for image in self.images.all()}

    def sized_summaries(self, containers: list[Container]) -> list[dict[str, Any]]:
        """`ps -s`: container summaries with SizeRw and SizeRootFs (the images measured once)."""
        sizes = self.image_sizes()
        return [self.with_sizes(c, self.engine.summary(c), sizes) for c in containers]

    def disk_usage(self) -> dict[str, Any]:
        images = self.images.all()
        containers = self.engine.all()
        layers = {image.id: self.images.layer_sizes(image) for image in images}
        refs: dict[str, int] = {}
        for chain in layers.values():
            for chain_id, _ in chain:
                refs[chain_id] = refs.get(chain_id, 0) + 1
        unique: dict[str, int] = {}
        image_rows = []
        for image in images:
            summary = self.images.summary(image)
            summary["Containers"] = sum(1 for c in containers if c.image_id == image.id)
            summary["SharedSize"] = sum(size for chain_id, size in layers[image.id] if refs[chain_id] > 1)
            unique.update(layers[image.id])
            image_rows.append(summary)
        image_sizes = {row["Id"]: int(row["Size"]) for row in image_rows}
        container_rows = [self.with_sizes(c, self.engine.summary(c), image_sizes) for c in containers]
        return {
            "LayersSize": sum(unique.values()),
            "Images": image_rows,
            "Containers": container_rows,
            "Volumes": [],
            "BuildCache": None,
            "BuilderSize": 0,
        }

    # --- prune ----------------------------------------------------------------------------

    def prune_containers(self, filters: Filters) -> dict[str, Any]:
        """dockerd's ContainersPrune: stopped containers the filters keep in; one that cannot be
        removed (removed meanwhile, or started again) is skipped, not an error."""
        filters.validate(CONTAINER_PRUNE)
        until = prune_until(filters)
        deleted, reclaimed = [], 0
        for c in self.engine.all():
            # Paused and restarting containers count as running, as dockerd's IsRunning.
            if c.running() or c.state.get("Paused") or c.state.get("Restarting") or c.removal_in_progress:
                continue
            if pruned_after(parse_time(c.created), until) or not match_labels(
                filters, c.config.get("Labels")
            ):
                continue
            size = self.writable_size(c)
            try:
                self.engine.remove(c.id, False, False)
            except EngineError as exc:
                log.warning("prune: skipping container %s: %s", c.id, exc)
                continue
            deleted.append(c.id)
            reclaimed += size
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}


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
