"""`run`/`create` storage options as the Docker CLI builds them: `--mount` (CSV, every key of
Docker's mount option) -> HostConfig.Mounts, `-v` (compose's volume-spec parser: a source
makes a bind or named volume in HostConfig.Binds, a lone target an anonymous volume in
Config.Volumes), `--volumes-from`, `--volume-driver`."""

from __future__ import annotations

import os

from cli.flags import Command, Opt, UsageError, Values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MOUNT_OPTIONS: tuple[Opt, ...] = (
    Opt("mount", "", "list", "Attach a filesystem mount to the container", metavar="mount"),
    Opt("volume", "v", "list", "Bind mount a volume"),
    Opt("volume-driver", "", "str", "Optional volume driver for the container"),
    Opt("volumes-from", "", "list", "Mount volumes from the specified container(s)"),
)

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}
_BIND_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


class MountError(ValueError):
    pass


def _parse_bool(value: str, message: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountError(message)


def _csv_fields(value: str) -> list[str]:
    import csv

    try:
        return next(csv.reader([value], strict=True), [])
    except csv.Error as exc:
        raise MountError(f"parse error on line 1, column 1: {exc}") from None


def parse_mount(value: str) -> dict[str, Any]:
    """One `--mount` value -> a mount.Mount as JSON (Go's omitempty rules kept)."""
    from cli.runopts import ram_in_bytes

    mount: dict[str, Any] = {"Type": "volume"}
    volume: dict[str, Any] | None = None
    bind: dict[str, Any] | None = None
    tmpfs: dict[str, Any] | None = None
    image: dict[str, Any] | None = None

    def vol() -> dict[str, Any]:
        nonlocal volume
        if volume is None:
            volume = {"DriverConfig": {}}
        return volume

    def bnd() -> dict[str, Any]:
        nonlocal bind
        if bind is None:
            bind = {}
        return bind

    def tmp() -> dict[str, Any]:
        nonlocal tmpfs
        if tmpfs is None:
            tmpfs = {}
        return tmpfs

    for field in _csv_fields(value):
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                vol()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bnd()["NonRecursive"] = True
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _parse_bool(val, f"invalid value for {key}: {val}")
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bnd()["Propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            bnd()["NonRecursive"] = _parse_bool(val, f"invalid value for {key}: {val}")
        elif key == "bind-recursive":
            if val == "disabled":
                bnd()["NonRecursive"] = True
            elif val == "writable":
                bnd()["ReadOnlyNonRecursive"] = True
            elif val == "readonly":
                bnd()["ReadOnlyForceRecursive"] = True
            elif val == "enabled":
                bnd()
            else:
                raise MountError(
                    f'invalid value for {key}: {val} (must be "enabled", "disabled", "writable", or "readonly")'
                )
        elif key == "volume-subpath":
            vol()["Subpath"] = val
        elif key == "volume-nocopy":
            vol()["NoCopy"] = _parse_bool(val, f"invalid value for volume-nocopy: {val}")
        elif key == "volume-label":
            k, _, v = val.partition("=")
            if k:
                vol().setdefault("Labels", {})[k] = v
            else:
                vol()
        elif key == "volume-driver":
            vol()["DriverConfig"]["Name"] = val
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            options = vol()["DriverConfig"].setdefault("Options", {})
            if k:
                options[k] = v
        elif key == "image-subpath":
            image = {**(image or {}), "Subpath": val}
        elif key == "tmpfs-size":
            try:
                tmp()["SizeBytes"] = ram_in_bytes(val)
            except ValueError:
                raise MountError(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                mode = int(val, 8)
                if not 0 <= mode < 1 << 32:
                    raise ValueError
            except ValueError:
                raise MountError(f"invalid value for {key}: {val}") from None
            tmp()["Mode"] = mode
        else:
            raise MountError(f"unexpected key '{key}' in '{field}'")
    if not mount["Type"]:
        raise MountError("type is required")
    if not mount.get("Target"):
        raise MountError("target is required")
    kind = mount["Type"]
    for opts_, wanted, prefix in ((volume, "volume", "volume"), (image, "image", "image"), (bind, "bind", "bind"),
                                  (tmpfs, "tmpfs", "tmpfs")):  # fmt: skip
        if opts_ is not None and kind != wanted:
            raise MountError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
    if bind is not None:
        if bind.get("ReadOnlyNonRecursive") and not mount.get("ReadOnly"):
            raise MountError(
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
            )
        if bind.get("ReadOnlyForceRecursive"):
            if not mount.get("ReadOnly"):
                raise MountError(
                    "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"
                )
            if bind.get("Propagation") != "rprivate":
                raise MountError(
                    "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"
                )
    for key, part in (
        ("BindOptions", bind),
        ("VolumeOptions", volume),
        ("ImageOptions", image),
        ("TmpfsOptions", tmpfs),
    ):
        if part is not None:
            mount[key] = part
    return mount


class VolumeSpec:
    """compose's parse of a `-v` value: source, target and whether the source is a path."""

    def __init__(self, source: str, target: str) -> None:
        self.source = source
        self.target = target

    @property
    def is_bind(self) -> bool:
        s = self.source
        return bool(s) and (s in (".", "..") or s[0] in "./~")


def parse_volume_spec(spec: str) -> VolumeSpec:
    """compose's ParseVolume as the Docker CLI 28 uses it: its errors are ignored and
    whatever was read before one counts (the daemon judges the rest)."""
    if len(spec) <= 2:
        return VolumeSpec("", spec)
    fields = spec.split(":")
    source = target = ""
    for i, field in enumerate(fields):
        last = i == len(fields) - 1
        if not field or (source and target and not last):
            break  # "empty section between colons", "too many colons"
        if not source and last:
            target = field
        elif not source:
            source = field
        elif not target:
            target = field
        # a third field holds the mode (ro, rw, nocopy, propagation...): the daemon reads it
    return VolumeSpec(source, target)


def parse_volumes(spec: Command, items: list[str]) -> tuple[list[str], dict[str, Any]]:
    """-v values -> (HostConfig.Binds, Config.Volumes)."""
    binds: list[str] = []
    anonymous: dict[str, Any] = {}
    for item in dict.fromkeys(items):  # the CLI keeps them in a set
        parsed = parse_volume_spec(item)
        if not parsed.source:
            anonymous[item] = {}
            continue
        entry = item
        if parsed.is_bind:
            host_part, _, target = item.partition(":")
            if not host_part.startswith("/") and host_part.startswith("."):
                host_part = os.path.abspath(host_part)
            entry = f"{host_part}:{target}"
        binds.append(entry)
    return binds, anonymous


def apply(spec: Command, opts: Values, config: dict[str, Any], host: dict[str, Any]) -> None:
    mounts = []
    for value in opts.mount:
        try:
            mounts.append(parse_mount(value))
        except MountError as exc:
            raise UsageError(f'invalid argument "{value}" for "--mount" flag: {exc}', spec) from None
    if mounts:
        host["Mounts"] = mounts
    binds, anonymous = parse_volumes(spec, opts.volume)
    if binds:
        host["Binds"] = binds
    if anonymous:
        config["Volumes"] = anonymous
    if opts.volumes_from:
        host["VolumesFrom"] = list(opts.volumes_from)
    if opts.volume_driver:
        host["VolumeDriver"] = opts.volume_driver
