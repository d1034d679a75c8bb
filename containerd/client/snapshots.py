"""One snapshotter through the snapshots service."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from google.protobuf import field_mask_pb2

from containerd.client.errors import NotFound
from containerd.client.media import Descriptor
from containerd.client.mount import Mount
from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2 as pb
from protos.gen.containerd_api.types import mount_pb2

if TYPE_CHECKING:
    from containerd.client.client import Client

__all__ = ["Mount", "SnapshotInfo", "Snapshots", "Usage", "apply_layer", "mount_from_pb", "mount_to_pb"]

_KINDS = {pb.VIEW: "view", pb.ACTIVE: "active", pb.COMMITTED: "committed"}


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    parent: str
    kind: str  # "view", "active", "committed" or "unknown"
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: int = 0  # ns since the epoch
    updated_at: int = 0


@dataclass(frozen=True)
class Usage:
    size: int  # bytes
    inodes: int


def mount_from_pb(msg: mount_pb2.Mount) -> Mount:
    return Mount(msg.type, msg.source, msg.target, list(msg.options))


def mount_to_pb(mount: Mount) -> mount_pb2.Mount:
    return mount_pb2.Mount(
        type=mount.type, source=mount.source, target=mount.target, options=list(mount.options)
    )


def _info(msg: pb.Info) -> SnapshotInfo:
    return SnapshotInfo(
        msg.name,
        msg.parent,
        _KINDS.get(msg.kind, "unknown"),
        dict(msg.labels),
        int(msg.created_at.ToNanoseconds()),
        int(msg.updated_at.ToNanoseconds()),
    )


class Snapshots:
    def __init__(self, client: Client, snapshotter: str = "overlayfs") -> None:
        self.client = client
        self.snapshotter = snapshotter

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = pb.PrepareSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent, labels=labels or {}
        )
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.Prepare, req).mounts]

    def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = pb.ViewSnapshotRequest(
            snapshotter=self.snapshotter, key=key, parent=parent, labels=labels or {}
        )
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.View, req).mounts]

    def mounts(self, key: str) -> list[Mount]:
        req = pb.MountsRequest(snapshotter=self.snapshotter, key=key)
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.Mounts, req).mounts]

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        req = pb.CommitSnapshotRequest(snapshotter=self.snapshotter, name=name, key=key, labels=labels or {})
        self.client.call(self.client.api.snapshots.Commit, req)

    def remove(self, key: str) -> None:
        req = pb.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key)
        self.client.call(self.client.api.snapshots.Remove, req)

    def stat(self, key: str) -> SnapshotInfo:
        req = pb.StatSnapshotRequest(snapshotter=self.snapshotter, key=key)
        return _info(self.client.call(self.client.api.snapshots.Stat, req).info)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def update_labels(self, key: str, labels: Mapping[str, str]) -> SnapshotInfo:
        """Set these labels (an empty value removes one), the others left as they are."""
        req = pb.UpdateSnapshotRequest(
            snapshotter=self.snapshotter,
            info=pb.Info(name=key, labels={k: v for k, v in labels.items() if v}),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]),
        )
        return _info(self.client.call(self.client.api.snapshots.Update, req).info)

    def usage(self, key: str) -> Usage:
        """Disk usage of the snapshot's own layer (NotFound when there is no such snapshot)."""
        req = pb.UsageRequest(snapshotter=self.snapshotter, key=key)
        resp = self.client.call(self.client.api.snapshots.Usage, req)
        return Usage(int(resp.size), int(resp.inodes))

    def list(self, *filters: str) -> list[SnapshotInfo]:
        req = pb.ListSnapshotsRequest(snapshotter=self.snapshotter, filters=list(filters))
        return [
            _info(i) for resp in self.client.stream(self.client.api.snapshots.List, req) for i in resp.info
        ]


def apply_layer(client: Client, layer: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
    """Diff.Apply: unpack the layer blob onto the mounts; returns the uncompressed layer's descriptor."""
    return client.diff.apply(layer, mounts)
