"""Disk usage: a container's writable layer and root filesystem (`ps -s`, inspect's
`size`), and GET /system/df.

Sizes are apparent bytes, as dockerd's overlay2 counts them (moby's pkg/directory walk):
regular files' sizes and symlinks' target lengths, each inode once, directories nothing.
Layers are measured from their tar (engine/image/layersize.py), a container's writable layer
by walking its snapshot's upper directory, less the init layer's one entry with bytes (the
/etc/mtab symlink: Docker keeps the init entries in an "-init" layer of their own).
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from common.mount import overlay_dirs
from containerd.client.errors import ContainerdError
from dockerd.engine import initlayer
from dockerd.engine.container import inspect
from dockerd.engine.container.state import Container
from dockerd.engine.errors import NotFound

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def writable_size(d: Containers, c: Container) -> int:
    """The apparent size of the container's writable layer, 0 before its first start."""
    try:
        mounts = d.client.snapshots("overlayfs").mounts(c.id)
    except ContainerdError:
        return 0
    if not mounts:
        return 0
    upper = overlay_dirs(mounts[0])[0] if mounts[0].type == "overlay" else mounts[0].source
    return directory_size(upper) - _init_bytes(upper) if upper else 0


def directory_size(top: str) -> int:
    """moby's directory.Size: the lstat sizes of everything below TOP but directories, each
    inode once (a file changing meanwhile is measured as found, or skipped once gone)."""
    seen: set[int] = set()
    total = 0
    for parent, dirs, files in os.walk(top):
        for name in dirs + files:  # a symlink to a directory is listed with the directories
            try:
                st = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            if st.st_size and st.st_ino not in seen and not stat.S_ISDIR(st.st_mode):
                seen.add(st.st_ino)
                total += st.st_size
    return total


def _init_bytes(upper: str) -> int:
    """What the init entries below UPPER add (the /etc/mtab symlink, while it is the init's)."""
    total = 0
    for path, kind in initlayer.ENTRIES:
        if kind in (initlayer.DIR, initlayer.FILE):
            continue
        try:
            if os.readlink(os.path.join(upper, path.lstrip("/"))) == kind:
                total += len(kind.encode())
        except OSError:
            continue
    return total


def container_sizes(
    d: Containers, c: Container, image_sizes: dict[str, int] | None = None, zero_rw: bool = False
) -> dict[str, int]:
    """Docker's SizeRw (omitted when 0 but with ZERO_RW: inspect's is a pointer, the list's
    omitempty) and SizeRootFs: the writable layer, and it plus the image."""
    size_rw = writable_size(d, c)
    if image_sizes is not None:
        image_size = image_sizes.get(c.image_id, 0)  # 0: its image was removed (rmi -f)
    else:
        try:
            image_size = d.images.unpacked_size(d.images.resolve(c.image_id))
        except NotFound:
            image_size = 0
    out = {"SizeRw": size_rw} if size_rw or zero_rw else {}
    out["SizeRootFs"] = size_rw + image_size
    return out


def with_sizes(
    d: Containers, c: Container, summary: dict[str, Any], image_sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    """A container summary (or inspect) with its sizes placed where dockerd puts them."""
    sizes = container_sizes(d, c, image_sizes, zero_rw="GraphDriver" in summary)
    out: dict[str, Any] = {}
    for key, value in summary.items():
        out[key] = value
        if key in ("Ports", "GraphDriver"):
            out.update(sizes)
    if not sizes.keys() <= out.keys():
        out.update(sizes)
    return out


def image_sizes(d: Containers) -> dict[str, int]:
    return {image.id: d.images.unpacked_size(image) for image in d.images.all()}


def sized_summaries(d: Containers, containers: list[Container]) -> list[dict[str, Any]]:
    """`ps -s`: container summaries with SizeRw and SizeRootFs (the images measured once)."""
    sizes = image_sizes(d)
    return [with_sizes(d, c, inspect.summary(d, c), sizes) for c in containers]


def disk_usage(d: Containers) -> dict[str, Any]:
    """GET /system/df: the images with their shared and unique layers, the containers with their sizes."""
    images = d.images.all()
    containers = d.all()
    layers = {image.id: d.images.layer_sizes(image) for image in images}
    refs: dict[str, int] = {}
    for chain in layers.values():
        for chain_id, _ in chain:
            refs[chain_id] = refs.get(chain_id, 0) + 1
    unique: dict[str, int] = {}
    image_rows = []
    for image in images:
        summary = d.images.summary(image)
        summary["Containers"] = sum(1 for c in containers if c.image_id == image.id)
        summary["SharedSize"] = sum(size for chain_id, size in layers[image.id] if refs[chain_id] > 1)
        unique.update(layers[image.id])
        image_rows.append(summary)
    image_rows.sort(key=lambda row: row["Created"], reverse=True)  # newest first, as dockerd's image list
    image_sizes = {row["Id"]: int(row["Size"]) for row in image_rows}
    container_rows = [with_sizes(d, c, inspect.summary(d, c), image_sizes) for c in containers]
    return {
        "LayersSize": sum(unique.values()),
        "Images": image_rows,
        "Containers": container_rows,
        "Volumes": d.volumes.usage(),
        "BuildCache": None,
        "BuilderSize": 0,
    }
