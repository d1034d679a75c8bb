"""The events service: subscribe to the daemon's events (task exits, OOMs, image and
container changes...) and publish or forward one.

Events travel as Envelopes whose payload is a protobuf message under its bare full name;
every containerd event type is loaded here (and re-exported: TaskExit, TaskOOM, ...), so
Envelope.decode() returns the message and Envelope.unpack(TaskExit) a typed one.

A subscription is a server stream that lives until it is cancelled or the daemon goes; a
Subscribe call gives no sign of when the daemon starts delivering, so a caller that must
not miss an event publishes a marker of its own and waits for it to come back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.message import Message

from containerd.client.errors import from_rpc
from containerd.client.typeurl import Payload
from protos.gen.containerd_api.events import (
    container_pb2,
    content_pb2,
    image_pb2,
    namespace_pb2,
    snapshot_pb2,
    task_pb2,
)
from protos.gen.containerd_api.services.events.v1 import events_pb2 as pb

if TYPE_CHECKING:
    from containerd.client.client import Client

M = TypeVar("M", bound=Message)

TaskCreate = task_pb2.TaskCreate
TaskStart = task_pb2.TaskStart
TaskDelete = task_pb2.TaskDelete
TaskIO = task_pb2.TaskIO
TaskExit = task_pb2.TaskExit
TaskOOM = task_pb2.TaskOOM
TaskExecAdded = task_pb2.TaskExecAdded
TaskExecStarted = task_pb2.TaskExecStarted
TaskPaused = task_pb2.TaskPaused
TaskResumed = task_pb2.TaskResumed
TaskCheckpointed = task_pb2.TaskCheckpointed
ContainerCreate = container_pb2.ContainerCreate
ContainerUpdate = container_pb2.ContainerUpdate
ContainerDelete = container_pb2.ContainerDelete
ContentDelete = content_pb2.ContentDelete
ImageCreate = image_pb2.ImageCreate
ImageUpdate = image_pb2.ImageUpdate
ImageDelete = image_pb2.ImageDelete
NamespaceCreate = namespace_pb2.NamespaceCreate
NamespaceUpdate = namespace_pb2.NamespaceUpdate
NamespaceDelete = namespace_pb2.NamespaceDelete
SnapshotPrepare = snapshot_pb2.SnapshotPrepare
SnapshotCommit = snapshot_pb2.SnapshotCommit
SnapshotRemove = snapshot_pb2.SnapshotRemove


@dataclass(frozen=True)
class Envelope:
    timestamp: int  # ns since the epoch
    namespace: str
    topic: str  # "/tasks/exit", "/images/create", ...
    event: Payload | None

    def decode(self) -> Message | None:
        """The event message, when its type is known (every containerd event type is)."""
        return self.event.decode() if self.event is not None else None

    def unpack(self, cls: type[M]) -> M:
        """The event as CLS (InvalidArgument if it is another type)."""
        return (self.event or Payload("")).unpack(cls)


def _envelope(msg: pb.Envelope) -> Envelope:
    return Envelope(int(msg.timestamp.ToNanoseconds()), msg.namespace, msg.topic, Payload.from_pb(msg.event))


class Subscription:
    """The events matching a subscription's filters, as they happen; iterate, and cancel()
    (or leave the `with` block) to end it. Iteration ends after cancel(); a lost daemon
    raises Unavailable."""

    def __init__(self, responses: Any, address: str) -> None:
        self._responses = responses  # grpc's stream: an iterator and a grpc.Call
        self._address = address
        self._cancelled = False

    def __iter__(self) -> Iterator[Envelope]:
        return self

    def __next__(self) -> Envelope:
        try:
            return _envelope(next(self._responses))
        except grpc.RpcError as exc:
            if self._cancelled:
                raise StopIteration from None
            raise from_rpc(exc, self._address) from None

    def cancel(self) -> None:
        self._cancelled = True
        self._responses.cancel()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Events:
    def __init__(self, client: Client) -> None:
        self.client = client

    def subscribe(self, *filters: str) -> Subscription:
        """Events of every namespace matching any of the filters (`topic=="/tasks/exit"`,
        `namespace==default`...), all if none; each Envelope says its namespace."""
        responses = self.client.api.events.Subscribe(pb.SubscribeRequest(filters=list(filters)))
        return Subscription(responses, self.client.address)

    def publish(self, topic: str, event: Message | Payload, *, timeout: float | None = None) -> None:
        """Publish EVENT on TOPIC in the client's namespace (TIMEOUT: instead of the client's)."""
        payload = event if isinstance(event, Payload) else Payload.message(event)
        req = pb.PublishRequest(topic=topic, event=payload.to_pb())
        self.client.call(self.client.api.events.Publish, req, timeout=timeout)

    def forward(self, envelope: Envelope) -> None:
        """Re-publish an envelope as it is (its namespace and timestamp kept)."""
        msg = pb.Envelope(namespace=envelope.namespace, topic=envelope.topic)
        msg.timestamp.FromNanoseconds(envelope.timestamp)
        if envelope.event is not None:
            msg.event.CopyFrom(envelope.event.to_pb())
        self.client.call(self.client.api.events.Forward, pb.ForwardRequest(envelope=msg))
