"""Snapshotters: containerd's overlayfs snapshotter and the mounts it hands out."""

from containerd.snapshots.mount import Mount
from containerd.snapshots.overlay import OverlaySnapshotter
from containerd.snapshots.types import KIND_ACTIVE, KIND_COMMITTED, KIND_VIEW, SnapshotInfo, Usage

__all__ = [
    "KIND_ACTIVE",
    "KIND_COMMITTED",
    "KIND_VIEW",
    "Mount",
    "OverlaySnapshotter",
    "SnapshotInfo",
    "Usage",
]
