"""Find cgroup hierarchies from /proc/self/mountinfo and the caller's cgroups from /proc/self/cgroup."""

from __future__ import annotations

import os

from .common import CgroupError


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


_OCTAL_DIGITS = frozenset("01234567")


def _unescape(field: str) -> str:
    """Undo mountinfo's \\NNN octal escapes (space, tab, newline, backslash in paths)."""
    if "\\" not in field:
        return field
    pieces = field.split("\\")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:3]
        if len(code) == 3 and _OCTAL_DIGITS.issuperset(code):
            out.append(chr(int(code, 8)) + piece[3:])
        else:
            out.append("\\" + piece)  # not an escape: keep the backslash as it was
    return "".join(out)


_V1_OPTIONS_NOT_CONTROLLERS = {
    "rw",
    "ro",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
}


def parse_mountinfo(text: str) -> list[CgroupMount]:
    mounts: list[CgroupMount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype = rfields[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        root = _unescape(fields[3])
        mountpoint = _unescape(fields[4])
        if fstype == "cgroup2":
            mounts.append(CgroupMount(mountpoint, root, 2, ()))
            continue
        controllers = tuple(
            opt
            for opt in rfields[2].split(",")
            if opt not in _V1_OPTIONS_NOT_CONTROLLERS and not opt.startswith("release_agent=")
        )
        if controllers:
            mounts.append(CgroupMount(mountpoint, root, 1, controllers))
    return mounts


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


def layout_from(mountinfo: str) -> CgroupLayout:
    mounts = _pick(parse_mountinfo(mountinfo))
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
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            return layout_from(f.read())
    except OSError as err:
        raise CgroupError(f"cgroup: reading /proc/self/mountinfo failed: {err.strerror}") from None


def own_cgroups() -> dict[str, str]:
    try:
        with open("/proc/self/cgroup", encoding="utf-8", errors="surrogateescape") as f:
            return parse_proc_cgroup(f.read())
    except OSError as err:
        raise CgroupError(f"cgroup: reading /proc/self/cgroup failed: {err.strerror}") from None
