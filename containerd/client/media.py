"""OCI and Docker image media types, descriptors, platforms and chain IDs.

Everything here is pure (no daemon): parsing the JSON of indexes, manifests and configs
with the checks an importer needs before trusting them.
"""

from __future__ import annotations

import json
import platform as _platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.digest import compute as compute_digest
from common.digest import is_digest
from containerd.client.errors import InvalidArgument

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})

# annotations containerd and the OCI spec put on a manifest descriptor in an index
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

# content and snapshot labels containerd's importer and unpacker set
LABEL_GC_REF_CONTENT = "containerd.io/gc.ref.content"
LABEL_GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot"
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"

# JSON blobs (indexes, manifests, configs) are read whole; nothing legitimate is this big.
MAX_JSON_BLOB = 32 << 20
# A DiffRequest label pycontainerd reads (containerd/diff/types.py): "docker" makes whiteouts
# as dockerd's tar writer does (mode 0600, the deletion's time) instead of containerd's
WHITEOUT_STYLE_LABEL = "pydocker.io/diff.whiteouts"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def validate_digest(value: object, what: str = "digest") -> str:
    if not is_digest(value):
        raise InvalidArgument(f"{what} {value!r} is not a sha256 digest")
    assert isinstance(value, str)
    return value


def compression_of(head: bytes) -> str:
    """The compression a stream starts with, by its magic bytes: "gzip", "zstd" or ""."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return ""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: Platform) -> bool:
        """Same OS and architecture; a variant only counts when both name one (amd64 has none)."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not (self.variant and other.variant and self.variant != other.variant)

    def to_json(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    @staticmethod
    def from_json(value: object) -> Platform | None:
        if not isinstance(value, Mapping):
            return None
        os_, arch = value.get("os"), value.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str):
            return None
        variant = value.get("variant")
        return Platform(os_, arch, variant if isinstance(variant, str) else "")


_MACHINES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


def host_platform() -> Platform:
    machine = _platform.machine()
    return Platform("linux", _MACHINES.get(machine, machine), "v7" if machine == "armv7l" else "")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor. `platform` only appears on an index's entries."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        """Key order as Go's encoding/json writes OCI descriptors (mediaType, digest, size, ...)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        return out

    @staticmethod
    def from_json(value: object, what: str = "descriptor") -> Descriptor:
        if not isinstance(value, Mapping):
            raise InvalidArgument(f"{what} is not a JSON object")
        media_type = value.get("mediaType", "")
        size = value.get("size")
        if not isinstance(media_type, str):
            raise InvalidArgument(f"{what} has a non-string mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"{what} has no valid size")
        digest = validate_digest(value.get("digest"), f"{what} digest")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidArgument(f"{what} has malformed annotations")
        return Descriptor(
            media_type, digest, size, dict(annotations), Platform.from_json(value.get("platform"))
        )


def canonical_json(value: Any) -> bytes:
    """Compact JSON with keys in the order given (deterministic for the same input)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def load_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # (nested deeper than Python's stack)
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


def parse_manifest(data: bytes, media_type: str, what: str = "manifest") -> Manifest:
    doc = load_json(data, what)
    if not isinstance(doc, Mapping):
        raise InvalidArgument(f"{what} is not a JSON object")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what} has no layers list")
    return Manifest(
        media_type or str(doc.get("mediaType", "")),
        Descriptor.from_json(doc.get("config"), f"{what} config"),
        [Descriptor.from_json(layer, f"{what} layer {i}") for i, layer in enumerate(layers)],
    )


def parse_index(data: bytes, what: str = "index") -> list[Descriptor]:
    doc = load_json(data, what)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("manifests"), list):
        raise InvalidArgument(f"{what} has no manifests list")
    return [Descriptor.from_json(m, f"{what} entry {i}") for i, m in enumerate(doc["manifests"])]


@dataclass(frozen=True)
class ImageConfig:
    platform: Platform | None
    diff_ids: list[str]


def parse_config(data: bytes, what: str = "image config") -> ImageConfig:
    doc = load_json(data, what)
    if not isinstance(doc, Mapping):
        raise InvalidArgument(f"{what} is not a JSON object")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
    if not isinstance(diff_ids, list):
        raise InvalidArgument(f"{what} has no rootfs.diff_ids")
    return ImageConfig(
        Platform.from_json(doc),
        [validate_digest(d, f"{what} diff_id {i}") for i, d in enumerate(diff_ids)],
    )


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain IDs: chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n))."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else compute_digest(f"{out[-1]} {diff_id}".encode()))
    return out


def child_gc_labels(media_type: str, data: bytes) -> dict[str, str]:
    """The gc.ref labels containerd puts on an index (its manifests) or a manifest (config, layers)."""
    if media_type in INDEX_TYPES:
        return {f"{LABEL_GC_REF_CONTENT}.m.{i}": d.digest for i, d in enumerate(parse_index(data))}
    if media_type in MANIFEST_TYPES:
        manifest = parse_manifest(data, media_type)
        labels = {f"{LABEL_GC_REF_CONTENT}.config": manifest.config.digest}
        labels.update({f"{LABEL_GC_REF_CONTENT}.l.{i}": d.digest for i, d in enumerate(manifest.layers)})
        return labels
    return {}
