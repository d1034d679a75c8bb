"""Image records (a name pointing at a root descriptor) through the images service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf import field_mask_pb2

from containerd.client.errors import AlreadyExists
from containerd.client.media import Descriptor
from protos.gen.containerd_api.services.images.v1 import images_pb2 as pb
from protos.gen.containerd_api.types import descriptor_pb2

if TYPE_CHECKING:
    from containerd.client.client import Client


@dataclass(frozen=True)
class Image:
    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0  # ns since the epoch; 0 for one not yet stored
    updated_at: int = 0


def descriptor_to_pb(desc: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=desc.media_type, digest=desc.digest, size=desc.size, annotations=dict(desc.annotations)
    )


def descriptor_from_pb(msg: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(msg.media_type, msg.digest, msg.size, dict(msg.annotations))


def _image_from(msg: pb.Image) -> Image:
    return Image(
        name=msg.name,
        target=descriptor_from_pb(msg.target),
        labels=dict(msg.labels),
        created_at=int(msg.created_at.ToNanoseconds()),
        updated_at=int(msg.updated_at.ToNanoseconds()),
    )


def _image_to(image: Image) -> pb.Image:
    return pb.Image(name=image.name, labels=dict(image.labels), target=descriptor_to_pb(image.target))


def get_image(client: Client, name: str) -> Image:
    """The image called exactly `name` (NotFound otherwise)."""
    return _image_from(client.call(client.api.images.Get, pb.GetImageRequest(name=name)).image)


def list_images(client: Client, *filters: str) -> list[Image]:
    """Images matching any of containerd's filters (`name==x`, `labels."k"==v`, ...), all if none."""
    resp = client.call(client.api.images.List, pb.ListImagesRequest(filters=list(filters)))
    return [_image_from(m) for m in resp.images]


def delete_image(client: Client, name: str, *, sync: bool = False) -> None:
    """Remove the record; its content and snapshots go at the next garbage collection (now if `sync`)."""
    client.call(client.api.images.Delete, pb.DeleteImageRequest(name=name, sync=sync))


def create_image(client: Client, image: Image) -> Image:
    return _image_from(
        client.call(client.api.images.Create, pb.CreateImageRequest(image=_image_to(image))).image
    )


def create_or_update_image(client: Client, image: Image) -> Image:
    """Create, or point an existing name at the new target, as an import does (labels are
    replaced only when the new record has some)."""
    try:
        return create_image(client, image)
    except AlreadyExists:
        req = pb.UpdateImageRequest(
            image=_image_to(image),
            update_mask=field_mask_pb2.FieldMask(paths=["target", "labels"] if image.labels else ["target"]),
        )
        return _image_from(client.call(client.api.images.Update, req).image)
