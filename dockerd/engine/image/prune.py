"""POST /images/prune: dockerd's ImagesPrune over the images no container uses."""

from __future__ import annotations

from typing import Any

from dockerd.engine.errors import NotFound
from dockerd.engine.events import Publish
from dockerd.engine.filters import (
    IMAGE_PRUNE,
    Filters,
    dangling_only,
    match_labels,
    prune_until,
    pruned_after,
)
from dockerd.engine.image.events import labels_of, removal_events
from dockerd.engine.image.service import ImageService, ResolvedImage
from dockerd.engine.logs import parse_time


def prune_images(images: ImageService, used: set[str], filters: Filters, publish: Publish) -> dict[str, Any]:
    """Remove the images the filters keep in but those USED (image ids of containers); the space
    reclaimed is that of the layers no remaining image shares."""
    filters.validate(IMAGE_PRUNE)
    dangling = dangling_only(filters)
    until = prune_until(filters)
    everything = images.all()
    layers = {image.id: images.layer_sizes(image) for image in everything}
    doomed: list[ResolvedImage] = []
    for image in everything:
        if image.id in used or (dangling and images.repo_tags(image)):
            continue
        if not match_labels(filters, (image.config.get("config") or {}).get("Labels")):
            continue
        if pruned_after(parse_time(image.created) if image.created else 0.0, until):
            continue
        doomed.append(image)
    deleted: list[dict[str, str]] = []
    for image in doomed:
        try:
            entries = images.remove(image.id, False, [])
        except NotFound:
            continue  # removed meanwhile
        removal_events(publish, image.id, labels_of(image.config), entries)
        deleted.extend(entries)
    gone = {image.id for image in doomed}
    kept = {chain_id for image in everything if image.id not in gone for chain_id, _ in layers[image.id]}
    freed = {
        chain_id: size for image in doomed for chain_id, size in layers[image.id] if chain_id not in kept
    }
    reclaimed = sum(freed.values())
    publish("image", "prune", "", {"reclaimed": str(reclaimed)})  # as dockerd, after what it removed
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
