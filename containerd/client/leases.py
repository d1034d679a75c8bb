"""The leases service: what holds content and snapshots from garbage collection while work
that has not yet referenced them from an image or container is in progress.

`client.lease()` (a new lease for a block) and `client.using_lease(id)` (an existing one)
put the `containerd-lease` header on the calls made inside the block.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from protos.gen.containerd_api.services.leases.v1 import leases_pb2 as pb

if TYPE_CHECKING:
    from containerd.client.client import Client

LEASE_HEADER = "containerd-lease"
LEASE_EXPIRE_LABEL = "containerd.io/gc.expire"
DEFAULT_LEASE_TTL = timedelta(hours=1)


@dataclass(frozen=True)
class Lease:
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0  # ns since the epoch


@dataclass(frozen=True)
class Resource:
    """What a lease holds besides what was created under it: ("<digest>", "content"),
    ("<key>", "snapshots/<snapshotter>"), ("<ref>", "ingests")."""

    id: str
    type: str


def _lease(msg: pb.Lease) -> Lease:
    return Lease(msg.id, dict(msg.labels), int(msg.created_at.ToNanoseconds()))


class Leases:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(
        self, lease_id: str = "", *, ttl: timedelta | None = None, labels: Mapping[str, str] | None = None
    ) -> Lease:
        """A new lease (a random id unless given); with a TTL it expires by itself (the
        `containerd.io/gc.expire` label), so a client that dies leaves nothing for ever."""
        all_labels = dict(labels or {})
        if ttl is not None:
            all_labels[LEASE_EXPIRE_LABEL] = (datetime.now(UTC) + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
        req = pb.CreateRequest(
            id=lease_id or f"pycontainerd-client-{secrets.token_hex(8)}", labels=all_labels
        )
        return _lease(self.client.call(self.client.api.leases.Create, req).lease)

    def delete(self, lease_id: str, *, sync: bool = False) -> None:
        """Release what the lease holds; with `sync`, garbage is collected before the answer."""
        self.client.call(self.client.api.leases.Delete, pb.DeleteRequest(id=lease_id, sync=sync))

    def list(self, *filters: str) -> list[Lease]:
        resp = self.client.call(self.client.api.leases.List, pb.ListRequest(filters=list(filters)))
        return [_lease(m) for m in resp.leases]

    def add_resource(self, lease_id: str, resource: Resource) -> None:
        req = pb.AddResourceRequest(id=lease_id, resource=pb.Resource(id=resource.id, type=resource.type))
        self.client.call(self.client.api.leases.AddResource, req)

    def delete_resource(self, lease_id: str, resource: Resource) -> None:
        req = pb.DeleteResourceRequest(id=lease_id, resource=pb.Resource(id=resource.id, type=resource.type))
        self.client.call(self.client.api.leases.DeleteResource, req)

    def resources(self, lease_id: str) -> builtins.list[Resource]:
        resp = self.client.call(self.client.api.leases.ListResources, pb.ListResourcesRequest(id=lease_id))
        return [Resource(r.id, r.type) for r in resp.resources]
