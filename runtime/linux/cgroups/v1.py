"""cgroup v1: one directory per hierarchy (plus the cgroup2 directory in hybrid mode)."""

from __future__ import annotations

import errno
import os
import time

from common.cgroups import CgroupError, read_file, read_optional

from .devices import parse_devices_list, target_state, transition
from .manager import CgroupManager, write_file
from .resources import parse_resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .resources import BlockIOResources, CpuResources, DeviceRule, MemoryResources

# The stats module (only for stats()) and v2's freezer helpers (only on hybrid hosts without a v1
# freezer) are imported where used, so create/run does not pay for them.

_FREEZE_TIMEOUT = 5.0

# Hierarchy whose process list we trust, in order of preference (all hold the same processes).
_PRIMARY_ORDER = ("devices", "freezer", "pids", "memory", "cpu", "name=systemd")

# Resource groups to the controller that must be mounted for them (for clear errors).
_UNMOUNTED = "cgroup: cannot set {what}: the {controller} controller is not mounted"


class V1Manager(CgroupManager):
    version = 1

    def primary_dir(self) -> str:
        for key in _PRIMARY_ORDER:
            if key in self.paths:
                return self.paths[key]
        return self.dirs()[0]

    def _dir(self, controller: str, what: str) -> str:
        d = self.paths.get(controller)
        if d is None:
            raise CgroupError(_UNMOUNTED.format(what=what, controller=controller))
        return d

    def _prepare(self, directory: str) -> None:
        if directory == self.paths.get("cpuset"):
            self._fill_cpuset(directory)

    def _fill_cpuset(self, directory: str) -> None:
        """A new cpuset cgroup starts with no CPUs or memory nodes, and no process can join it
        (ENOSPC) until they are set: inherit them from the nearest ancestor that has them."""
        cpus = read_file(directory, "cpuset.cpus").strip()
        mems = read_file(directory, "cpuset.mems").strip()
        if cpus and mems:
            return
        parent = os.path.dirname(directory)
        if not os.path.exists(os.path.join(parent, "cpuset.cpus")):
            raise CgroupError(f"cgroup: cpuset hierarchy above {directory} has no CPUs to inherit")
        self._fill_cpuset(parent)
        if not cpus:
            write_file(directory, "cpuset.cpus", read_file(parent, "cpuset.cpus").strip())
        if not mems:
            write_file(directory, "cpuset.mems", read_file(parent, "cpuset.mems").strip())

    # ---- resources ------------------------------------------------------------------------------

    def set_resources(self, resources: dict[str, Any]) -> None:
        r = parse_resources(resources)
        if r.unified:
            raise CgroupError("cgroup: linux.resources.unified needs cgroup v2, but this host uses cgroup v1")
        # Same order as runc's v1 subsystems: cpuset, devices, memory, cpu, pids, blkio, hugetlb, net.
        if r.cpu.cpus:
            write_file(self._dir("cpuset", "cpuset.cpus"), "cpuset.cpus", r.cpu.cpus)
        if r.cpu.mems:
            write_file(self._dir("cpuset", "cpuset.mems"), "cpuset.mems", r.cpu.mems)
        if r.devices:
            self._set_devices(r.devices)
        self._set_memory(r.memory)
        self._set_cpu(r.cpu)
        if r.pids_limit is not None:
            pids_max = "max" if r.pids_limit < 0 else str(r.pids_limit)
            write_file(self._dir("pids", "pids limit"), "pids.max", pids_max)
        if r.block_io.is_set():
            self._set_blkio(r.block_io)
        for size, limit in r.hugepage_limits:
            d = self._dir("hugetlb", "hugepage limit")
            write_file(d, f"hugetlb.{size}.limit_in_bytes", limit)
            if os.path.exists(os.path.join(d, f"hugetlb.{size}.rsvd.limit_in_bytes")):
                write_file(d, f"hugetlb.{size}.rsvd.limit_in_bytes", limit)
        if r.net_class_id is not None:
            write_file(self._dir("net_cls", "network class id"), "net_cls.classid", r.net_class_id)
        for name, prio in r.net_priorities:
            write_file(self._dir("net_prio", "network priorities"), "net_prio.ifpriomap", f"{name} {prio}")
        for dev, limits in r.rdma.items():
            parts = [dev]
            if "hcaHandles" in limits:
                parts.append(f"hca_handle={limits['hcaHandles']}")
            if "hcaObjects" in limits:
                parts.append(f"hca_object={limits['hcaObjects']}")
            write_file(self._dir("rdma", "rdma limits"), "rdma.max", " ".join(parts))

    def _set_devices(self, rules: list[DeviceRule]) -> None:
        d = self._dir("devices", "device rules")
        current = parse_devices_list(read_file(d, "devices.list"))
        target = target_state(rules)
        for rule in transition(current, target):
            write_file(d, "devices.allow" if rule.allow else "devices.deny", rule.cgroup_string())
        if not target.default_allow:
            # Safety net: never let a container run with device access other than configured.
            result = parse_devices_list(read_file(d, "devices.list"))
            if result.default_allow or result.exceptions != target.exceptions:
                raise CgroupError(f"cgroup: device rules in {d} do not match the requested rules")

    def _set_memory(self, m: MemoryResources) -> None:
        wanted = (
            m.limit is not None
            or m.swap is not None
            or m.reservation is not None
            or m.kernel_tcp is not None
            or m.swappiness is not None
            or m.disable_oom_killer
        )
        if not wanted:
            return  # memory.kernel alone is ignored: kernel memory limits are gone from modern kernels
        if m.swappiness is not None and not 0 <= m.swappiness <= 100:
            raise CgroupError(f"cgroup: invalid memory swappiness {m.swappiness} (valid range is 0-100)")
        d = self._dir("memory", "memory limit")
        limit, swap = m.limit, m.swap
        has_swap = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap is None and has_swap:
            swap = -1  # "unlimited memory" must lift the memory+swap cap as well
        # The kernel insists memsw >= memory at every step, so order the two writes accordingly.
        swap_first = False
        if limit is not None and swap is not None:
            current = int(read_file(d, "memory.limit_in_bytes").strip())
            swap_first = swap == -1 or current < swap
        if swap_first and swap is not None:
            write_file(d, "memory.memsw.limit_in_bytes", swap)
        if limit is not None:
            write_file(d, "memory.limit_in_bytes", limit)
        if not swap_first and swap is not None:
            write_file(d, "memory.memsw.limit_in_bytes", swap)
        if m.reservation is not None:
            write_file(d, "memory.soft_limit_in_bytes", m.reservation)
        if m.kernel_tcp is not None:
            write_file(d, "memory.kmem.tcp.limit_in_bytes", m.kernel_tcp)
        if m.disable_oom_killer:
            write_file(d, "memory.oom_control", "1")
        if m.swappiness is not None:
            write_file(d, "memory.swappiness", m.swappiness)

    def _set_cpu(self, c: CpuResources) -> None:
        wanted = (
            c.shares is not None
            or c.quota is not None
            or c.period is not None
            or c.burst is not None
            or c.idle is not None
            or c.realtime_period is not None
            or c.realtime_runtime is not None
        )
        if not wanted:
            return
        d = self._dir("cpu", "cpu limits")
        if c.shares is not None:
            write_file(d, "cpu.shares", c.shares)
            # The kernel clamps out-of-range shares silently; say so instead of running with less.
            got = int(read_file(d, "cpu.shares").strip())
            if got != c.shares:
                bound = "maximum" if c.shares > got else "minimum"
                raise CgroupError(f"cgroup: the {bound} allowed cpu-shares is {got}")
        self._pair(d, "cpu.cfs_period_us", c.period, "cpu.cfs_quota_us", c.quota)
        if c.burst is not None:
            write_file(d, "cpu.cfs_burst_us", c.burst)
        if c.idle is not None:
            write_file(d, "cpu.idle", c.idle)
        self._pair(d, "cpu.rt_period_us", c.realtime_period, "cpu.rt_runtime_us", c.realtime_runtime)

    @staticmethod
    def _pair(d: str, period_file: str, period: int | None, value_file: str, value: int | None) -> None:
        """Write a period and the budget within it. The kernel validates each write against the
        other's current value, so a shorter period can be refused (EINVAL) until the budget is
        lowered: then write the budget first and retry the period."""
        retry_period = False
        if period is not None:
            try:
                write_file(d, period_file, period)
            except CgroupError as err:
                if err.errno != errno.EINVAL or value is None:
                    raise
                retry_period = True
        if value is not None:
            write_file(d, value_file, value)
            if retry_period:
                write_file(d, period_file, period if period is not None else 0)

    def _set_blkio(self, b: BlockIOResources) -> None:
        d = self._dir("blkio", "block I/O limits")
        # Kernels with BFQ but without CFQ only have the blkio.bfq.* weight files.
        if not os.path.exists(os.path.join(d, "blkio.weight")) and os.path.exists(
            os.path.join(d, "blkio.bfq.weight")
        ):
            weight_file, weight_device_file = "blkio.bfq.weight", "blkio.bfq.weight_device"
        else:
            weight_file, weight_device_file = "blkio.weight", "blkio.weight_device"
        if b.weight is not None:
            write_file(d, weight_file, b.weight)
        if b.leaf_weight is not None:
            write_file(d, "blkio.leaf_weight", b.leaf_weight)
        for wd in b.weight_device:
            if wd.weight is not None:
                write_file(d, weight_device_file, f"{wd.major}:{wd.minor} {wd.weight}")
            if wd.leaf_weight is not None:
                write_file(d, "blkio.leaf_weight_device", f"{wd.major}:{wd.minor} {wd.leaf_weight}")
        for name, devices in (
            ("blkio.throttle.read_bps_device", b.throttle_read_bps),
            ("blkio.throttle.write_bps_device", b.throttle_write_bps),
            ("blkio.throttle.read_iops_device", b.throttle_read_iops),
            ("blkio.throttle.write_iops_device", b.throttle_write_iops),
        ):
            for td in devices:
                write_file(d, name, f"{td.major}:{td.minor} {td.rate}")

    # ---- freezer --------------------------------------------------------------------------------

    def _unified_freezer(self) -> str | None:
        """Hybrid hosts without a v1 freezer can still freeze through the cgroup2 directory."""
        d = self.paths.get("")
        if d is None:
            return None
        from .v2 import has_freeze

        return d if has_freeze(d) else None

    def freeze(self) -> None:
        d = self.paths.get("freezer")
        if d is None:
            unified = self._unified_freezer()
            if unified is None:
                raise CgroupError("cgroup: cannot freeze: the freezer controller is not mounted")
            from .v2 import v2_set_frozen

            v2_set_frozen(unified, True)
            return
        deadline = time.monotonic() + _FREEZE_TIMEOUT
        attempt = 0
        while True:
            write_file(d, "freezer.state", "FROZEN")
            state = read_file(d, "freezer.state").strip()
            if state == "FROZEN":
                return
            if state != "FREEZING":
                raise CgroupError(f"cgroup: unexpected freezer state {state} after writing FROZEN")
            if time.monotonic() >= deadline:
                write_file(d, "freezer.state", "THAWED")
                raise CgroupError(f"cgroup: unable to freeze {d}: still FREEZING after {_FREEZE_TIMEOUT}s")
            attempt += 1
            if attempt % 50 == 0:
                # A process forking fast can keep the freezer from converging; a brief thaw resets it.
                write_file(d, "freezer.state", "THAWED")
                time.sleep(0.01)
            else:
                time.sleep(0.001 if attempt < 20 else 0.005)

    def thaw(self) -> None:
        d = self.paths.get("freezer")
        if d is None:
            unified = self._unified_freezer()
            if unified is None:
                raise CgroupError("cgroup: cannot thaw: the freezer controller is not mounted")
            from .v2 import v2_set_frozen

            v2_set_frozen(unified, False)
            return
        write_file(d, "freezer.state", "THAWED")
        state = read_file(d, "freezer.state").strip()
        if state != "THAWED":
            raise CgroupError(f"cgroup: unable to thaw {d}: freezer state is {state}")

    def is_frozen(self) -> bool:
        d = self.paths.get("freezer")
        if d is None:
            unified = self._unified_freezer()
            if unified is None:
                return False
            from .v2 import v2_frozen_state

            return v2_frozen_state(unified)
        text = read_optional(d, "freezer.state")
        return text is not None and text.strip() == "FROZEN"

    # ---- statistics -----------------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        d = self.paths.get("memory")
        if d is None:
            return 0
        from common.cgroups.stats import v1_oom_control

        return v1_oom_control(d).get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        from .stats import v1_stats

        return v1_stats(self.paths)
