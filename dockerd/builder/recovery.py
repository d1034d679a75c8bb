"""What a build leaves behind when pydockerd dies in the middle of it, cleaned at the next start.

Everything a build makes outside pycontainerd's image records lives in two places, and both
are recognisable without any record of the build itself:

- pydockerd's <data-root>/tmp: the unpacked context (a tmpfs of its own, or a directory),
  snapshot mounts of COPY/WORKDIR steps, RUN's hosts/resolv.conf files, spooled uploads.
  Nothing there outlives the request that made it, so the whole directory is emptied at start,
  as dockerd empties its tmp dir: mounts first (a snapshot mounted there must never be
  recursed into and deleted), then the entries.
- pycontainerd: RUN containers (label pydocker.build/container) and their tasks, the step
  snapshots named `build-…` (chains are named by chain ID, never so), and the build's lease
  (label pydocker.build/lease), which would otherwise hold a failed step's blobs for a day.
  Cache records (leases named pydocker-build-cache-…) are kept: they are the layer cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from typing import TYPE_CHECKING

from common import mountinfo
from common.mount import unmount
from containerd.client import ContainerdError, NotFound

if TYPE_CHECKING:
    from containerd.client import Client

log = logging.getLogger("pydockerd.build")

LABEL_CONTAINER = "pydocker.build/container"
LABEL_LEASE = "pydocker.build/lease"
SNAPSHOT_PREFIX = "build-"


def empty_tmp_dir(path: str) -> list[str]:
    """Unmount everything mounted under PATH (deepest first) and remove its entries; the
    entries removed. An entry a mount could not be taken off stays (never deleted through)."""
    for point in reversed(mountinfo.mount_points(path)):
        if point != os.path.realpath(path):
            with contextlib.suppress(OSError):
                unmount(point)
    still = [p for p in mountinfo.mount_points(path) if p != os.path.realpath(path)]
    removed = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if any(p == full or p.startswith(full + "/") for p in still):
            log.warning("build recovery: %s stays: something is still mounted in it", full)
            continue
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
        removed.append(name)
    return removed


def remove_build_leftovers(client: Client, snapshotter: str) -> list[str]:
    """Delete what interrupted builds left in pycontainerd (see the module's doc); what went."""
    gone: list[str] = []
    for container in client.containers.list(f'labels."{LABEL_CONTAINER}"==true'):
        with contextlib.suppress(NotFound, ContainerdError):
            client.tasks.kill(container.id, 9, all=True)
            client.tasks.wait(container.id, timeout=30)
        with contextlib.suppress(NotFound, ContainerdError):
            client.tasks.delete(container.id)
        with contextlib.suppress(NotFound, ContainerdError):
            client.containers.delete(container.id)
            gone.append(f"container {container.id}")
    snapshots = client.snapshots(snapshotter)
    leftovers = [s for s in snapshots.list() if s.name.startswith(SNAPSHOT_PREFIX)]
    # children before their parents: the active ones, then committed ones (an init snapshot)
    for info in sorted(leftovers, key=lambda s: s.kind == "committed"):
        with contextlib.suppress(NotFound, ContainerdError):
            snapshots.remove(info.name)
            gone.append(f"snapshot {info.name}")
    for lease in client.leases.list(f'labels."{LABEL_LEASE}"==build'):
        with contextlib.suppress(NotFound, ContainerdError):
            client.leases.delete(lease.id, sync=True)
            gone.append(f"lease {lease.id}")
    return gone
