"""Fixtures for the volume backend's tests: a service on a private data root, checked for leaks.

Everything is real: volumes are directories under a temporary data root, tmpfs and bind
volumes are really mounted, plugins are HTTP servers on real sockets. After each test no mount
may remain below the test's directory (a leak fails the test after being cleaned up).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.mount import mount_points, unmount
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.service import VolumeService
from tests.volumes.vol_helpers import FAST, PublishedEvents


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    leaked = mount_points(str(tmp_path))
    for point in sorted(leaked, key=len, reverse=True):
        unmount(point)
    assert not leaked, f"mounts left behind: {leaked}"


@pytest.fixture
def plugin_dirs(root: Path) -> PluginDirs:
    sockets, specs = root / "run-plugins", root / "etc-plugins"
    sockets.mkdir()
    specs.mkdir()
    return PluginDirs(sockets=(str(sockets),), specs=(str(specs),))


@pytest.fixture
def events() -> PublishedEvents:
    return []


@pytest.fixture
def service(root: Path, plugin_dirs: PluginDirs, events: PublishedEvents) -> Iterator[VolumeService]:
    svc = VolumeService(
        str(root / "data"), plugin_dirs, FAST, publish=lambda *e: events.append((e[0], e[1], e[2], e[3]))
    )
    yield svc
    svc.close()
