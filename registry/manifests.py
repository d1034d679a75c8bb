"""Manifest validation by media type: what a manifest is, and which blobs and manifests it needs.

Four kinds are accepted, as distribution does (schema1 is not):
OCI image manifest, OCI image index, Docker schema2 manifest, Docker manifest list.
Validation here is structural; app.py then checks that every referenced blob or child
manifest exists in the repository before anything is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry.errors import RegistryError
from registry.refs import valid_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
MAX_MANIFEST = 4 << 20  # the spec: registries SHOULD accept manifests of at least 4 MiB

# Layers that may live elsewhere (descriptor `urls`): the registry need not hold them.
_FOREIGN_LAYERS = {
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}


@dataclass
class Manifest:
    media_type: str
    blobs: list[dict[str, Any]] = field(default_factory=list)  # config and layers it needs
    children: list[dict[str, Any]] = field(default_factory=list)  # manifests an index lists
    subject: dict[str, Any] | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _invalid(reason: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", {"reason": reason})


def _descriptor(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _invalid(f"{where}: not a descriptor")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}: mediaType missing")
    if not isinstance(digest, str) or not valid_digest(digest):
        raise _invalid(f"{where}: invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}: invalid size {size!r}")
    return obj


def parse(body: bytes, content_type: str | None) -> Manifest:
    """Parse and check a manifest; raises MANIFEST_INVALID with the reason as detail."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid(f"schemaVersion {doc.get('schemaVersion')!r} is not supported (only 2)")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType is not a string")
    if declared and header in MANIFEST_TYPES and declared != header:
        raise _invalid(f"mediaType {declared} does not match Content-Type {header}")
    media_type = declared or (header if header in MANIFEST_TYPES else None)
    if media_type is None:
        # OCI allows mediaType to be left out; the shape says which one it is.
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type}")
    if media_type in (DOCKER_MANIFEST, DOCKER_LIST) and not declared:
        raise _invalid("a Docker manifest must state its mediaType")

    m = Manifest(media_type)
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType is not a string")
    m.artifact_type = artifact_type
    annotations = doc.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
    ):
        raise _invalid("annotations must map strings to strings")
    m.annotations = annotations
    if doc.get("subject") is not None:
        m.subject = _descriptor(doc["subject"], "subject")

    if media_type in IMAGE_TYPES:
        if "manifests" in doc:
            raise _invalid("an image manifest has no manifests list")
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers", [] if media_type == OCI_MANIFEST else None)
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        m.blobs.append(config)
        for i, layer in enumerate(layers):
            d = _descriptor(layer, f"layers[{i}]")
            if d["mediaType"] in _FOREIGN_LAYERS and d.get("urls"):
                continue  # served from its URLs, not from this registry
            m.blobs.append(d)
        if m.artifact_type is None:
            m.artifact_type = config["mediaType"]
    else:
        if "config" in doc or "layers" in doc:
            raise _invalid("an index has no config or layers")
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise _invalid("manifests must be a list")
        m.children = [_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)]
    return m


def referrer_descriptor(m: Manifest, digest: str, size: int) -> dict[str, Any]:
    """The descriptor of this manifest as the referrers API lists it."""
    d: dict[str, Any] = {"mediaType": m.media_type, "digest": digest, "size": size}
    if m.artifact_type:
        d["artifactType"] = m.artifact_type
    if m.annotations:
        d["annotations"] = m.annotations
    return d
