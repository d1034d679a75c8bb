"""Where cgroups are: the mounted hierarchies (from the mount table) and a process's cgroups in them
(/proc/PID/cgroup), seen as pyrunc sees them, so the shim finds a task's cgroup where pyrunc made it.

The layout is unified (cgroup2 on /sys/fs/cgroup: one directory per cgroup), hybrid (v1
hierarchies plus a cgroup2 mount without controllers) or legacy (v1 only); pyrunc manages v2
only on a unified host, and so the shim reads v2 statistics only there.
"""

from __future__ import annotations

import os

from common import mountinfo
from common.cgroups import CgroupError


class CgroupMount:
    """One mounted cgroup hierarchy; treated as an immutable value."""

    __slots__ = ("mountpoint", "root", "version", "controllers")

    def __init__(self, mountpoint: str, root: str, version: int, controllers: tuple[str, ...]) -> None:
        self.mountpoint = mountpoint
        self.root = root  # the path inside the hierarchy that is visible at mountpoint
        self.version = version  # 1 or 2
        self.controllers = controllers  # v1 only: e.g. ("cpu", "cpuacct") or ("name=systemd",)

    def __repr__(self) -> str:
        return (
            f"CgroupMount(mountpoint={self.mountpoint!r}, root={self.root!r}, "
            f"version={self.version!r}, controllers={self.controllers!r})"
        )

    def dir_for(self, cgroup_path: str) -> str:
        """Directory of a hierarchy-absolute cgroup path, seen through this mount."""
        rel = os.path.relpath(cgroup_path, self.root)
        if rel == "." or rel == ".." or rel.startswith("../"):
            # Our own cgroup is outside the mounted subtree (e.g. a bind-mounted sub-cgroup):
            # the best we can see is the mount itself.
            rel = ""
        return os.path.normpath(os.path.join(self.mountpoint, rel.lstrip("/")))


class CgroupLayout:
    """What this process sees: unified (v2 only), hybrid (v1 + a cgroup2 mount) or legacy (v1 only)."""

    __slots__ = ("v1", "v2", "unified")

    def __init__(self, v1: tuple[CgroupMount, ...], v2: CgroupMount | None, unified: bool) -> None:
        self.v1 = v1
        self.v2 = v2
        # True when /sys/fs/cgroup itself is cgroup2 (or no v1 hierarchy exists at all).
        self.unified = unified


_V1_OPTIONS_NOT_CONTROLLERS = {
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
}


def cgroup_mounts(table: list[mountinfo.Mount]) -> list[CgroupMount]:
    """The cgroup hierarchies of a mount table (every mount of each: binds included)."""
    mounts: list[CgroupMount] = []
    for m in table:
        if m.fstype == "cgroup2":
            mounts.append(CgroupMount(m.point, m.root, 2, ()))
        elif m.fstype == "cgroup":
            controllers = tuple(
                opt
                for opt in m.super_options.split(",")
                if opt not in _V1_OPTIONS_NOT_CONTROLLERS and not opt.startswith("release_agent=")
            )
            if controllers:
                mounts.append(CgroupMount(m.point, m.root, 1, controllers))
    return mounts


def parse_mountinfo(text: str) -> list[CgroupMount]:
    return cgroup_mounts(mountinfo.parse(text))


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map each controller (and 'name=...' hierarchy) to the cgroup path; '' is the v2 entry."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if controllers == "":
            result[""] = path
            continue
        for c in controllers.split(","):
            result[c] = path
    return result


def _pick(mounts: list[CgroupMount]) -> list[CgroupMount]:
    """One mount per hierarchy: the same hierarchy may be mounted several times (bind mounts)."""
    chosen: dict[tuple[int, tuple[str, ...]], CgroupMount] = {}
    for m in mounts:
        key = (m.version, tuple(sorted(m.controllers)))
        current = chosen.get(key)
        # Prefer a mount of the hierarchy's real root; then the canonical /sys/fs/cgroup location.
        if current is None or (current.root != "/" and m.root == "/"):
            chosen[key] = m
    return list(chosen.values())


def layout_from(text: str) -> CgroupLayout:
    """The layout a mountinfo table shows."""
    return _layout(cgroup_mounts(mountinfo.parse(text)))


def _layout(found: list[CgroupMount]) -> CgroupLayout:
    mounts = _pick(found)
    v1 = tuple(m for m in mounts if m.version == 1)
    v2_mounts = [m for m in mounts if m.version == 2]
    canonical = [m for m in v2_mounts if m.mountpoint == "/sys/fs/cgroup"]
    v2 = canonical[0] if canonical else (v2_mounts[0] if v2_mounts else None)
    unified = bool(canonical) or (not v1 and v2 is not None)
    if not v1 and v2 is None:
        raise CgroupError("cgroup: no cgroup filesystem is mounted")
    return CgroupLayout(v1=() if unified else v1, v2=v2, unified=unified)


def current_layout() -> CgroupLayout:
    try:
        return layout_from(mountinfo.read_text())
    except OSError as err:
        raise CgroupError(f"cgroup: reading /proc/self/mountinfo failed: {err.strerror}") from None


def own_cgroups() -> dict[str, str]:
    return cgroups_of("self")


def cgroups_of(pid: int | str) -> dict[str, str]:
    """/proc/PID/cgroup: each controller (and "name=..." hierarchy) -> path; "" is the cgroup2 entry."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="surrogateescape") as f:
            return parse_proc_cgroup(f.read())
    except OSError as err:
        raise CgroupError(f"cgroup: reading /proc/{pid}/cgroup failed: {err.strerror}") from None


class ProcessCgroups:
    """The cgroup directories of one process, as pyrunc's manager holds them: on a unified host
    version 2 and {"": directory}; otherwise version 1 and controller -> directory, for every v1
    hierarchy the process is in (co-mounted controllers share a directory; "name=systemd" as is)."""

    __slots__ = ("version", "paths")

    def __init__(self, version: int, paths: dict[str, str]) -> None:
        self.version = version
        self.paths = paths

    def __repr__(self) -> str:
        return f"ProcessCgroups(version={self.version}, paths={self.paths!r})"


def process_cgroups(pid: int | str, layout: CgroupLayout | None = None) -> ProcessCgroups:
    """Where PID's cgroups are. CgroupError if PID is gone or no hierarchy holds it."""
    layout = current_layout() if layout is None else layout
    own = cgroups_of(pid)
    if layout.unified:
        if layout.v2 is None or "" not in own:
            raise CgroupError(f"cgroup: process {pid} is in no cgroup2 cgroup")
        return ProcessCgroups(2, {"": layout.v2.dir_for(own[""])})
    paths: dict[str, str] = {}
    for mount in layout.v1:
        path = next((own[c] for c in mount.controllers if c in own), None)
        if path is not None:
            for controller in mount.controllers:
                paths[controller] = mount.dir_for(path)
    if not paths:
        raise CgroupError(f"cgroup: process {pid} is in no cgroup v1 hierarchy")
    return ProcessCgroups(1, paths)
