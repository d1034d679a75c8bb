"""What the snapshotter and differ tests share: a snapshotter on its own temp root that must leave
no mount behind, and a context that mounts a snapshot's mounts for the length of a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerd.snapshots import Mount, OverlaySnapshotter
from containerd.snapshots.mount import mount_all, mount_points, unmount_all


@pytest.fixture
def sn(tmp_path: Path) -> Iterator[OverlaySnapshotter]:
    snapshotter = OverlaySnapshotter(str(tmp_path / "snapshotter"))
    yield snapshotter
    snapshotter.close()
    leaked = mount_points(str(tmp_path))
    for point in reversed(leaked):
        unmount_all(point)
    assert leaked == [], "mounts left behind"


@contextlib.contextmanager
def mounted(mounts: list[Mount], target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mount_all(mounts, str(target))
    try:
        yield target
    finally:
        unmount_all(str(target))
