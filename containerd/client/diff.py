"""The diff service: apply a layer onto mounts, or compute one between two mounts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from containerd.client.images import descriptor_from_pb, descriptor_to_pb
from containerd.client.media import Descriptor
from containerd.client.mount import Mount
from containerd.client.snapshots import mount_to_pb
from containerd.client.typeurl import Payload
from protos.gen.containerd_api.services.diff.v1 import diff_pb2 as pb

if TYPE_CHECKING:
    from containerd.client.client import Client


class Diff:
    def __init__(self, client: Client) -> None:
        self.client = client

    def apply(
        self, layer: Descriptor, mounts: Sequence[Mount], payloads: Mapping[str, Payload] | None = None
    ) -> Descriptor:
        """Unpack the layer blob onto the mounts; returns the uncompressed layer's descriptor
        (its digest is the layer's diff id). No deadline: the work grows with the layer."""
        req = pb.ApplyRequest(
            diff=descriptor_to_pb(layer),
            mounts=[mount_to_pb(m) for m in mounts],
            payloads={k: v.to_pb() for k, v in (payloads or {}).items()},
        )
        return descriptor_from_pb(self.client.call(self.client.api.diff.Apply, req, no_deadline=True).applied)

    def compare(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str = "",
        ref: str = "",
        labels: Mapping[str, str] | None = None,
        source_date_epoch: int | None = None,
    ) -> Descriptor:
        """Diff.Diff: the changes from LOWER to UPPER written as a layer blob into the content
        store (under the client's lease, if any); returns the blob's descriptor.
        `source_date_epoch` (seconds, containerd 2.0's field) clamps the entries' times."""
        req = pb.DiffRequest(
            left=[mount_to_pb(m) for m in lower],
            right=[mount_to_pb(m) for m in upper],
            media_type=media_type,
            ref=ref,
            labels=dict(labels or {}),
        )
        if source_date_epoch is not None:
            req.source_date_epoch.seconds = source_date_epoch
        return descriptor_from_pb(self.client.call(self.client.api.diff.Diff, req, no_deadline=True).diff)
