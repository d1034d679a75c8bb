"""The content service: namespaced views of the shared blob store, and resumable writes.

Blobs live once on disk (containerd/content); which namespace can see a blob is a
metadata record, added when a write commits in that namespace. A client's lease
(`containerd-lease` header) is told about the ingest while it is written and about the
blob once committed, so garbage collection leaves work in progress alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.content.digest import validate_digest
from containerd.content.store import ContentInfo
from containerd.errors import AlreadyExists, InvalidArgument
from containerd.metadata.records import LeaseResource
from containerd.rpc import handler, lease_of, namespace_of, timestamp

if TYPE_CHECKING:
    from containerd.server import Daemon

import protos

protos.load()
from containerd_api.events import content_pb2 as content_events  # noqa: E402
from containerd_api.services.content.v1 import content_pb2, content_pb2_grpc  # noqa: E402

STAT, WRITE, COMMIT = content_pb2.STAT, content_pb2.WRITE, content_pb2.COMMIT
# A namespace-scoped ingest ref: two namespaces may use the same ref without colliding.
_REF_SEPARATOR = "/"


def _info_to(info: ContentInfo) -> Any:
    return content_pb2.Info(
        digest=info.digest,
        size=info.size,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=info.labels,
    )


def _status_to(status: Any, ref: str) -> Any:
    return content_pb2.Status(
        ref=ref,
        offset=status.offset,
        total=status.total,
        expected=status.expected,
        started_at=timestamp(status.started_at),
        updated_at=timestamp(status.updated_at),
    )


class ContentService(content_pb2_grpc.ContentServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _store_ref(self, namespace: str, ref: str) -> str:
        if not ref:
            raise InvalidArgument("ref must not be empty")
        return f"{namespace}{_REF_SEPARATOR}{ref}"

    @handler
    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        validate_digest(request.digest)
        with self.daemon.db.transaction() as tx:
            info = tx.content(ns).get(request.digest)
        return content_pb2.InfoResponse(info=_info_to(info))

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        validate_digest(request.info.digest)
        with self.daemon.db.transaction() as tx:
            records = tx.content(ns)
            current = records.get(request.info.digest)
            wanted = ContentInfo(current.digest, current.size, current.created_at, current.updated_at, dict(request.info.labels))
            info = records.update(wanted, list(request.update_mask.paths))
        return content_pb2.UpdateResponse(info=_info_to(info))

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.content(ns).list(list(request.filters))
        batch = 100
        for start in range(0, len(found), batch):
            yield content_pb2.ListContentResponse(info=[_info_to(i) for i in found[start : start + batch]])

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        validate_digest(request.digest)
        with self.daemon.db.transaction() as tx:
            tx.content(ns).remove(request.digest)
        self.daemon.publish(ns, "/content/delete", content_events.ContentDelete(digest=request.digest))
        self.daemon.collect_garbage()
        return empty_pb2.Empty()

    @handler
    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        ns = namespace_of(context)
        validate_digest(request.digest)
        if request.offset < 0:
            raise InvalidArgument(f"invalid offset {request.offset}")
        with self.daemon.db.transaction() as tx:
            tx.content(ns).get(request.digest)
        offset = request.offset
        for chunk in self.daemon.content.read(request.digest, request.offset, request.size if request.size > 0 else -1):
            yield content_pb2.ReadContentResponse(offset=offset, data=chunk)
            offset += len(chunk)

    @handler
    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        status = self.daemon.content.status(self._store_ref(ns, request.ref))
        return content_pb2.StatusResponse(status=_status_to(status, request.ref))

    @handler
    def ListStatuses(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.filters import parse_all

        ns = namespace_of(context)
        prefix = ns + _REF_SEPARATOR
        matcher = parse_all(list(request.filters))
        statuses = []
        for status in self.daemon.content.list_statuses():
            if not status.ref.startswith(prefix):
                continue
            ref = status.ref[len(prefix) :]
            if matcher.match(lambda path, r=ref: r if tuple(path) == ("ref",) else None):  # type: ignore[misc]
                statuses.append(_status_to(status, ref))
        return content_pb2.ListStatusesResponse(statuses=statuses)

    @handler
    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self.daemon.content.abort(self._store_ref(ns, request.ref))
        return empty_pb2.Empty()

    @handler
    def Write(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        ns = namespace_of(context)
        lease = lease_of(context)
        requests = iter(request_iterator)
        first = next(requests, None)
        if first is None:
            return
        if not first.ref:
            raise InvalidArgument("first message of a write must carry a ref")
        ref = first.ref
        store_ref = self._store_ref(ns, ref)
        if first.expected:
            validate_digest(first.expected)
            with self.daemon.db.transaction() as tx:
                if tx.content(ns).has(first.expected):
                    raise AlreadyExists(f"content {first.expected}: already exists")
        if lease:
            with self.daemon.db.transaction() as tx:
                tx.leases(ns).add_resource(lease, LeaseResource(store_ref, "ingests"))
        writer = self.daemon.content.writer(store_ref, first.total, first.expected)
        try:
            request: Any = first
            while request is not None:
                if request.ref and request.ref != ref:
                    raise InvalidArgument(f"ref changed mid-write: {request.ref!r} after {ref!r}")
                if request.total:
                    writer.total = request.total
                if request.expected:
                    validate_digest(request.expected)
                    writer.expected = request.expected
                response = content_pb2.WriteContentResponse(action=request.action)
                if request.action in (WRITE, COMMIT):
                    if request.data or request.offset:
                        if request.offset == 0 and writer.offset > 0:
                            writer.truncate(0)  # the client restarts the upload from scratch
                        if request.offset != writer.offset:
                            raise InvalidArgument(f"write at offset {request.offset}, ingest at {writer.offset}")
                        writer.write(bytes(request.data))
                    if request.action == COMMIT:
                        digest = self._commit(ns, lease, writer, request)
                        response.digest = digest
                elif request.action != STAT:
                    raise InvalidArgument(f"unknown write action {request.action}")
                status = writer.status() if not writer.closed else None
                response.offset = writer.offset
                response.total = writer.total
                if status is not None:
                    response.started_at.CopyFrom(timestamp(status.started_at))
                    response.updated_at.CopyFrom(timestamp(status.updated_at))
                yield response
                if request.action == COMMIT:
                    return
                request = next(requests, None)
        finally:
            writer.close()

    def _commit(self, ns: str, lease: str, writer: Any, request: Any) -> str:
        size = request.total or writer.total
        expected = request.expected or writer.expected
        try:
            digest = writer.commit(size, expected)
        except AlreadyExists:
            digest = writer.digest()  # verified bytes that another writer committed first: share the blob
        labels = dict(request.labels)
        with self.daemon.db.transaction() as tx:
            records = tx.content(ns)
            if records.has(digest):
                raise AlreadyExists(f"content {digest}: already exists")
            records.add(digest, writer.offset, labels)
            if lease:
                tx.leases(ns).add_resource(lease, LeaseResource(digest, "content"))
        return digest
