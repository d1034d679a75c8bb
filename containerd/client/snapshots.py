"""One snapshotter through the snapshots service, and the diff service's Apply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from containerd.client.errors import NotFound
from containerd.client.images import descriptor_from_pb, descriptor_to_pb
from containerd.client.media import Descriptor

if TYPE_CHECKING:
    from containerd.client.client import Client


@dataclass(frozen=True)
class Mount:
    """containerd.types.Mount: how to mount (part of) a snapshot."""

    type: str
    source: str
    target: str = ""
    options: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    parent: str
    kind: str  # "view", "active", "committed" or "unknown"
    labels: Mapping[str, str] = field(default_factory=dict)


def mount_from_pb(msg: Any) -> Mount:
    return Mount(msg.type, msg.source, msg.target, list(msg.options))


def mount_to_pb(mount: Mount) -> Any:
    from containerd_api.types import mount_pb2

    return mount_pb2.Mount(type=mount.type, source=mount.source, target=mount.target, options=list(mount.options))


class Snapshots:
    def __init__(self, client: Client, snapshotter: str = "overlayfs") -> None:
        from containerd_api.services.snapshots.v1 import snapshots_pb2

        self.client = client
        self.snapshotter = snapshotter
        self._pb = snapshots_pb2
        self._kinds = {snapshots_pb2.VIEW: "view", snapshots_pb2.ACTIVE: "active", snapshots_pb2.COMMITTED: "committed"}

    def _info(self, msg: Any) -> SnapshotInfo:
        return SnapshotInfo(msg.name, msg.parent, self._kinds.get(msg.kind, "unknown"), dict(msg.labels))

    def prepare(self, key: str, parent: str = "", labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = self._pb.PrepareSnapshotRequest(snapshotter=self.snapshotter, key=key, parent=parent, labels=labels or {})
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.Prepare, req).mounts]

    def view(self, key: str, parent: str, labels: Mapping[str, str] | None = None) -> list[Mount]:
        req = self._pb.ViewSnapshotRequest(snapshotter=self.snapshotter, key=key, parent=parent, labels=labels or {})
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.View, req).mounts]

    def mounts(self, key: str) -> list[Mount]:
        req = self._pb.MountsRequest(snapshotter=self.snapshotter, key=key)
        return [mount_from_pb(m) for m in self.client.call(self.client.api.snapshots.Mounts, req).mounts]

    def commit(self, name: str, key: str, labels: Mapping[str, str] | None = None) -> None:
        req = self._pb.CommitSnapshotRequest(snapshotter=self.snapshotter, name=name, key=key, labels=labels or {})
        self.client.call(self.client.api.snapshots.Commit, req)

    def remove(self, key: str) -> None:
        req = self._pb.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key)
        self.client.call(self.client.api.snapshots.Remove, req)

    def stat(self, key: str) -> SnapshotInfo:
        req = self._pb.StatSnapshotRequest(snapshotter=self.snapshotter, key=key)
        return self._info(self.client.call(self.client.api.snapshots.Stat, req).info)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def list(self, *filters: str) -> list[SnapshotInfo]:
        req = self._pb.ListSnapshotsRequest(snapshotter=self.snapshotter, filters=list(filters))
        return [self._info(i) for resp in self.client.stream(self.client.api.snapshots.List, req) for i in resp.info]


def apply_layer(client: Client, layer: Descriptor, mounts: list[Mount]) -> Descriptor:
    """Diff.Apply: unpack the layer blob onto the mounts; returns the uncompressed layer's descriptor."""
    from containerd_api.services.diff.v1 import diff_pb2

    req = diff_pb2.ApplyRequest(diff=descriptor_to_pb(layer), mounts=[mount_to_pb(m) for m in mounts])
    return descriptor_from_pb(client.call(client.api.diff.Apply, req, no_deadline=True).applied)
