"""Typed values in containerd's API (google.protobuf.Any), as containerd's typeurl package has them.

containerd carries OCI documents (a container's spec, an exec's process, a resource update)
as JSON inside an Any whose type URL names the OCI type, and protobuf messages (events,
runtime options, metrics) as their serialised bytes under the message's bare full name
(`containerd.events.TaskExit`, not protobuf's `type.googleapis.com/...`: containerd's Go
clients look types up by that exact string). A Payload is either, without protobuf types
at the client's boundary.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from containerd.client.errors import InvalidArgument

# The OCI runtime-spec types containerd packs as JSON (its typeurl registrations).
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
PROCESS_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Process"
RESOURCES_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Payload:
    """A type URL and the bytes of a value of that type."""

    type_url: str
    value: bytes = b""

    @classmethod
    def json(cls, type_url: str, document: Mapping[str, Any]) -> Payload:
        """An OCI document (spec, process, resources) as containerd packs it."""
        return cls(type_url, json.dumps(document, separators=(",", ":")).encode())

    @classmethod
    def message(cls, msg: Message) -> Payload:
        """A protobuf message under containerd's type URL (its bare full name)."""
        return cls(type_url_of(msg), msg.SerializeToString())

    def document(self) -> Any:
        """The JSON value inside (InvalidArgument if it is not JSON)."""
        try:
            return json.loads(self.value)
        except ValueError as exc:
            raise InvalidArgument(f"payload of type {self.type_url} is not JSON: {exc}") from None

    def unpack(self, cls: type[M]) -> M:
        """The message inside, which must be of type CLS (InvalidArgument otherwise)."""
        name = cls.DESCRIPTOR.full_name
        if self.type_url.rsplit("/", 1)[-1] != name:
            raise InvalidArgument(f"payload is a {self.type_url}, not a {name}")
        try:
            return cls.FromString(self.value)
        except DecodeError as exc:
            raise InvalidArgument(f"payload of type {name} does not decode: {exc}") from None

    def decode(self) -> Message | None:
        """The message inside when its type is a protobuf message this process has loaded
        (every containerd event type is, see containerd.client.events), else None."""
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(self.type_url.rsplit("/", 1)[-1])
        except KeyError:
            return None
        return self.unpack(message_factory.GetMessageClass(descriptor))

    def to_pb(self) -> any_pb2.Any:
        return any_pb2.Any(type_url=self.type_url, value=self.value)

    @classmethod
    def from_pb(cls, msg: any_pb2.Any) -> Payload | None:
        """None for an unset Any (no type and no bytes), as containerd's nil."""
        if not msg.type_url and not msg.value:
            return None
        return cls(msg.type_url, bytes(msg.value))


def type_url_of(msg: Message) -> str:
    return str(msg.DESCRIPTOR.full_name)


def payload_to_pb(payload: Payload | None) -> any_pb2.Any | None:
    return payload.to_pb() if payload is not None else None
