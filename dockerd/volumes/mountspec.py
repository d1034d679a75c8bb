"""Mount specifications as dockerd parses them (moby's volume/mounts linux parser).

Three inputs: `Binds` strings (`-v src:dst[:mode]`, `-v /anonymous`), the `Mounts` API structs
(`--mount`), and `VolumesFrom` entries (`container[:ro|rw]`). Each gives a MountPoint, or an
InvalidParameter worded as dockerd words it. (dockerd answers some of these with 500; a
malformed spec is the client's fault, so pydockerd answers 400 with the same text.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dockerd.engine.errors import InvalidParameter
from dockerd.volumes.mountpoint import BIND, DEFAULT_PROPAGATION, TMPFS, VOLUME, MountPoint

RW_MODES = frozenset({"rw", "ro"})
LABEL_MODES = frozenset({"z", "Z"})  # SELinux relabelling: accepted, nothing to do without SELinux
PROPAGATION_MODES = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared"})
COPY_MODES = frozenset({"nocopy"})
CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated"})  # macOS only; accepted
TMPFS_OPTIONS = frozenset({"exec", "noexec"})

_MOUNT_KEYS = {
    "Type": str, "Source": str, "Target": str, "ReadOnly": bool, "Consistency": str,
    "BindOptions": dict, "VolumeOptions": dict, "TmpfsOptions": dict,
}  # fmt: skip


def clean(path: str) -> str:
    """Go's path.Clean."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    text = "/".join(out)
    return ("/" + text) if rooted else (text or ".")


def valid_mode(mode: str) -> bool:
    """Each option at most once per kind: rw/ro, z/Z, a propagation, nocopy, a consistency."""
    if mode == "":
        return True
    counts = dict.fromkeys(("rw", "label", "propagation", "copy", "consistency"), 0)
    for opt in mode.split(","):
        if opt in RW_MODES:
            counts["rw"] += 1
        elif opt in LABEL_MODES:
            counts["label"] += 1
        elif opt in PROPAGATION_MODES:
            counts["propagation"] += 1
        elif opt in COPY_MODES:
            counts["copy"] += 1
        elif opt in CONSISTENCY_MODES:
            counts["consistency"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def read_write(mode: str) -> bool:
    return valid_mode(mode) and "ro" not in mode.split(",")


def _propagation(mode: str) -> str:
    for opt in mode.split(","):
        if opt in PROPAGATION_MODES:
            return opt
    return ""


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def parse_bind(raw: str, volume_driver: str = "") -> MountPoint:
    """A `Binds` entry (`docker run -v`): `dst`, `src:dst` or `src:dst:mode`.

    An absolute source is a bind mount, anything else a volume name; a lone destination is an
    anonymous volume. The host directory of a bind is not checked here (dockerd creates it when
    the container starts).
    """
    arr = raw.split(":", 3)
    if arr[0] == "":
        raise InvalidParameter(_invalid_spec(raw))
    spec: dict[str, Any] = {}
    mode = ""
    if len(arr) == 1:
        spec["Target"] = arr[0]
    elif len(arr) == 2:
        if valid_mode(arr[1]):
            raise InvalidParameter(_invalid_spec(raw))  # "/foo:rw": a volume cannot take a mode alone
        spec["Source"], spec["Target"] = arr
    elif len(arr) == 3:
        spec["Source"], spec["Target"], mode = arr
    else:
        raise InvalidParameter(_invalid_spec(raw))
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    spec["Type"] = BIND if spec.get("Source", "").startswith("/") else VOLUME
    if not read_write(mode):
        spec["ReadOnly"] = True
    if volume_driver and spec["Type"] == VOLUME:
        spec["VolumeOptions"] = {"DriverConfig": {"Name": volume_driver}}
    if "nocopy" in mode.split(","):
        spec.setdefault("VolumeOptions", {})["NoCopy"] = True
    propagation = _propagation(mode)
    if propagation:
        spec["BindOptions"] = {"Propagation": propagation}
    spec = {
        k: spec[k]
        for k in ("Type", "Source", "Target", "ReadOnly", "BindOptions", "VolumeOptions")
        if k in spec
    }
    try:
        mp = _parse_spec(spec, check_bind_source=False)
    except InvalidParameter as exc:
        raise InvalidParameter(f"{_invalid_spec(raw)}: {exc}") from exc
    mp.mode = mode
    return mp


def parse_mount(spec: Mapping[str, Any]) -> MountPoint:
    """A `Mounts` API entry (`--mount`): validated, the bind source must exist."""
    return _parse_spec(check_types(spec), check_bind_source=True)


def check_types(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON shape of a Mounts entry (dockerd decodes it into a Go struct: a wrong type is a 400)."""
    if not isinstance(spec, Mapping):
        raise InvalidParameter("json: cannot unmarshal into Go value of type mount.Mount")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        want = _MOUNT_KEYS.get(key)
        if want is None or value is None:
            continue  # Go's decoder ignores unknown fields and nulls
        if not isinstance(value, want) or (want is not bool and isinstance(value, bool)):
            raise InvalidParameter(
                f"json: cannot unmarshal {type(value).__name__} into Go struct field Mount.HostConfig.Mounts.{key}"
            )
        out[key] = value
    return out


def _config_error(spec: Mapping[str, Any], cause: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{spec.get("Type", "")}": {cause}')


def _absolute_error(path: str) -> str:
    return f"invalid mount path: '{path}' mount path must be absolute"


def validate(spec: Mapping[str, Any], check_bind_source: bool) -> None:
    kind = spec.get("Type", "")
    target = spec.get("Target", "")
    if not target:
        raise _config_error(spec, "field Target must not be empty")
    if clean(target.replace("\\", "/")) == "/":
        raise _config_error(spec, "invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise _config_error(spec, _absolute_error(target))
    source = spec.get("Source", "")
    if kind == BIND:
        if not source:
            raise _config_error(spec, "field Source must not be empty")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or ""
        if propagation and propagation not in PROPAGATION_MODES:
            raise _config_error(spec, f"invalid propagation mode: {propagation}")
        if spec.get("VolumeOptions") is not None:
            raise _config_error(spec, "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _config_error(spec, _absolute_error(source))
        if check_bind_source:
            create = bool((spec.get("BindOptions") or {}).get("CreateMountpoint"))
            try:
                os.stat(source)
            except FileNotFoundError:
                if not create:
                    raise _config_error(spec, f"bind source path does not exist: {source}") from None
            except OSError as exc:
                raise _config_error(spec, f"stat {source}: {exc.strerror}") from exc
    elif kind == VOLUME:
        if spec.get("BindOptions") is not None:
            raise _config_error(spec, "field BindOptions must not be specified")
        if spec.get("ReadOnly") and not source:
            raise _config_error(spec, "must not set ReadOnly mode when using anonymous volumes")
    elif kind == TMPFS:
        if spec.get("BindOptions") is not None:
            raise _config_error(spec, "field BindOptions must not be specified")
        if source:
            raise _config_error(spec, "field Source must not be specified")
        tmpfs_data(spec)
    else:
        raise _config_error(spec, "mount type unknown")


def _parse_spec(spec: dict[str, Any], check_bind_source: bool) -> MountPoint:
    validate(spec, check_bind_source)
    kind = spec["Type"]
    mp = MountPoint(type=kind, destination=clean(spec["Target"]), rw=not spec.get("ReadOnly"), spec=spec)
    if kind == VOLUME:
        mp.name = spec.get("Source", "")
        vo = spec.get("VolumeOptions") or {}
        mp.driver = str((vo.get("DriverConfig") or {}).get("Name") or "")
        mp.copy_data = not vo.get("NoCopy")
    elif kind == BIND:
        mp.source = clean(spec["Source"])
        mp.propagation = (spec.get("BindOptions") or {}).get("Propagation") or DEFAULT_PROPAGATION
    else:
        mp.copy_data = False
    return mp


def tmpfs_data(spec: Mapping[str, Any]) -> str:
    """A tmpfs mount's data string (moby's ConvertTmpfsOptions): ro, mode=<octal>, size with a unit."""
    opts: list[str] = []
    if spec.get("ReadOnly"):
        opts.append("ro")
    tmpfs = spec.get("TmpfsOptions") or {}
    mode = tmpfs.get("Mode") or 0
    if not isinstance(mode, int) or isinstance(mode, bool):
        raise _config_error(spec, "TmpfsOptions.Mode must be a number")
    if mode:
        opts.append(f"mode={mode:o}")
    size = tmpfs.get("SizeBytes") or 0
    if not isinstance(size, int) or isinstance(size, bool):
        raise _config_error(spec, "TmpfsOptions.SizeBytes must be a number")
    if size:
        suffix = ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        opts.append(f"size={size}{suffix}")
    for raw in tmpfs.get("Options") or []:
        if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
            raise _config_error(spec, "invalid option array length")
        if raw[0] not in TMPFS_OPTIONS:
            raise _config_error(spec, f"invalid option: {raw[0]}")
        opts.append("=".join(str(x) for x in raw))
    return ",".join(opts)


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """`container[:mode]` -> (container, mode); the mode is ro or rw (default rw), nothing else."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    container, _, mode = spec.partition(":")
    if not mode:
        return container, "rw"
    if not valid_mode(mode) or _propagation(mode) or "nocopy" in mode.split(","):
        raise InvalidParameter(f"invalid mode: {mode}")
    return container, mode


def needs_slave_propagation(mp: MountPoint, daemon_root: str) -> bool:
    """A bind of (or above) the daemon's root must not propagate mounts back in: rslave by default;
    a private or plain shared propagation asked for is refused, as dockerd does."""
    if mp.type != BIND:
        return False
    source = mp.spec.get("Source", "")
    if not (source.startswith(daemon_root) or daemon_root.startswith(source)):
        return False
    propagation = (mp.spec.get("BindOptions") or {}).get("Propagation") or ""
    if propagation in ("rslave", "rshared", ""):
        return propagation == ""
    raise InvalidParameter(
        'invalid mount config: must use either propagation mode "rslave" or "rshared" when mount source is '
        f'within the daemon root, daemon root: "{daemon_root}", bind mount source: "{source}", '
        f'propagation: "{propagation}"'
    )
