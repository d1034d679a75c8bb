"""POST /containers/{id}/update: resources and restart policy changed on a container, checked
as dockerd checks them."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from containerd.client.errors import ContainerdError
from dockerd.engine.container.state import Container
from dockerd.engine.errors import Conflict, InvalidParameter
from dockerd.engine.validate import json_kind

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory
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


def update(d: Containers, ref: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /containers/{id}/update: new limits for the running task (Tasks.Update with an OCI
    LinuxResources) and the record's HostConfig."""
    c = d.get(ref)
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
        try:
            d.client.tasks.update(c.id, resources=change)
        except ContainerdError as exc:
            raise InvalidParameter(f"Cannot update container {c.id}: {exc}") from None
    d.save_host_config(c, host)
    d.publish("container", "update", c.id, {"image": c.image_ref, "name": c.name})
    return {"Warnings": warnings or None}


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
