"""The content service: namespaced views of the shared blob store, and resumable writes.

Blobs live once on disk (containerd/content); which namespace can see a blob is a
metadata record, added when a write commits in that namespace. A client's lease
(`containerd-lease` header) is told about the ingest while it is written and about the
blob once committed, so garbage collection leaves work in progress alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.content.digest import validate_digest
from containerd.content.store import ContentInfo
from containerd.errors import InvalidArgument
from containerd.metadata.nscontent import NamespacedContent, NamespacedWriter
from containerd.rpc import handler, lease_of, namespace_of, timestamp

if TYPE_CHECKING:
    from containerd.server import Daemon

from protos.gen.containerd_api.events import content_pb2 as content_events
from protos.gen.containerd_api.services.content.v1 import content_pb2, content_pb2_grpc

STAT, WRITE, COMMIT = content_pb2.STAT, content_pb2.WRITE, content_pb2.COMMIT


def _info_to(info: ContentInfo) -> Any:
    return content_pb2.Info(
        digest=info.digest,
        size=info.size,
        created_at=timestamp(info.created_at),
        updated_at=timestamp(info.updated_at),
        labels=info.labels,
    )


def _status_to(status: Any) -> Any:
    return content_pb2.Status(
        ref=status.ref,
        offset=status.offset,
        total=status.total,
        expected=status.expected,
        started_at=timestamp(status.started_at),
        updated_at=timestamp(status.updated_at),
    )


class ContentService(content_pb2_grpc.ContentServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _content(self, context: grpc.ServicerContext) -> NamespacedContent:
        return NamespacedContent(self.daemon.db, self.daemon.content, namespace_of(context))

    @handler
    def Info(self, request: Any, context: grpc.ServicerContext) -> Any:
        validate_digest(request.digest)
        return content_pb2.InfoResponse(info=_info_to(self._content(context).info(request.digest)))

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        validate_digest(request.info.digest)
        content = self._content(context)
        current = content.info(request.info.digest)
        wanted = ContentInfo(
            current.digest, current.size, current.created_at, current.updated_at, dict(request.info.labels)
        )
        return content_pb2.UpdateResponse(
            info=_info_to(content.update(wanted, list(request.update_mask.paths)))
        )

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        found = self._content(context).walk(list(request.filters))
        batch = 100
        for start in range(0, len(found), batch):
            yield content_pb2.ListContentResponse(info=[_info_to(i) for i in found[start : start + batch]])

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        validate_digest(request.digest)
        content = self._content(context)
        content.delete(request.digest)
        self.daemon.publish(
            content.namespace, "/content/delete", content_events.ContentDelete(digest=request.digest)
        )
        self.daemon.collect_garbage()
        return empty_pb2.Empty()

    @handler
    def Read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        validate_digest(request.digest)
        if request.offset < 0:
            raise InvalidArgument(f"invalid offset {request.offset}")
        offset = request.offset
        for chunk in self._content(context).read(
            request.digest, request.offset, request.size if request.size > 0 else -1
        ):
            yield content_pb2.ReadContentResponse(offset=offset, data=chunk)
            offset += len(chunk)

    @handler
    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        return content_pb2.StatusResponse(status=_status_to(self._content(context).status(request.ref)))

    @handler
    def ListStatuses(self, request: Any, context: grpc.ServicerContext) -> Any:
        found = self._content(context).list_statuses(list(request.filters))
        return content_pb2.ListStatusesResponse(statuses=[_status_to(s) for s in found])

    @handler
    def Abort(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._content(context).abort(request.ref)
        return empty_pb2.Empty()

    @handler
    def Write(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        content = self._content(context)
        lease = lease_of(context)
        requests = iter(request_iterator)
        first = _next_or_gone(requests, context)
        if first is None:
            return
        if not first.ref:
            raise InvalidArgument("first message of a write must carry a ref")
        ref = first.ref
        writer = content.writer(ref, first.total, first.expected, lease=lease)
        # grpc may abandon this generator when the client cancels between two responses, so the
        # ingest's lock is released by the RPC's end as well, not only by the finally below; the
        # lock keeps that close from landing in the middle of a write.
        in_use = threading.Lock()

        def release() -> None:
            with in_use:
                writer.close()

        context.add_callback(release)
        try:
            request: Any = first
            while request is not None:
                if request.ref and request.ref != ref:
                    raise InvalidArgument(f"ref changed mid-write: {request.ref!r} after {ref!r}")
                with in_use:
                    response = self._apply(writer, request)
                yield response
                if request.action == COMMIT:
                    return
                request = _next_or_gone(requests, context)
        finally:
            writer.close()

    @staticmethod
    def _apply(writer: NamespacedWriter, request: Any) -> Any:
        response = content_pb2.WriteContentResponse(action=request.action)
        if request.action in (WRITE, COMMIT):
            if request.data or request.offset:
                if request.offset == 0 and writer.offset > 0:
                    writer.truncate(0)  # the client restarts the upload from scratch
                writer.write(bytes(request.data), request.offset)
            if request.action == COMMIT:
                if request.expected:
                    validate_digest(request.expected)
                response.digest = writer.commit(
                    request.total or writer.total, request.expected or writer.expected, dict(request.labels)
                )
        elif request.action != STAT:
            raise InvalidArgument(f"unknown write action {request.action}")
        response.offset = writer.offset
        response.total = request.total or writer.total
        if not writer.closed:
            status = writer.status()
            response.started_at.CopyFrom(timestamp(status.started_at))
            response.updated_at.CopyFrom(timestamp(status.updated_at))
        return response


def _next_or_gone(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
    """The next request, or None when the client ended the stream, cancelled it or went away:
    the ingest stays on disk for the same ref to resume, and nothing is an error."""
    try:
        return next(requests, None)
    except Exception:  # grpc raises its own types from a cancelled request stream
        if context.is_active():
            raise
        return None
