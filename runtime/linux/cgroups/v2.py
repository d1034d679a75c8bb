"""cgroup v2 (unified hierarchy): one directory per container."""

from __future__ import annotations

import errno
import os
import time

from common.cgroups import CgroupError, parse_flat_keyed, read_optional

from .devices import target_state
from .manager import CgroupManager, write_file
from .resources import parse_resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .resources import BlockIOResources, CpuResources, MemoryResources

# SIGKILL is 9 on every Linux architecture (spares importing signal on every create).
_SIGKILL = 9

_FREEZE_TIMEOUT = 5.0

# ---- freezer (also used by the v1 manager in hybrid mode when there is no v1 freezer) ------------


def has_freeze(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, "cgroup.freeze"))


def v2_set_frozen(directory: str, frozen: bool, timeout: float = _FREEZE_TIMEOUT) -> None:
    if not has_freeze(directory):
        raise CgroupError(f"cgroup: freezing needs cgroup.freeze, which {directory} does not have")
    want = "1" if frozen else "0"
    write_file(directory, "cgroup.freeze", want)
    # The write only requests the change; cgroup.events reports when every task has stopped.
    deadline = time.monotonic() + timeout
    delay = 0.001
    while v2_frozen_state(directory) != frozen:
        if time.monotonic() >= deadline:
            if frozen:
                write_file(directory, "cgroup.freeze", "0")
            action = "freeze" if frozen else "thaw"
            raise CgroupError(
                f"cgroup: unable to {action} {directory}: processes did not settle in {timeout}s"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def v2_frozen_state(directory: str) -> bool:
    text = read_optional(directory, "cgroup.events")
    if text is None:
        return False
    return parse_flat_keyed(text).get("frozen", 0) == 1


# ---- conversions from v1-style OCI values (the same formulas runc uses) --------------------------


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000]."""
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    return 1 + ((weight - 10) * 9999) // 990


def _limit_str(value: int) -> str:
    return "max" if value < 0 else str(value)


class V2Manager(CgroupManager):
    version = 2

    def __init__(self, path: str, mountpoint: str, created: list[str] | None = None) -> None:
        super().__init__({"": path}, created)
        self.mountpoint = mountpoint

    @property
    def path(self) -> str:
        return self.paths[""]

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["mountpoint"] = self.mountpoint
        return d

    def primary_dir(self) -> str:
        return self.path

    def _prepare(self, directory: str) -> None:
        """Enable every available controller from the hierarchy root down to our parent, like runc.

        Without this, a fresh cgroup has no memory.max/cpu.max/... files to write limits into."""
        controllers = (read_optional(self.mountpoint, "cgroup.controllers") or "").split()
        if not controllers:
            return
        rel = os.path.relpath(directory, self.mountpoint)
        if rel == "." or rel == ".." or rel.startswith("../"):
            return
        level = self.mountpoint
        for part in rel.split("/"):
            # Enabling at each ancestor (root included) is what makes the files appear one level down.
            self._enable(level, controllers)
            level = os.path.join(level, part)

    @staticmethod
    def _enable(directory: str, controllers: list[str]) -> None:
        available = set((read_optional(directory, "cgroup.controllers") or "").split())
        enabled = set((read_optional(directory, "cgroup.subtree_control") or "").split())
        for c in controllers:
            if c in available and c not in enabled:
                try:
                    write_file(directory, "cgroup.subtree_control", f"+{c}")
                except CgroupError:
                    # EBUSY when the directory holds processes ("no internal processes" rule), or
                    # not delegated to us: the limit that needs it will report the missing file.
                    pass

    # ---- resources ------------------------------------------------------------------------------

    def set_resources(self, resources: dict[str, Any]) -> None:
        r = parse_resources(resources)
        d = self.path
        if r.pids_limit is not None:
            write_file(d, "pids.max", _limit_str(r.pids_limit))
        self._set_memory(d, r.memory)
        self._set_io(d, r.block_io)
        self._set_cpu(d, r.cpu)
        if r.devices:
            if not target_state(r.devices).is_allow_all():
                raise CgroupError("device rules on cgroup v2 are not supported yet")
        if r.cpu.cpus:
            write_file(d, "cpuset.cpus", r.cpu.cpus)
        if r.cpu.mems:
            write_file(d, "cpuset.mems", r.cpu.mems)
        for size, limit in r.hugepage_limits:
            write_file(d, f"hugetlb.{size}.max", _limit_str(limit))
            if os.path.exists(os.path.join(d, f"hugetlb.{size}.rsvd.max")):
                write_file(d, f"hugetlb.{size}.rsvd.max", _limit_str(limit))
        for dev, limits in r.rdma.items():
            parts = [dev]
            if "hcaHandles" in limits:
                parts.append(f"hca_handle={limits['hcaHandles']}")
            if "hcaObjects" in limits:
                parts.append(f"hca_object={limits['hcaObjects']}")
            write_file(d, "rdma.max", " ".join(parts))
        # Raw files last so they can override anything above; realtime and net_cls/net_prio have no
        # v2 equivalent and are ignored, as runc does.
        for name, value in r.unified.items():
            self._set_unified(name, value)

    def _set_memory(self, d: str, m: MemoryResources) -> None:
        if m.limit is None and m.swap is None and m.reservation is None:
            return
        if m.swap is not None:
            # OCI swap is memory+swap (the v1 meaning); v2's memory.swap.max is swap alone.
            if m.swap == -1:
                swap = "max"
            elif m.limit is None or m.limit == -1:
                raise CgroupError("cgroup: a swap limit needs a memory limit")
            elif m.swap < m.limit:
                raise CgroupError("cgroup: memory+swap limit should be >= memory limit")
            else:
                swap = str(m.swap - m.limit)
            try:
                write_file(d, "memory.swap.max", swap)
            except CgroupError as err:
                # No swap accounting in this kernel: "no limit" and "no swap" are already true.
                if not (err.errno == errno.ENOENT and swap in ("max", "0")):
                    raise
        if m.limit is not None:
            write_file(d, "memory.max", _limit_str(m.limit))
        if m.reservation is not None:
            write_file(d, "memory.low", _limit_str(m.reservation))

    def _set_io(self, d: str, b: BlockIOResources) -> None:
        if not b.is_set():
            return
        bfq = os.path.exists(os.path.join(d, "io.bfq.weight"))
        if b.weight:
            if bfq:
                write_file(d, "io.bfq.weight", b.weight)
            else:
                write_file(d, "io.weight", blkio_to_io_weight(b.weight))
        if bfq:  # only BFQ has per-device weights
            for wd in b.weight_device:
                if wd.weight:
                    write_file(d, "io.bfq.weight", f"{wd.major}:{wd.minor} {wd.weight}")
        for key, devices in (
            ("rbps", b.throttle_read_bps),
            ("wbps", b.throttle_write_bps),
            ("riops", b.throttle_read_iops),
            ("wiops", b.throttle_write_iops),
        ):
            for td in devices:
                write_file(d, "io.max", f"{td.major}:{td.minor} {key}={td.rate}")

    def _set_cpu(self, d: str, c: CpuResources) -> None:
        if c.shares:
            write_file(d, "cpu.weight", shares_to_weight(c.shares))
        if c.idle is not None:
            write_file(d, "cpu.idle", c.idle)
        if c.quota is not None or c.period is not None:
            if c.quota is None:
                # Only the period changes: keep whatever quota is in force.
                quota = (read_optional(d, "cpu.max") or "max").split()[0]
            else:
                quota = _limit_str(c.quota)
            value = quota if c.period is None else f"{quota} {c.period}"
            write_file(d, "cpu.max", value)
        if c.burst is not None:
            write_file(d, "cpu.max.burst", c.burst)

    def _set_unified(self, name: str, value: str) -> None:
        if "/" in name or name in (".", ".."):
            raise CgroupError(f"cgroup: unified resource {name!r} must be a file name")
        try:
            write_file(self.path, name, value)
        except CgroupError as err:
            if err.errno in (errno.ENOENT, errno.EPERM, errno.EACCES):
                controller = name.split(".", 1)[0]
                available = (read_optional(self.path, "cgroup.controllers") or "").split()
                if controller != "cgroup" and controller not in available:
                    raise CgroupError(
                        f"cgroup: unified resource {name!r} can't be set: controller {controller!r} not available"
                    ) from None
            raise

    # ---- freezer --------------------------------------------------------------------------------

    def freeze(self) -> None:
        v2_set_frozen(self.path, True)

    def thaw(self) -> None:
        v2_set_frozen(self.path, False)

    def is_frozen(self) -> bool:
        return v2_frozen_state(self.path)

    def kill_all(self, sig: int) -> None:
        # cgroup.kill (5.14+) kills the whole subtree atomically, even processes forking right now.
        if sig == _SIGKILL and os.path.exists(os.path.join(self.path, "cgroup.kill")):
            write_file(self.path, "cgroup.kill", "1")
            return
        super().kill_all(sig)

    # ---- statistics -----------------------------------------------------------------------------

    def oom_kill_count(self) -> int:
        from common.cgroups.stats import v2_memory_events

        return v2_memory_events(self.path).get("oom_kill", 0)

    def stats(self) -> dict[str, Any]:
        from .stats import v2_stats

        return v2_stats(self.path)
