"""Records kept in the metadata DB, shaped like containerd's API messages.

The gRPC services convert between these and the protobuf messages; timestamps are
integer nanoseconds since the epoch; `AnyProto` carries a google.protobuf.Any as-is.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AnyProto:
    type_url: str
    value: bytes = b""


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    name: str
    options: AnyProto | None = None


@dataclass(frozen=True)
class Container:
    """containerd.services.containers.v1.Container."""

    id: str
    runtime: Runtime
    spec: AnyProto | None = None
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    snapshotter: str = ""
    snapshot_key: str = ""
    extensions: dict[str, AnyProto] = field(default_factory=dict)
    sandbox: str = ""
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Descriptor:
    """containerd.types.Descriptor (an OCI descriptor)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """containerd.services.images.v1.Image."""

    name: str
    target: Descriptor
    labels: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True)
class Lease:
    id: str
    labels: dict[str, str] = field(default_factory=dict)
    created_at: int = 0


@dataclass(frozen=True)
class LeaseResource:
    """What a lease holds: type "content" (id = digest), "ingests" (id = ref) or
    "snapshots/<snapshotter>" (id = snapshot key)."""

    id: str
    type: str


@dataclass(frozen=True)
class SnapshotRecord:
    """Which namespace owns a snapshot key. `backend_key` is the snapshotter's own name for
    it when the snapshotter is not namespaced itself ("" = the same as `key`)."""

    snapshotter: str
    key: str
    backend_key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    created_at: int = 0
    updated_at: int = 0

    @property
    def name_in_snapshotter(self) -> str:
        return self.backend_key or self.key
