"""Image events as dockerd logs them (LogImageEvent): the actor is the image ID, the attributes
the image's labels (while it exists) and `name` (the new tag of a tag event, else the ID)."""

from __future__ import annotations

from typing import Any

from dockerd.engine.events import Publish


def labels_of(config: dict[str, Any]) -> dict[str, str]:
    return dict((config.get("config") or {}).get("Labels") or {})


def image_event(publish: Publish, action: str, image_id: str, labels: dict[str, str], name: str = "") -> None:
    publish("image", action, image_id, {**labels, "name": name or image_id})


def removal_events(
    publish: Publish, image_id: str, labels: dict[str, str], records: list[dict[str, str]]
) -> None:
    """The events of an image removal's records: an untag per reference (the image still
    exists then: its labels), a delete once it is gone; the layers it released have none."""
    for entry in records:
        for action, ref in entry.items():
            if action == "Untagged":
                image_event(publish, "untag", image_id, labels)
            elif ref == image_id:
                image_event(publish, "delete", image_id, {})
