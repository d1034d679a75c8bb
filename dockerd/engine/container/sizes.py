"""Disk usage: a container's writable layer and root filesystem (`ps -s`, inspect's
`size`), and GET /system/df.

Sizes are snapshot usage as containerd measures it (Snapshots.Usage: allocated blocks, each
hard link once), where Docker's overlay2 sums apparent file sizes (so `images`, `history`
and `ps -s` show block sizes); and the mount points the runtime creates in the rootfs, and
the init entries (initlayer.py), count in a container's writable layer (Docker keeps them
in an "-init" layer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockerd.engine.container import inspect
from dockerd.engine.container.state import Container
from dockerd.engine.errors import NotFound
from dockerd.engine.image.service import snapshot_usage

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def writable_size(d: Containers, c: Container) -> int:
    """The disk usage of the container's writable layer (its snapshot), 0 before its first start."""
    usage = snapshot_usage(d.client, c.id)
    # A snapshot holding only its own directory has nothing written: Docker shows 0 for it.
    return usage[0] if usage is not None and usage[1] > 1 else 0


def container_sizes(d: Containers, c: Container, image_sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Docker's SizeRw (omitted when 0) and SizeRootFs: the writable layer, and it plus the image."""
    size_rw = writable_size(d, c)
    if image_sizes is not None:
        image_size = image_sizes.get(c.image_id, 0)  # 0: its image was removed (rmi -f)
    else:
        try:
            image_size = d.images.unpacked_size(d.images.resolve(c.image_id))
        except NotFound:
            image_size = 0
    out = {"SizeRw": size_rw} if size_rw else {}
    out["SizeRootFs"] = size_rw + image_size
    return out


def with_sizes(
    d: Containers, c: Container, summary: dict[str, Any], image_sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    """A container summary (or inspect) with its sizes placed where dockerd puts them."""
    sizes = container_sizes(d, c, image_sizes)
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
