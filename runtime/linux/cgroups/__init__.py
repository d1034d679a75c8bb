"""cgroup management for pyrunc: v2 when /sys/fs/cgroup is cgroup2, otherwise the v1 hierarchies
(plus the cgroup2 mount in hybrid mode, so the container shows the same path everywhere)."""

from __future__ import annotations

import posixpath

from common.cgroups import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from common.cgroups.layout import CgroupMount

    from .devices import RUNC_DEFAULT_DEVICE_RULES, runc_default_devices
    from .manager import CgroupManager
    from .v1 import V1Manager
    from .v2 import V2Manager

__all__ = [
    "CgroupError",
    "CgroupManager",
    "RUNC_DEFAULT_DEVICE_RULES",
    "V1Manager",
    "V2Manager",
    "load_manager",
    "new_manager",
    "runc_default_devices",
]


def __getattr__(name: str) -> object:
    # Every pyrunc command imports this package, most only to call load_manager(): the submodules
    # load on first use, so a v1 host never imports v2 and `pyrunc state` no mountinfo parser.
    if name in ("RUNC_DEFAULT_DEVICE_RULES", "runc_default_devices"):
        from . import devices

        return getattr(devices, name)
    if name == "CgroupManager":
        from .manager import CgroupManager

        return CgroupManager
    if name == "V1Manager":
        from .v1 import V1Manager

        return V1Manager
    if name == "V2Manager":
        from .v2 import V2Manager

        return V2Manager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def clean_path(path: str) -> str:
    """Lexically clean a cgroup path so '..' can never climb above where it starts (like runc)."""
    absolute = path.startswith("/")
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned if absolute else cleaned.lstrip("/")


def _is_systemd_style(path: str) -> bool:
    return not path.startswith("/") and path.count(":") == 2


def _resolve(mount: CgroupMount, own: str | None, inner: str) -> str:
    if inner.startswith("/"):
        # Absolute: relative to the hierarchy root as this process sees it.
        return posixpath.join(mount.mountpoint, inner.lstrip("/"))
    # Relative: below the cgroup the calling process is in, in this hierarchy.
    return posixpath.join(mount.dir_for(own or "/"), inner)


def new_manager(cgroups_path: str | None, container_id: str) -> CgroupManager:
    """Manager for OCI linux.cgroupsPath.

    "/a/b" is under each hierarchy's root, "a/b" under the caller's own cgroup in each hierarchy.
    Without a path the container id is used as a relative path, which is what runc does (runc's
    default lands in the caller's cgroup, e.g. memory:/<caller's cgroup>/<id>)."""
    if cgroups_path and _is_systemd_style(cgroups_path):
        raise CgroupError("systemd cgroup driver is not supported")
    if not cgroups_path and not container_id:
        raise CgroupError("cgroup: neither a cgroupsPath nor a container id was given")
    inner = clean_path(cgroups_path or container_id)
    if inner in ("", "/"):
        raise CgroupError(f"cgroup: cgroupsPath {cgroups_path!r} would be a hierarchy root or our own cgroup")

    from common.cgroups.layout import current_layout, own_cgroups

    layout = current_layout()
    own = own_cgroups()
    if layout.unified and layout.v2 is not None:
        from .v2 import V2Manager

        return V2Manager(_resolve(layout.v2, own.get(""), inner), layout.v2.mountpoint)

    paths: dict[str, str] = {}
    for mount in layout.v1:
        own_path = next((own[c] for c in mount.controllers if c in own), None)
        directory = _resolve(mount, own_path, inner)
        for controller in mount.controllers:
            paths[controller] = directory
    if layout.v2 is not None:
        # Hybrid: also join the cgroup2 hierarchy at the same path, as runc does.
        paths[""] = _resolve(layout.v2, own.get(""), inner)
    from .v1 import V1Manager

    return V1Manager(paths)


def load_manager(saved: dict[str, Any]) -> CgroupManager:
    """Rebuild a manager from CgroupManager.to_dict() (as kept in the container's state.json)."""
    try:
        version = saved["version"]
        paths = {str(k): str(v) for k, v in dict(saved["paths"]).items()}
        created = [str(p) for p in saved.get("created", [])]
        if version == 1:
            from .v1 import V1Manager

            return V1Manager(paths, created)
        if version == 2:
            from .v2 import V2Manager

            return V2Manager(paths[""], str(saved["mountpoint"]), created)
    except (KeyError, TypeError, ValueError):
        pass
    raise CgroupError("cgroup: the saved cgroup state is invalid")
