"""`-v SOURCE:TARGET[:MODE]` (HostConfig.Binds), parsed as dockerd's Linux mount parser does.

Checked when the container is created, so a bad specification is a 400 then, with dockerd's
wording, and never a failure at start. A SOURCE that is not an absolute path names a volume:
volumes do not exist in pydockerd yet, so those are refused (at create) as well.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from dockerd.engine.errors import InvalidParameter

_RW = {"rw", "ro"}
_LABEL = {"z", "Z"}  # SELinux relabelling: nothing to do without SELinux
_PROPAGATION = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
_COPY = {"nocopy"}
_CONSISTENCY = {"consistent", "cached", "delegated"}  # macOS only; accepted and ignored, as on Linux
DEFAULT_PROPAGATION = "rprivate"


@dataclass(frozen=True)
class Bind:
    source: str
    target: str
    mode: str  # as given, for inspect's Mounts
    read_only: bool
    propagation: str


def valid_mode(mode: str) -> bool:
    """dockerd's linuxValidMountMode: comma-separated, at most one of each kind."""
    if not mode:
        return True
    counts = [0, 0, 0, 0, 0]
    for option in mode.split(","):
        kind = next(
            (
                i
                for i, group in enumerate((_RW, _LABEL, _PROPAGATION, _COPY, _CONSISTENCY))
                if option in group
            ),
            None,
        )
        if kind is None:
            return False
        counts[kind] += 1
    return max(counts) <= 1


def parse_bind(raw: str) -> Bind:
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3 or "\0" in raw:  # (no path holds a NUL byte)
        raise InvalidParameter(f"invalid volume specification: '{raw}'")
    if len(parts) == 1:
        raise InvalidParameter(
            f"invalid volume specification: '{raw}': anonymous volumes are not supported yet"
        )
    if len(parts) == 2 and valid_mode(parts[1]):
        raise InvalidParameter(f"invalid volume specification: '{raw}'")  # `/foo:rw`: a mode but no target
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    if not source.startswith("/"):
        raise InvalidParameter(
            f"invalid volume specification: '{raw}': named volumes are not supported yet (bind an absolute host path)"
        )

    def config_error(reason: str) -> InvalidParameter:
        return InvalidParameter(
            f"invalid volume specification: '{raw}': invalid mount config for type \"bind\": {reason}"
        )

    if not target:
        raise config_error("field Target must not be empty")
    if _clean(target) == "/":
        raise config_error("invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise config_error(f"invalid mount path: '{target}' mount path must be absolute")
    if "nocopy" in options:
        raise config_error("field VolumeOptions must not be specified")
    propagation = next((o for o in options if o in _PROPAGATION), DEFAULT_PROPAGATION)
    return Bind(
        source=_clean(source),
        target=_clean(target),
        mode=mode,
        read_only="ro" in options,
        propagation=propagation,
    )


def _clean(path: str) -> str:
    """Go's path.Clean: POSIX normalisation, but a leading `//` is one slash."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned
