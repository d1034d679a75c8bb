"""Image records (containerd.services.images.v1): create, get, list, update, delete."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from containerd import filters
from containerd.content.digest import is_digest
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.base import NamespacedStore
from containerd.metadata.records import Descriptor, Image
from containerd.metadata.validate import dump_labels, load_labels, update_mapping, validate_labels

_COLUMNS = "name, labels, media_type, digest, size, annotations, created_at, updated_at"


def image_fields(image: Image) -> Callable[[Sequence[str]], str | None]:
    """Filter adaptor: name, target.digest, target.mediatype, labels.<key>, annotations.<key>."""

    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if head == "name":
            return image.name or None
        if head == "target" and len(path) == 2:
            if path[1] == "digest":
                return image.target.digest or None
            if path[1] == "mediatype":
                return image.target.media_type or None
            return None
        if head == "labels":
            return filters.map_field(image.labels, path[1:])
        if head == "annotations":
            return filters.map_field(image.target.annotations, path[1:])
        return None

    return field


def validate_image(image: Image) -> Image:
    if not image.name:
        raise InvalidArgument("image name must not be empty")
    labels = validate_labels(image.labels)
    target = image.target
    if not is_digest(target.digest):
        raise InvalidArgument(f"image {image.name}: Target.Digest {target.digest!r} is invalid")
    if target.size <= 0:
        raise InvalidArgument(f"image {image.name}: Target.Size must be greater than zero")
    if not target.media_type:
        raise InvalidArgument(f"image {image.name}: Target.MediaType must be set")
    return dataclasses.replace(image, labels=labels)


class ImageStore(NamespacedStore):
    def create(self, image: Image) -> Image:
        img = validate_image(image)
        self.ensure_namespace()
        now = self.tx.now()
        img = dataclasses.replace(img, created_at=now, updated_at=now)
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO images (namespace, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.namespace, *_row(img)),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"image {img.name}: already exists")
        return img

    def get(self, name: str) -> Image:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM images WHERE namespace = ? AND name = ?", (self.namespace, name)
        ).fetchone()
        if row is None:
            raise NotFound(f"image {name}: not found")
        return _image(row)

    def list(self, filter_strings: Iterable[str] = ()) -> list[Image]:
        matcher = filters.parse_all(filter_strings)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM images WHERE namespace = ? ORDER BY name", (self.namespace,)
        ).fetchall()
        found = [_image(row) for row in rows]
        return [i for i in found if matcher.match(image_fields(i))]

    def update(self, image: Image, fieldpaths: Sequence[str] = ()) -> Image:
        """No field paths replaces everything but the name and creation time; otherwise
        `target`, `labels`, `labels.<key>`, `annotations`, `annotations.<key>`."""
        if not image.name:
            raise InvalidArgument("image name must not be empty")
        current = self.get(image.name)
        if not fieldpaths:
            updated = dataclasses.replace(image, created_at=current.created_at)
        else:
            labels, rest = update_mapping(current.labels, image.labels, fieldpaths, "labels")
            annotations, rest = update_mapping(
                current.target.annotations, image.target.annotations, rest, "annotations"
            )
            target = dataclasses.replace(current.target, annotations=annotations)
            for path in rest:
                if path == "target":
                    target = image.target
                elif path != "name":  # the name is the key: naming it changes nothing
                    raise InvalidArgument(f"cannot update {path!r} field on image {image.name}")
            updated = dataclasses.replace(current, labels=labels, target=target)
        updated = validate_image(dataclasses.replace(updated, updated_at=self.tx.now()))
        self.conn.execute(
            f"UPDATE images SET ({_COLUMNS}) = (?, ?, ?, ?, ?, ?, ?, ?) WHERE namespace = ? AND name = ?",
            (*_row(updated), self.namespace, updated.name),
        )
        return updated

    def delete(self, name: str) -> None:
        cur = self.conn.execute("DELETE FROM images WHERE namespace = ? AND name = ?", (self.namespace, name))
        if cur.rowcount == 0:
            raise NotFound(f"image {name}: not found")


def _row(image: Image) -> tuple[object, ...]:
    t = image.target
    return (
        image.name,
        dump_labels(image.labels),
        t.media_type,
        t.digest,
        t.size,
        json.dumps(t.annotations, sort_keys=True),
        image.created_at,
        image.updated_at,
    )


def _image(row: Any) -> Image:
    name, labels, media_type, digest, size, annotations, created, updated = row
    return Image(
        name=name,
        target=Descriptor(media_type, digest, size, load_labels(annotations)),
        labels=load_labels(labels),
        created_at=created,
        updated_at=updated,
    )
