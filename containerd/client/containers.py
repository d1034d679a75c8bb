"""The containers service: container records (metadata only; the running part is a task).

A record names the runtime that runs it (with the runtime's options), carries the OCI
spec, the snapshotter and snapshot key of its root filesystem (which the record keeps from
garbage collection), the image it came from, labels and extensions, as containerd's
containers.Container does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf import field_mask_pb2

from containerd.client.errors import AlreadyExists, InvalidArgument
from containerd.client.typeurl import SPEC_TYPE, Payload
from protos.gen.containerd_api.services.containers.v1 import containers_pb2 as pb
from protos.gen.containerd_api.types.runc.options import oci_pb2

if TYPE_CHECKING:
    from containerd.client.client import Client

RUNC_V2 = "io.containerd.runc.v2"
# The io.containerd.runc.v2 runtime's options (root, binary_name, systemd_cgroup, ...):
# Runtime(RUNC_V2, Payload.message(RuncOptions(root=...))).
RuncOptions = oci_pb2.Options
# The update mask paths containerd accepts (labels.<key> and extensions.<key> too).
UPDATABLE = ("labels", "image", "runtime", "spec", "snapshotter", "snapshotkey", "extensions", "sandbox")


@dataclass(frozen=True)
class Runtime:
    name: str = RUNC_V2
    options: Payload | None = None  # runtime-specific (containerd.runc.v1.Options for runc v2)


@dataclass(frozen=True)
class Container:
    id: str
    runtime: Runtime = field(default_factory=Runtime)
    spec: Payload | None = None
    image: str = ""
    snapshotter: str = ""
    snapshot_key: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, Payload] = field(default_factory=dict)
    sandbox: str = ""
    created_at: int = 0  # ns since the epoch; 0 for a record not yet stored
    updated_at: int = 0

    @classmethod
    def with_oci_spec(cls, id: str, spec: Mapping[str, Any], **fields: Any) -> Container:
        """A record whose spec is this OCI runtime spec (packed as containerd does)."""
        return cls(id, spec=Payload.json(SPEC_TYPE, spec), **fields)

    def oci_spec(self) -> dict[str, Any]:
        """The OCI runtime spec the record carries (InvalidArgument if it has none)."""
        if self.spec is None:
            raise InvalidArgument(f"container {self.id} has no spec")
        document = self.spec.document()
        if not isinstance(document, dict):
            raise InvalidArgument(f"the spec of container {self.id} is not a JSON object")
        return document


def _from_pb(msg: pb.Container) -> Container:
    return Container(
        id=msg.id,
        runtime=Runtime(msg.runtime.name, Payload.from_pb(msg.runtime.options)),
        spec=Payload.from_pb(msg.spec),
        image=msg.image,
        snapshotter=msg.snapshotter,
        snapshot_key=msg.snapshot_key,
        labels=dict(msg.labels),
        extensions={k: p for k, v in msg.extensions.items() if (p := Payload.from_pb(v)) is not None},
        sandbox=msg.sandbox,
        created_at=int(msg.created_at.ToNanoseconds()),
        updated_at=int(msg.updated_at.ToNanoseconds()),
    )


def _to_pb(c: Container) -> pb.Container:
    msg = pb.Container(
        id=c.id,
        image=c.image,
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        labels=dict(c.labels),
        extensions={k: v.to_pb() for k, v in c.extensions.items()},
        sandbox=c.sandbox,
    )
    msg.runtime.name = c.runtime.name
    if c.runtime.options is not None:
        msg.runtime.options.CopyFrom(c.runtime.options.to_pb())
    if c.spec is not None:
        msg.spec.CopyFrom(c.spec.to_pb())
    return msg


class Containers:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, container: Container) -> Container:
        """Store a new record (AlreadyExists if the id is taken)."""
        req = pb.CreateContainerRequest(container=_to_pb(container))
        return _from_pb(self.client.call(self.client.api.containers.Create, req).container)

    def get(self, container_id: str) -> Container:
        req = pb.GetContainerRequest(id=container_id)
        return _from_pb(self.client.call(self.client.api.containers.Get, req).container)

    def list(self, *filters: str) -> list[Container]:
        """Records matching any of containerd's filters (`id==x`, `labels."k"==v`, ...), all if none."""
        resp = self.client.call(
            self.client.api.containers.List, pb.ListContainersRequest(filters=list(filters))
        )
        return [_from_pb(m) for m in resp.containers]

    def update(self, container: Container, fields: Sequence[str]) -> Container:
        """Replace the named FIELDS (containerd's mask paths: "spec", "image", "labels",
        "labels.<key>", "extensions.<key>", "snapshotkey", ...) with the record's values."""
        if not fields:
            raise InvalidArgument("an update names at least one field")
        req = pb.UpdateContainerRequest(
            container=_to_pb(container), update_mask=field_mask_pb2.FieldMask(paths=list(fields))
        )
        return _from_pb(self.client.call(self.client.api.containers.Update, req).container)

    def create_or_update(self, container: Container, fields: Sequence[str] = ("spec", "image")) -> Container:
        """Create the record, or update FIELDS of an existing one. A record is never deleted
        and re-created to change it: a delete starts a garbage collection, which would take
        the snapshot the record holds."""
        try:
            return self.create(container)
        except AlreadyExists:
            return self.update(container, fields)

    def delete(self, container_id: str) -> None:
        """Remove the record (its task must be gone); its snapshot is then garbage unless
        removed first, as containerd's client does."""
        self.client.call(self.client.api.containers.Delete, pb.DeleteContainerRequest(id=container_id))
