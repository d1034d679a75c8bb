"""`--device` and `--device-cgroup-rule`: host device nodes made inside the container, and the
devices-cgroup rules that let it use them, as dockerd builds them.

HostConfig.Devices entries are checked at create (absolute paths, permissions within "rwm");
the host's nodes are looked up at start, as dockerd does (a device may come and go in between):
a node gives one device with the host node's type, numbers, mode and owner; a directory gives
every node below it; anything else is dockerd's "error gathering device information".
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from typing import Any

from dockerd.engine.errors import InvalidParameter

# dockerd's deviceCgroupRuleRegex: TYPE MAJOR:MINOR ACCESS, '*' for any number.
_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


@dataclass(frozen=True)
class Mapping:
    host: str
    container: str
    permissions: str


def mappings(host_config: dict[str, Any]) -> list[Mapping]:
    """HostConfig.Devices, checked (create) and with dockerd's defaults filled in."""
    out = []
    for entry in host_config.get("Devices") or []:
        if not isinstance(entry, dict):
            raise InvalidParameter("invalid device mapping: each entry must be an object")
        on_host = str(entry.get("PathOnHost") or "")
        in_container = str(entry.get("PathInContainer") or "") or on_host
        permissions = str(entry.get("CgroupPermissions") or "") or "rwm"
        if not on_host.startswith("/"):
            raise InvalidParameter(f"{on_host or repr(on_host)} is not an absolute path")
        if not in_container.startswith("/"):
            raise InvalidParameter(f"{in_container} is not an absolute path")
        if any(c not in "rwm" for c in permissions) or len(set(permissions)) != len(permissions):
            raise InvalidParameter(f"bad mode specified: {permissions}")
        out.append(Mapping(on_host, in_container, permissions))
    return out


def cgroup_rules(host_config: dict[str, Any]) -> list[dict[str, Any]]:
    """HostConfig.DeviceCgroupRules as OCI allow rules (-1 is a wildcard, as in dockerd's specs)."""
    out = []
    for text in host_config.get("DeviceCgroupRules") or []:
        m = _RULE.match(str(text))
        if m is None:
            raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
        kind, major, minor, access = m.groups()
        out.append(
            {"allow": True, "type": kind, "major": _number(major), "minor": _number(minor), "access": access}
        )
    return out


def _number(text: str) -> int:
    return -1 if text == "*" else int(text)


def gather(maps: list[Mapping]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """linux.devices and their allow rules for MAPS, from the host's nodes (start time)."""
    devices: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for m in maps:
        found = _from_path(m)
        if not found:
            raise InvalidParameter(
                f'error gathering device information while adding custom device "{m.host}": {_why(m.host)}'
            )
        for dev in found:
            devices.append(dev)
            rules.append(
                {
                    "allow": True,
                    "type": dev["type"],
                    "major": dev["major"],
                    "minor": dev["minor"],
                    "access": m.permissions,
                }
            )
    return devices, rules


def _from_path(m: Mapping) -> list[dict[str, Any]]:
    resolved = os.path.realpath(m.host) if os.path.islink(m.host) else m.host
    node = _node(resolved, m.container)
    if node is not None:
        return [node]
    if not os.path.isdir(resolved):
        return []
    found = []
    for dirpath, _dirs, files in os.walk(resolved):
        for name in sorted(files):  # device nodes are never directories
            path = os.path.join(dirpath, name)
            node = _node(path, m.container + path[len(resolved) :])
            if node is not None:
                found.append(node)
    return found


def _node(path: str, in_container: str) -> dict[str, Any] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {
        "path": in_container, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
    }  # fmt: skip


def _why(path: str) -> str:
    try:
        os.stat(path)
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    return "not a device node"
