"""GET /containers/{id}/json and the rows of GET /containers/json: a record in dockerd's shape."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from common.humanize import human_duration
from dockerd.engine.binds import parse_bind
from dockerd.engine.container import links
from dockerd.engine.container.state import Container
from dockerd.engine.errors import InvalidParameter
from dockerd.engine.logs import parse_time
from dockerd.health.state import HealthState, status_text
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def inspect(d: Containers, c: Container) -> dict[str, Any]:
    """GET /containers/{id}/json (ExecIDs are the exec backend's, sizes sizes.py's)."""
    state = dict(c.state)
    state["Status"] = c.status()
    if state.get("Restarting"):
        state["Running"] = True  # dockerd counts a container between restarts as running (SetRestarting)
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": os.path.join(d.store.dir(c.id), "resolv.conf"),
        "HostnamePath": os.path.join(d.store.dir(c.id), "hostname"),
        "HostsPath": os.path.join(d.store.dir(c.id), "hosts"),
        # As dockerd: the json-file log once the container has started (its logger made the file).
        "LogPath": d.stdio.log_path(c) if c.has_been_started and d.stdio.log_settings(c).readable else "",
        "Name": f"/{c.name}",
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        # As dockerd's inspect: the daemon's default-ulimits merged in (not stored).
        "HostConfig": _host_config_view(
            {
                **c.host_config,
                "Ulimits": d.security.merged_ulimits(c.host_config.get("Ulimits"))
                or c.host_config.get("Ulimits"),
                "Links": links.view(d, c),
            }
        ),  # fmt: skip
        "GraphDriver": {"Data": None, "Name": "overlay2"},
        "Mounts": _mounts_view(c),
        "Config": _config_view(c),
        "NetworkSettings": d.networking.settings(c),
    }


def summary(d: Containers, c: Container) -> dict[str, Any]:
    """A container as GET /containers/json lists it."""
    return {
        "Id": c.id,
        "Names": [f"/{c.name}"],
        "Image": c.image_ref,
        "ImageID": c.image_id,
        "Command": _summary_command(c.path, c.args),
        "Created": _unix(c.created),
        "Ports": d.networking.summary_ports(c),
        "Labels": c.config.get("Labels") or {},
        "State": c.status(),
        "Status": _human_status(c),
        "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": d.networking.endpoints(c)},
        "Mounts": _mounts_view(c),
    }


def _summary_command(path: str, args: list[str]) -> str:
    """As dockerd's container list: arguments with a space are single-quoted."""
    return " ".join([path, *(f"'{a}'" if " " in a else a for a in args)])


def _unix(stamp: str) -> int:
    return int(parse_time(stamp))


def _human_status(c: Container) -> str:
    status = c.status()
    if status == "running" or status == "paused":
        since = time.time() - parse_time(c.state.get("StartedAt") or c.created)
        text = f"Up {human_duration(since)}"
        if status == "paused":
            return text + " (Paused)"
        health = c.state.get("Health")  # as dockerd: "(healthy)", "(health: starting)"...
        return f"{text} ({status_text(HealthState.from_api(health))})" if health else text
    if status == "exited":
        ago = time.time() - parse_time(c.state.get("FinishedAt") or c.created)
        return f"Exited ({c.state.get('ExitCode', 0)}) {human_duration(ago)} ago"
    if status == "restarting":
        ago = time.time() - parse_time(c.state.get("FinishedAt") or c.created)
        return f"Restarting ({c.state.get('ExitCode', 0)}) {human_duration(ago)} ago"
    return "Created"


def _config_view(c: Container) -> dict[str, Any]:
    cfg = dict(c.config)
    defaults = {
        "Hostname": c.id[:12], "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
        "Image": c.image_ref, "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
    }  # fmt: skip
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    if cfg.get("Entrypoint") == [""]:
        cfg["Entrypoint"] = None  # `--entrypoint ""`: dockerd shows no entrypoint at all
    return cfg


def _host_config_view(host: dict[str, Any]) -> dict[str, Any]:
    view = {
        "Binds": None, "NetworkMode": "default", "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
        "AutoRemove": False, "CapAdd": None, "CapDrop": None, "Privileged": False, "ReadonlyRootfs": False,
        "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "CpusetCpus": "", "PidsLimit": None,
        "LogConfig": {"Type": "json-file", "Config": {}}, "ShmSize": 67108864, "Init": None, "Tmpfs": None,
        "SecurityOpt": None, "Ulimits": None, "OomKillDisable": False, "MaskedPaths": None,
        "ReadonlyPaths": None, "DeviceCgroupRules": None, "DeviceRequests": None, "ExtraHosts": None, "GroupAdd": None,
        "KernelMemory": 0, "KernelMemoryTCP": 0, "Links": None, "VolumesFrom": None,
    }  # fmt: skip
    view.update({k: v for k, v in host.items() if v is not None})
    if not view.get("ShmSize"):
        view["ShmSize"] = 67108864  # dockerd fills in its default (64 MiB) at create
    if view.get("MemorySwappiness") == -1:
        view["MemorySwappiness"] = (
            None  # -1 is "unset" (what the Docker CLI sends), which dockerd shows as null
        )
    if not view.get("IpcMode"):
        view["IpcMode"] = "private"  # dockerd's default-ipc-mode, filled in at create
    if not view.get("CgroupnsMode"):
        view["CgroupnsMode"] = (
            "host"  # the daemon's default filled in, as dockerd's on cgroup v1 (no cgroup namespace)
        )
    for key in ("Init", "Sysctls", "Tmpfs"):  # omitted when unset (omitempty in dockerd's HostConfig)
        if view.get(key) in (None, {}):
            view.pop(key, None)
    return view


def _mounts_view(c: Container) -> list[dict[str, Any]]:
    if c.mount_points:
        return lifecycle.inspect_view(c)
    host = c.host_config  # a record from before mount points were kept
    out = []
    for raw in host.get("Binds") or []:
        try:
            bind = parse_bind(raw)
        except InvalidParameter:
            continue  # (a record from before binds were checked at create)
        out.append(
            {
                "Type": "bind",
                "Source": bind.source,
                "Destination": bind.target,
                "Mode": bind.mode,
                "RW": not bind.read_only,
                "Propagation": bind.propagation,
            }
        )
    return out
