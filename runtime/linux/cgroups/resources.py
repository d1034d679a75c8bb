"""OCI linux.resources parsed into typed values.

Like runc, a numeric limit of 0 (or an absent field) means "leave unchanged", and -1 means unlimited.
"""

from __future__ import annotations

from common.cgroups import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Plain classes rather than dataclasses: these are built on every `pyrunc create`, where importing
# dataclasses (and the typing/inspect machinery it pulls in) would cost more than the whole job.


class DeviceRule:
    """One device access rule; treated as an immutable value."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, type: str, major: int | None, minor: int | None, access: str) -> None:
        self.allow = allow
        self.type = type  # 'a' (all), 'b' or 'c'
        self.major = major  # None = wildcard '*'
        self.minor = minor
        self.access = access  # subset of 'rwm', canonical order

    def _key(self) -> tuple[bool, str, int | None, int | None, str]:
        return (self.allow, self.type, self.major, self.minor, self.access)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceRule):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"DeviceRule(allow={self.allow!r}, type={self.type!r}, major={self.major!r}, "
            f"minor={self.minor!r}, access={self.access!r})"
        )

    def cgroup_string(self) -> str:
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


class WeightDevice:
    __slots__ = ("major", "minor", "weight", "leaf_weight")

    def __init__(self, major: int, minor: int, weight: int | None, leaf_weight: int | None) -> None:
        self.major = major
        self.minor = minor
        self.weight = weight
        self.leaf_weight = leaf_weight


class ThrottleDevice:
    __slots__ = ("major", "minor", "rate")

    def __init__(self, major: int, minor: int, rate: int) -> None:
        self.major = major
        self.minor = minor
        self.rate = rate


class MemoryResources:
    __slots__ = ("limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness", "disable_oom_killer")

    def __init__(
        self,
        limit: int | None = None,
        reservation: int | None = None,
        swap: int | None = None,
        kernel: int | None = None,
        kernel_tcp: int | None = None,
        swappiness: int | None = None,
        disable_oom_killer: bool = False,
    ) -> None:
        self.limit = limit
        self.reservation = reservation
        self.swap = swap
        self.kernel = kernel
        self.kernel_tcp = kernel_tcp
        self.swappiness = swappiness
        self.disable_oom_killer = disable_oom_killer


class CpuResources:
    __slots__ = (
        "shares",
        "quota",
        "burst",
        "period",
        "realtime_runtime",
        "realtime_period",
        "cpus",
        "mems",
        "idle",
    )

    def __init__(
        self,
        shares: int | None = None,
        quota: int | None = None,
        burst: int | None = None,
        period: int | None = None,
        realtime_runtime: int | None = None,
        realtime_period: int | None = None,
        cpus: str | None = None,
        mems: str | None = None,
        idle: int | None = None,
    ) -> None:
        self.shares = shares
        self.quota = quota
        self.burst = burst
        self.period = period
        self.realtime_runtime = realtime_runtime
        self.realtime_period = realtime_period
        self.cpus = cpus
        self.mems = mems
        self.idle = idle


class BlockIOResources:
    __slots__ = (
        "weight",
        "leaf_weight",
        "weight_device",
        "throttle_read_bps",
        "throttle_write_bps",
        "throttle_read_iops",
        "throttle_write_iops",
    )

    def __init__(
        self,
        weight: int | None = None,
        leaf_weight: int | None = None,
        weight_device: list[WeightDevice] | None = None,
        throttle_read_bps: list[ThrottleDevice] | None = None,
        throttle_write_bps: list[ThrottleDevice] | None = None,
        throttle_read_iops: list[ThrottleDevice] | None = None,
        throttle_write_iops: list[ThrottleDevice] | None = None,
    ) -> None:
        self.weight = weight
        self.leaf_weight = leaf_weight
        self.weight_device: list[WeightDevice] = weight_device if weight_device is not None else []
        self.throttle_read_bps: list[ThrottleDevice] = (
            throttle_read_bps if throttle_read_bps is not None else []
        )
        self.throttle_write_bps: list[ThrottleDevice] = (
            throttle_write_bps if throttle_write_bps is not None else []
        )
        self.throttle_read_iops: list[ThrottleDevice] = (
            throttle_read_iops if throttle_read_iops is not None else []
        )
        self.throttle_write_iops: list[ThrottleDevice] = (
            throttle_write_iops if throttle_write_iops is not None else []
        )

    def is_set(self) -> bool:
        return bool(
            self.weight
            or self.leaf_weight
            or self.weight_device
            or self.throttle_read_bps
            or self.throttle_write_bps
            or self.throttle_read_iops
            or self.throttle_write_iops
        )


class Resources:
    __slots__ = (
        "memory",
        "cpu",
        "pids_limit",
        "block_io",
        "devices",
        "hugepage_limits",
        "net_class_id",
        "net_priorities",
        "rdma",
        "unified",
    )

    def __init__(
        self,
        memory: MemoryResources | None = None,
        cpu: CpuResources | None = None,
        pids_limit: int | None = None,
        block_io: BlockIOResources | None = None,
        devices: list[DeviceRule] | None = None,
        hugepage_limits: list[tuple[str, int]] | None = None,
        net_class_id: int | None = None,
        net_priorities: list[tuple[str, int]] | None = None,
        rdma: dict[str, dict[str, int]] | None = None,
        unified: dict[str, str] | None = None,
    ) -> None:
        self.memory = memory if memory is not None else MemoryResources()
        self.cpu = cpu if cpu is not None else CpuResources()
        self.pids_limit = pids_limit
        self.block_io = block_io if block_io is not None else BlockIOResources()
        # None: devices not mentioned, leave the cgroup's device access alone.
        self.devices = devices
        # (page size like '2MB', bytes)
        self.hugepage_limits: list[tuple[str, int]] = hugepage_limits if hugepage_limits is not None else []
        self.net_class_id = net_class_id
        self.net_priorities: list[tuple[str, int]] = net_priorities if net_priorities is not None else []
        self.rdma: dict[str, dict[str, int]] = rdma if rdma is not None else {}
        self.unified: dict[str, str] = unified if unified is not None else {}


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CgroupError(f"cgroup: invalid {where}: expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CgroupError(f"cgroup: invalid {where}: expected an array")
    return value


def _int(obj: dict[str, Any], key: str, where: str, *, zero_is_unset: bool = True) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CgroupError(f"cgroup: invalid {where}.{key}: expected an integer, got {value!r}")
    if zero_is_unset and value == 0:
        return None
    return value


def _device_rule(raw: Any, index: int) -> DeviceRule:
    where = f"linux.resources.devices[{index}]"
    obj = _obj(raw, where)
    allow = obj.get("allow")
    if not isinstance(allow, bool):
        raise CgroupError(f"cgroup: invalid {where}: 'allow' must be true or false")
    dtype = obj.get("type") or "a"
    if dtype not in ("a", "b", "c"):
        raise CgroupError(f"cgroup: invalid {where}: unknown device type {dtype!r}")
    major = _int(obj, "major", where, zero_is_unset=False)
    minor = _int(obj, "minor", where, zero_is_unset=False)
    access = obj.get("access") or "rwm"
    if not isinstance(access, str) or not access or set(access) - set("rwm"):
        raise CgroupError(f"cgroup: invalid {where}: access {access!r} must be made of r, w and m")
    return DeviceRule(
        allow=allow,
        type=dtype,
        major=None if major is None or major < 0 else major,
        minor=None if minor is None or minor < 0 else minor,
        access="".join(c for c in "rwm" if c in access),
    )


def _weight_devices(raw: Any, where: str) -> list[WeightDevice]:
    out = []
    for i, item in enumerate(_list(raw, where)):
        obj = _obj(item, f"{where}[{i}]")
        major = _int(obj, "major", f"{where}[{i}]", zero_is_unset=False)
        minor = _int(obj, "minor", f"{where}[{i}]", zero_is_unset=False)
        if major is None or minor is None:
            raise CgroupError(f"cgroup: invalid {where}[{i}]: major and minor are required")
        out.append(WeightDevice(major, minor, _int(obj, "weight", where), _int(obj, "leafWeight", where)))
    return out


def _throttle_devices(raw: Any, where: str) -> list[ThrottleDevice]:
    out = []
    for i, item in enumerate(_list(raw, where)):
        obj = _obj(item, f"{where}[{i}]")
        major = _int(obj, "major", f"{where}[{i}]", zero_is_unset=False)
        minor = _int(obj, "minor", f"{where}[{i}]", zero_is_unset=False)
        rate = _int(obj, "rate", f"{where}[{i}]", zero_is_unset=False)
        if major is None or minor is None or rate is None:
            raise CgroupError(f"cgroup: invalid {where}[{i}]: major, minor and rate are required")
        out.append(ThrottleDevice(major, minor, rate))
    return out


def parse_resources(raw: dict[str, Any] | None) -> Resources:
    """Parse OCI linux.resources (camelCase JSON as in config.json)."""
    top = _obj(raw, "linux.resources")
    res = Resources()

    mem = _obj(top.get("memory"), "linux.resources.memory")
    w = "linux.resources.memory"
    swappiness = _int(mem, "swappiness", w, zero_is_unset=False)
    oom = mem.get("disableOOMKiller", False)
    if not isinstance(oom, bool):
        raise CgroupError(f"cgroup: invalid {w}.disableOOMKiller: expected true or false")
    res.memory = MemoryResources(
        limit=_int(mem, "limit", w),
        reservation=_int(mem, "reservation", w),
        swap=_int(mem, "swap", w),
        kernel=_int(mem, "kernel", w),
        kernel_tcp=_int(mem, "kernelTCP", w),
        # Docker sends -1 for "not set"; the kernel range is 0-100.
        swappiness=None if swappiness is None or swappiness == -1 else swappiness,
        disable_oom_killer=oom,
    )

    cpu = _obj(top.get("cpu"), "linux.resources.cpu")
    w = "linux.resources.cpu"
    for key in ("cpus", "mems"):
        if cpu.get(key) is not None and not isinstance(cpu[key], str):
            raise CgroupError(f"cgroup: invalid {w}.{key}: expected a string")
    res.cpu = CpuResources(
        shares=_int(cpu, "shares", w),
        quota=_int(cpu, "quota", w),
        burst=_int(cpu, "burst", w, zero_is_unset=False),
        period=_int(cpu, "period", w),
        realtime_runtime=_int(cpu, "realtimeRuntime", w),
        realtime_period=_int(cpu, "realtimePeriod", w),
        cpus=cpu.get("cpus") or None,
        mems=cpu.get("mems") or None,
        idle=_int(cpu, "idle", w, zero_is_unset=False),
    )

    pids = _obj(top.get("pids"), "linux.resources.pids")
    res.pids_limit = _int(pids, "limit", "linux.resources.pids")

    bio = _obj(top.get("blockIO"), "linux.resources.blockIO")
    w = "linux.resources.blockIO"
    res.block_io = BlockIOResources(
        weight=_int(bio, "weight", w),
        leaf_weight=_int(bio, "leafWeight", w),
        weight_device=_weight_devices(bio.get("weightDevice"), f"{w}.weightDevice"),
        throttle_read_bps=_throttle_devices(bio.get("throttleReadBpsDevice"), f"{w}.throttleReadBpsDevice"),
        throttle_write_bps=_throttle_devices(
            bio.get("throttleWriteBpsDevice"), f"{w}.throttleWriteBpsDevice"
        ),
        throttle_read_iops=_throttle_devices(
            bio.get("throttleReadIOPSDevice"), f"{w}.throttleReadIOPSDevice"
        ),
        throttle_write_iops=_throttle_devices(
            bio.get("throttleWriteIOPSDevice"), f"{w}.throttleWriteIOPSDevice"
        ),
    )

    if top.get("devices") is not None:
        res.devices = [
            _device_rule(d, i) for i, d in enumerate(_list(top["devices"], "linux.resources.devices"))
        ]

    for i, item in enumerate(_list(top.get("hugepageLimits"), "linux.resources.hugepageLimits")):
        where = f"linux.resources.hugepageLimits[{i}]"
        obj = _obj(item, where)
        size = obj.get("pageSize")
        limit = _int(obj, "limit", where, zero_is_unset=False)
        if not isinstance(size, str) or not size or "/" in size or limit is None:
            raise CgroupError(f"cgroup: invalid {where}: pageSize and limit are required")
        res.hugepage_limits.append((size, limit))

    net = _obj(top.get("network"), "linux.resources.network")
    res.net_class_id = _int(net, "classID", "linux.resources.network")
    for i, item in enumerate(_list(net.get("priorities"), "linux.resources.network.priorities")):
        where = f"linux.resources.network.priorities[{i}]"
        obj = _obj(item, where)
        prio = _int(obj, "priority", where, zero_is_unset=False)
        if not isinstance(obj.get("name"), str) or prio is None:
            raise CgroupError(f"cgroup: invalid {where}: name and priority are required")
        res.net_priorities.append((obj["name"], prio))

    for dev, limits in _obj(top.get("rdma"), "linux.resources.rdma").items():
        obj = _obj(limits, f"linux.resources.rdma.{dev}")
        res.rdma[dev] = {
            k: v
            for k in ("hcaHandles", "hcaObjects")
            if (v := _int(obj, k, "rdma", zero_is_unset=False)) is not None
        }

    for key, value in _obj(top.get("unified"), "linux.resources.unified").items():
        if not isinstance(value, str):
            raise CgroupError(f"cgroup: invalid linux.resources.unified[{key!r}]: expected a string")
        res.unified[key] = value
    return res
