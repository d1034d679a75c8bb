"""A connection to a containerd-compatible daemon (pycontainerd or containerd itself).

Every call carries the `containerd-namespace` header; inside `with client.lease():` (or
`with client.using_lease(id):` for one the caller manages) it also carries
`containerd-lease`, so whatever the calls create (content, ingests, snapshots) is held by
the lease and not garbage-collected before the work that made it is finished and
referenced from an image.

The lease in force is kept in a ContextVar owned by the Client: a thread that shares the
client with others (a server handling requests in a pool) never hands its lease to
another thread's calls.

The services, one typed wrapper each (as containerd's Go client has them):
client.containers, client.tasks, client.events, client.leases, client.diff,
client.content, client.snapshots(name), and the image functions of this package.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from containerd.client.containers import Containers
from containerd.client.content import ContentStore
from containerd.client.diff import Diff
from containerd.client.errors import ContainerdError, NotFound, from_rpc
from containerd.client.events import Events
from containerd.client.leases import DEFAULT_LEASE_TTL, LEASE_HEADER, Leases
from containerd.client.snapshots import Snapshots
from containerd.client.tasks import Tasks
from protos.gen.containerd_api.services.containers.v1 import containers_pb2_grpc
from protos.gen.containerd_api.services.content.v1 import content_pb2_grpc
from protos.gen.containerd_api.services.diff.v1 import diff_pb2_grpc
from protos.gen.containerd_api.services.events.v1 import events_pb2_grpc
from protos.gen.containerd_api.services.images.v1 import images_pb2_grpc
from protos.gen.containerd_api.services.leases.v1 import leases_pb2_grpc
from protos.gen.containerd_api.services.namespaces.v1 import namespace_pb2_grpc
from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2_grpc
from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2_grpc
from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc

NAMESPACE_HEADER = "containerd-namespace"
# Blobs travel in chunks well below this; list answers (images, content) may be large.
_MAX_MESSAGE = 64 << 20

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


class _Headers(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the namespace and (when one is in force) the lease to every call."""

    def __init__(self, namespace: str, lease: contextvars.ContextVar[str]) -> None:
        self._namespace = namespace
        self._lease = lease

    def _details(self, details: Any) -> Any:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k not in (NAMESPACE_HEADER, LEASE_HEADER)]
        metadata.append((NAMESPACE_HEADER, self._namespace))
        lease = self._lease.get()
        if lease:
            metadata.append((LEASE_HEADER, lease))
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class Api:
    """The raw, typed gRPC stubs of every service (for what the wrappers do not cover)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.containers = containers_pb2_grpc.ContainersStub(channel)
        self.content = content_pb2_grpc.ContentStub(channel)
        self.diff = diff_pb2_grpc.DiffStub(channel)
        self.events = events_pb2_grpc.EventsStub(channel)
        self.images = images_pb2_grpc.ImagesStub(channel)
        self.leases = leases_pb2_grpc.LeasesStub(channel)
        self.namespaces = namespace_pb2_grpc.NamespacesStub(channel)
        self.snapshots = snapshots_pb2_grpc.SnapshotsStub(channel)
        self.tasks = tasks_pb2_grpc.TasksStub(channel)
        self.version = version_pb2_grpc.VersionStub(channel)


class Client:
    """A namespace's view of one daemon.

    `address` is a unix socket path (with or without "unix://"). `timeout` (seconds) bounds
    each unary call; streams are bounded by their data, not by a deadline.
    """

    def __init__(
        self,
        address: str,
        namespace: str = "default",
        *,
        timeout: float | None = 120.0,
        _channel: grpc.Channel | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("a namespace is required")
        self.address = address[len("unix://") :] if address.startswith("unix://") else address
        self.namespace = namespace
        self.timeout = timeout
        self._owns_channel = _channel is None
        self._raw = _channel or grpc.insecure_channel(
            f"unix://{self.address}",
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        self._lease: contextvars.ContextVar[str] = contextvars.ContextVar(
            f"containerd-lease-{id(self)}", default=""
        )
        self.channel = grpc.intercept_channel(self._raw, _Headers(namespace, self._lease))
        self.api = Api(self.channel)
        self.content = ContentStore(self)
        self.containers = Containers(self)
        self.tasks = Tasks(self)
        self.events = Events(self)
        self.leases = Leases(self)
        self.diff = Diff(self)

    def snapshots(self, snapshotter: str = "overlayfs") -> Snapshots:
        return Snapshots(self, snapshotter)

    def version(self) -> tuple[str, str]:
        """The daemon's (version, revision)."""
        from google.protobuf import empty_pb2

        resp = self.call(self.api.version.Version, empty_pb2.Empty())
        return resp.version, resp.revision

    # --- lifetime ----------------------------------------------------------------------------

    def with_namespace(self, namespace: str) -> Client:
        """Another namespace over the same connection (closing it leaves the connection open)."""
        return Client(self.address, namespace, timeout=self.timeout, _channel=self._raw)

    def close(self) -> None:
        if self._owns_channel:
            self._raw.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls -------------------------------------------------------------------------------

    def call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        *,
        no_deadline: bool = False,
        timeout: float | None = None,
    ) -> Response:
        """A unary call; a failure becomes the matching containerd error kind.

        `no_deadline` is for calls whose work grows with the data (applying a layer) or that
        wait for something (Tasks.Wait); `timeout` overrides the client's for this call."""
        deadline = None if no_deadline else (timeout if timeout is not None else self.timeout)
        try:
            return method(request, timeout=deadline)
        except grpc.RpcError as exc:
            raise from_rpc(exc, self.address) from None

    def stream(
        self, method: grpc.UnaryStreamMultiCallable[Request, Response], request: Request
    ) -> Iterator[Response]:
        """A server-streaming call, its responses one by one; failures map as in call()."""
        responses: Any = method(request)  # a grpc.Call as well as an iterator
        try:
            yield from responses
        except grpc.RpcError as exc:
            raise from_rpc(exc, self.address) from None
        finally:
            responses.cancel()

    # --- leases ------------------------------------------------------------------------------

    @property
    def current_lease(self) -> str:
        """The lease the calls of this thread (context) carry, "" when none."""
        return self._lease.get()

    @contextmanager
    def using_lease(self, lease_id: str) -> Iterator[str]:
        """Carry an existing lease (one from client.leases.create) on this context's calls
        for the block; the lease itself is left alone (containerd's WithLease)."""
        token = self._lease.set(lease_id)
        try:
            yield lease_id
        finally:
            self._lease.reset(token)

    @contextmanager
    def lease(
        self, ttl: timedelta = DEFAULT_LEASE_TTL, labels: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """Hold everything created inside the block with a new lease, deleted at the end.

        The lease expires by itself after `ttl` (the `containerd.io/gc.expire` label), so a
        client that dies mid-import leaves nothing behind for ever. Nested blocks share the
        outer lease, as containerd's client does.
        """
        current = self._lease.get()
        if current:
            yield current
            return
        lease_id = self.leases.create(ttl=ttl, labels=labels).id
        failed = False
        try:
            with self.using_lease(lease_id):
                yield lease_id
        except BaseException:
            failed = True
            raise
        finally:
            try:
                self.leases.delete(lease_id, sync=True)
            except NotFound:
                pass  # expired and collected meanwhile
            except ContainerdError:
                if not failed:  # never hide the block's own error behind the clean-up's
                    raise
