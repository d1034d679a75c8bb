"""`pyrunc update`: change a live container's cgroup limits, from flags or a resources JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux.cgroups import CgroupError, load_manager


def parse_bytes(text: str) -> int:
    text = text.strip()
    if text == "-1":
        return -1
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    lowered = text.lower().rstrip("b") if len(text) > 1 and text.lower()[-2] in units else text.lower()
    if lowered and lowered[-1] in units:
        number, mult = lowered[:-1], units[lowered[-1]]
    else:
        number, mult = lowered, 1
    try:
        return int(float(number) * mult)
    except ValueError:
        raise PyruncError(f"invalid size {text!r}") from None


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = value


def update(root: str, container_id: str, resources_file: str | None, flags: dict[str, Any]) -> None:
    cs = statemod.load(root, container_id)
    if statemod.status(root, cs) == "stopped":
        raise PyruncError(f"container {container_id} is stopped")
    change: dict[str, Any] = {}
    if resources_file:
        try:
            raw = sys.stdin.read() if resources_file == "-" else open(resources_file).read()
            change = json.loads(raw)
        except OSError as exc:
            raise PyruncError(f"cannot read {resources_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise PyruncError(f"invalid resources JSON: {exc}") from None
        if not isinstance(change, dict):
            raise PyruncError("invalid resources JSON: want an object")
    table: dict[str, tuple[str, str, Callable[[str], Any]]] = {
        "memory": ("memory", "limit", parse_bytes),
        "memory_reservation": ("memory", "reservation", parse_bytes),
        "memory_swap": ("memory", "swap", parse_bytes),
        "kernel_memory": ("memory", "kernel", parse_bytes),
        "cpu_shares": ("cpu", "shares", int),
        "cpu_quota": ("cpu", "quota", int),
        "cpu_period": ("cpu", "period", int),
        "cpu_rt_runtime": ("cpu", "realtimeRuntime", int),
        "cpu_rt_period": ("cpu", "realtimePeriod", int),
        "cpuset_cpus": ("cpu", "cpus", str),
        "cpuset_mems": ("cpu", "mems", str),
        "pids_limit": ("pids", "limit", int),
        "blkio_weight": ("blockIO", "weight", int),
    }
    for name, value in flags.items():
        if value is None:
            continue
        group, key, conv = table[name]
        try:
            change.setdefault(group, {})[key] = conv(value)
        except ValueError:
            raise PyruncError(f"invalid value for --{name.replace('_', '-')}: {value!r}") from None
    resources = (cs.config.setdefault("linux", {})).setdefault("resources", {})
    try:
        load_manager(cs.cgroup).set_resources(change)
    except CgroupError as exc:
        raise PyruncError(str(exc)) from None
    _merge(resources, change)
    cs.save(root)
