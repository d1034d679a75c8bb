"""Layer media types, OCI whiteout names and the descriptor a diff returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from containerd.errors import Unimplemented

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"

# media type -> compression ("" = plain tar)
LAYER_COMPRESSION: dict[str, str] = {
    OCI_LAYER: "",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    _NONDISTRIBUTABLE: "",
    _NONDISTRIBUTABLE + "+gzip": "gzip",
    _NONDISTRIBUTABLE + "+zstd": "zstd",
    DOCKER_LAYER: "",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}

# containerd records a compressed blob's diff id under this content label
UNCOMPRESSED_LABEL = "containerd.io/uncompressed"

WHITEOUT_PREFIX = ".wh."
# A DiffRequest label (pycontainerd's own; taken off the request, never put on the content):
# "docker" writes whiteouts as dockerd's overlay2 tar writer does (mode 0600, owner 0:0, the
# time of the deletion: the parent directory's mtime) instead of containerd's (mode 0, time 0).
WHITEOUT_STYLE_LABEL = "pydocker.io/diff.whiteouts"
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# overlayfs' own bookkeeping; a layer that carried these could redirect lookups elsewhere
OVERLAY_XATTR_PREFIX = "trusted.overlay."


@dataclass
class Descriptor:
    """An OCI content descriptor (the fields the diff service returns)."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)


def layer_compression(media_type: str) -> str:
    """The compression a layer media type names; unknown (or encrypted) types are Unimplemented."""
    try:
        return LAYER_COMPRESSION[media_type]
    except KeyError:
        raise Unimplemented(f"unsupported layer media type {media_type!r}") from None
