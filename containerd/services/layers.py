"""Snapshots and diff: gRPC glue over the overlay snapshotter and the layer applier/comparer."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.nscontent import NamespacedContent
from containerd.metadata.records import LeaseResource
from containerd.rpc import handler, lease_of, namespace_of, timestamp
from containerd.snapshots.mount import Mount
from containerd.snapshots.types import SnapshotInfo

if TYPE_CHECKING:
    from containerd.server import Daemon

from protos.gen.containerd_api.events import snapshot_pb2 as snapshot_events
from protos.gen.containerd_api.services.diff.v1 import diff_pb2, diff_pb2_grpc
from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from protos.gen.containerd_api.types import descriptor_pb2, mount_pb2

_KINDS = {"view": snapshots_pb2.VIEW, "active": snapshots_pb2.ACTIVE, "committed": snapshots_pb2.COMMITTED}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"


def mount_to(m: Mount) -> Any:
    return mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=list(m.options))


def mount_from(msg: Any) -> Mount:
    return Mount(msg.type, msg.source, msg.target, list(msg.options))


def info_to(info: SnapshotInfo) -> Any:
    return snapshots_pb2.Info(
        name=info.name,
        parent=info.parent,
        kind=_KINDS.get(info.kind, snapshots_pb2.UNKNOWN),
        labels=info.labels,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
    )


class SnapshotsService(snapshots_pb2_grpc.SnapshotsServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _snapshotter(self, name: str) -> Any:
        snapshotter = self.daemon.snapshotters_by_name.get(name or self.daemon.cfg.snapshotter)
        if snapshotter is None:
            raise InvalidArgument(f"snapshotter not loaded: {name}")
        return snapshotter

    def _hold(self, context: grpc.ServicerContext, ns: str, snapshotter: str, key: str) -> None:
        lease = lease_of(context)
        if lease:
            with self.daemon.db.transaction() as tx:
                tx.leases(ns).add_resource(
                    lease, LeaseResource(key, f"snapshots/{snapshotter or self.daemon.cfg.snapshotter}")
                )

    @handler
    def Prepare(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self._hold(context, ns, request.snapshotter, request.key)
        mounts = self._snapshotter(request.snapshotter).prepare(
            ns, request.key, request.parent, dict(request.labels)
        )
        self.daemon.publish(
            ns, "/snapshot/prepare", snapshot_events.SnapshotPrepare(key=request.key, parent=request.parent)
        )
        return snapshots_pb2.PrepareSnapshotResponse(mounts=[mount_to(m) for m in mounts])

    @handler
    def View(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self._hold(context, ns, request.snapshotter, request.key)
        mounts = self._snapshotter(request.snapshotter).view(
            ns, request.key, request.parent, dict(request.labels)
        )
        return snapshots_pb2.ViewSnapshotResponse(mounts=[mount_to(m) for m in mounts])

    @handler
    def Mounts(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        mounts = self._snapshotter(request.snapshotter).mounts(ns, request.key)
        return snapshots_pb2.MountsResponse(mounts=[mount_to(m) for m in mounts])

    @handler
    def Commit(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self._hold(context, ns, request.snapshotter, request.name)
        self._snapshotter(request.snapshotter).commit(ns, request.name, request.key, dict(request.labels))
        self.daemon.publish(
            ns, "/snapshot/commit", snapshot_events.SnapshotCommit(key=request.key, name=request.name)
        )
        return empty_pb2.Empty()

    @handler
    def Remove(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self._snapshotter(request.snapshotter).remove(ns, request.key)
        self.daemon.publish(ns, "/snapshot/remove", snapshot_events.SnapshotRemove(key=request.key))
        return empty_pb2.Empty()

    @handler
    def Stat(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        return snapshots_pb2.StatSnapshotResponse(
            info=info_to(self._snapshotter(request.snapshotter).stat(ns, request.key))
        )

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        info = SnapshotInfo(
            name=request.info.name,
            parent=request.info.parent,
            kind=_KIND_NAMES.get(request.info.kind, "active"),
            labels=dict(request.info.labels),
        )
        updated = self._snapshotter(request.snapshotter).update(
            ns, info, list(request.update_mask.paths) or None
        )
        return snapshots_pb2.UpdateSnapshotResponse(info=info_to(updated))

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        from containerd.filters import map_field, parse_all

        ns = namespace_of(context)
        matcher = parse_all(list(request.filters))

        def field(info: SnapshotInfo, path: Any) -> str | None:
            if not path:
                return None
            if path[0] == "labels":
                return map_field(info.labels, path[1:])
            value = {"name": info.name, "parent": info.parent, "kind": info.kind}.get(".".join(path))
            return value or None

        batch: list[Any] = []
        for info in self._snapshotter(request.snapshotter).walk(ns):
            if matcher.match(lambda path, i=info: field(i, path)):  # type: ignore[misc]
                batch.append(info_to(info))
            if len(batch) >= 100:
                yield snapshots_pb2.ListSnapshotsResponse(info=batch)
                batch = []
        if batch:
            yield snapshots_pb2.ListSnapshotsResponse(info=batch)

    @handler
    def Usage(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        size, inodes = self._snapshotter(request.snapshotter).usage(ns, request.key)
        return snapshots_pb2.UsageResponse(size=size, inodes=inodes)

    @handler
    def Cleanup(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._snapshotter(request.snapshotter).cleanup()
        return empty_pb2.Empty()


class DiffService(diff_pb2_grpc.DiffServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Apply(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.diff.apply import apply

        ns = namespace_of(context)
        content = NamespacedContent(self.daemon.db, self.daemon.content, ns)
        desc = request.diff
        content.info(desc.digest)  # NotFound unless this namespace has it
        # The blob file itself: verified when it was written, so apply may seek in it and trust
        # its digest (a plain tar's diff id) instead of hashing it again.
        try:
            blob = open(self.daemon.content.blob_path(desc.digest), "rb")  # closed below
        except FileNotFoundError:
            raise NotFound(f"content {desc.digest}: not found") from None
        with blob:
            applied = apply(
                [mount_from(m) for m in request.mounts], blob, desc.media_type,
                tmp_dir=self.daemon.scratch_dir(), verified=desc.digest,
            )  # fmt: skip
        return diff_pb2.ApplyResponse(
            applied=descriptor_pb2.Descriptor(
                media_type=applied.media_type, digest=applied.digest, size=applied.size
            )
        )

    @handler
    def Diff(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.diff.compare import compare
        from containerd.diff.types import OCI_LAYER_GZIP, WHITEOUT_STYLE_LABEL

        ns = namespace_of(context)
        media_type = request.media_type or OCI_LAYER_GZIP
        scratch = self.daemon.scratch_dir()
        labels = dict(request.labels)
        whiteouts = labels.pop(WHITEOUT_STYLE_LABEL, "")
        with tempfile.TemporaryFile(dir=scratch) as out:
            result = compare(
                [mount_from(m) for m in request.left],
                [mount_from(m) for m in request.right],
                out,
                media_type,
                tmp_dir=scratch,
                source_date_epoch=request.source_date_epoch.seconds
                if request.HasField("source_date_epoch")
                else None,
                docker_whiteouts=whiteouts == "docker",
            )
            out.seek(0)
            labels[UNCOMPRESSED_LABEL] = result.uncompressed_digest
            content = NamespacedContent(self.daemon.db, self.daemon.content, ns)
            ref = request.ref or f"diff-{secrets.token_hex(8)}"
            writer = content.writer(ref, result.descriptor.size, lease=lease_of(context))
            try:
                while chunk := out.read(1 << 20):
                    writer.write(chunk)
                try:
                    digest = writer.commit(result.descriptor.size, result.descriptor.digest, labels)
                except AlreadyExists:  # the same layer was made before: it is recorded all the same
                    digest = result.descriptor.digest
            finally:
                writer.close()
        return diff_pb2.DiffResponse(
            diff=descriptor_pb2.Descriptor(media_type=media_type, digest=digest, size=result.descriptor.size)
        )
