"""Type checks for the JSON body of container create.

Docker decodes these bodies into Go structs, so a field of the wrong type never reaches its
logic; pydockerd gets plain dicts and checks them here, once, before anything is stored.
A wrong type is the client's error: 400 with the field's name and the type it should have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockerd.engine.errors import InvalidParameter

Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_strslice(v: Any) -> bool:  # Docker's strslice: one string or an array of strings
    return isinstance(v, str) or _is_str_list(v)


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _is_restart_policy(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and _is_str(v.get("Name", ""))
        and (v.get("MaximumRetryCount") is None or _is_int(v.get("MaximumRetryCount")))
    )


def _is_log_config(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and _is_str(v.get("Type", ""))
        and (v.get("Config") is None or _is_str_map(v["Config"]))
    )


def _is_ulimits(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(u, dict)
        and _is_str(u.get("Name"))
        and _is_int(u.get("Soft", 0))
        and _is_int(u.get("Hard", 0))
        for u in v
    )


_NAMES: dict[Check, str] = {
    _is_int: "an integer",
    _is_str: "a string",
    _is_bool: "a boolean",
    _is_str_list: "an array of strings",
    _is_strslice: "a string or an array of strings",
    _is_str_map: "an object of strings",
    _is_object: "an object",
    _is_restart_policy: "an object {Name: string, MaximumRetryCount: integer}",
    _is_log_config: "an object {Type: string, Config: object of strings}",
    _is_ulimits: "an array of {Name: string, Soft: integer, Hard: integer}",
}

CONFIG: dict[str, Check] = {
    **dict.fromkeys(
        ("Hostname", "Domainname", "User", "WorkingDir", "StopSignal", "Image", "MacAddress"), _is_str
    ),
    **dict.fromkeys(
        (
            "AttachStdin",
            "AttachStdout",
            "AttachStderr",
            "Tty",
            "OpenStdin",
            "StdinOnce",
            "NetworkDisabled",
            "ArgsEscaped",
        ),
        _is_bool,
    ),
    "StopTimeout": _is_int,
    **dict.fromkeys(("Cmd", "Entrypoint", "Shell"), _is_strslice),
    **dict.fromkeys(("Env", "OnBuild"), _is_str_list),
    "Labels": _is_str_map,
    **dict.fromkeys(("ExposedPorts", "Volumes", "Healthcheck", "HostConfig", "NetworkingConfig"), _is_object),
}

HOST_CONFIG: dict[str, Check] = {
    **dict.fromkeys(
        (
            "Memory",
            "MemorySwap",
            "MemoryReservation",
            "NanoCpus",
            "CpuShares",
            "CpuQuota",
            "CpuPeriod",
            "PidsLimit",
            "ShmSize",
            "BlkioWeight",
            "OomScoreAdj",
            "MemorySwappiness",
            "KernelMemory",
        ),
        _is_int,
    ),  # fmt: skip
    **dict.fromkeys(
        ("AutoRemove", "Privileged", "ReadonlyRootfs", "OomKillDisable", "Init", "PublishAllPorts"), _is_bool
    ),
    **dict.fromkeys(
        (
            "CpusetCpus",
            "CpusetMems",
            "NetworkMode",
            "CgroupParent",
            "Runtime",
            "IpcMode",
            "PidMode",
            "UTSMode",
            "UsernsMode",
            "CgroupnsMode",
            "Cgroup",
            "Isolation",
            "ContainerIDFile",
        ),
        _is_str,
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "Binds",
            "CapAdd",
            "CapDrop",
            "Dns",
            "DnsOptions",
            "DnsSearch",
            "ExtraHosts",
            "SecurityOpt",
            "GroupAdd",
            "Links",
            "VolumesFrom",
            "MaskedPaths",
            "ReadonlyPaths",
            "DeviceCgroupRules",
        ),
        _is_str_list,
    ),  # fmt: skip
    **dict.fromkeys(("Sysctls", "Tmpfs", "Annotations"), _is_str_map),
    "PortBindings": _is_object,
    "RestartPolicy": _is_restart_policy,
    "LogConfig": _is_log_config,
    "Ulimits": _is_ulimits,
}


def check_types(body: dict[str, Any], fields: dict[str, Check], prefix: str = "") -> None:
    """Raise InvalidParameter for the first field whose value has the wrong JSON type (null is always allowed)."""
    for key, check in fields.items():
        value = body.get(key)
        if value is not None and not check(value):
            raise InvalidParameter(f"invalid {prefix}{key}: want {_NAMES[check]}, got {_json_type(value)}")


def json_kind(value: Any) -> str:
    """A JSON value's type in Go's words, as its decoder names them in errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json_type(value: Any) -> str:
    return {
        "bool": "a boolean",
        "number": "a number",
        "string": "a string",
        "array": "an array",
        "object": "an object",
    }.get(json_kind(value), "null")


def check_create(body: dict[str, Any]) -> None:
    check_types(body, CONFIG)
    check_types(body.get("HostConfig") or {}, HOST_CONFIG, "HostConfig.")
