"""The records a snapshotter hands out (shaped like containerd.services.snapshots.v1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from containerd.errors import InvalidArgument

KIND_ACTIVE = "active"
KIND_VIEW = "view"
KIND_COMMITTED = "committed"
KINDS = (KIND_ACTIVE, KIND_VIEW, KIND_COMMITTED)

# containerd's limit: a label's key and value together
MAX_LABEL_SIZE = 4096


@dataclass
class SnapshotInfo:
    """A snapshot as the Stat/Walk calls report it; timestamps are nanoseconds since the epoch."""

    name: str
    parent: str = ""
    kind: str = KIND_ACTIVE
    labels: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


class Usage(NamedTuple):
    """Disk use of one snapshot's own directory: bytes allocated and inodes (hard links once)."""

    size: int
    inodes: int


def validate_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        if not key:
            raise InvalidArgument("label key must not be empty")
        size = len(key.encode()) + len(value.encode())
        if size > MAX_LABEL_SIZE:
            raise InvalidArgument(
                f"label {key[:64]!r}: key and value are {size} bytes, more than {MAX_LABEL_SIZE}"
            )
