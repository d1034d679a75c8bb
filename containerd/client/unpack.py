"""Unpacking an image's layers into a snapshot chain, each layer once, shared by every image.

The chain's snapshots are named by chain ID (what containerd's unpacker and `ctr images
check` expect), so an image whose lower layers another image already brought finds them
committed and applies only its own. Each missing layer is applied on an active snapshot
"extract-<random> <chainID>" prepared on its parent, checked against the config's diff
ID, and committed under the chain ID; if a concurrent unpack committed that name first,
ours is dropped and theirs used. The config is then labelled with the top of the chain
(`containerd.io/gc.ref.snapshot.<snapshotter>`), which is what keeps the chain alive once
the lease of the unpack is gone.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.digest import compute as compute_digest
from containerd.client.errors import AlreadyExists, ContainerdError, DigestMismatch, InvalidArgument, NotFound
from containerd.client.images import Image
from containerd.client.media import (
    INDEX_TYPES,
    LABEL_GC_REF_SNAPSHOT,
    LABEL_UNCOMPRESSED,
    MANIFEST_TYPES,
    MAX_JSON_BLOB,
    Descriptor,
    ImageConfig,
    Manifest,
    Platform,
    chain_ids,
    host_platform,
    parse_config,
    parse_index,
    parse_manifest,
)
from containerd.client.snapshots import Snapshots, apply_layer

if TYPE_CHECKING:
    from containerd.client.client import Client

_MAX_NESTING = 8


@dataclass(frozen=True)
class Unpacked:
    manifest: Descriptor
    config: Descriptor
    chain_ids: list[str]
    applied: int  # layers this call applied; the others were already unpacked

    @property
    def top(self) -> str:
        """The snapshot a container's rootfs is prepared on ("" for an image without layers)."""
        return self.chain_ids[-1] if self.chain_ids else ""


def read_blob(client: Client, desc: Descriptor, limit: int = MAX_JSON_BLOB) -> bytes:
    """A small blob, checked against its descriptor's size and digest."""
    if desc.size > limit:
        raise InvalidArgument(
            f"{desc.media_type or 'blob'} {desc.digest} is {desc.size} bytes, more than {limit}"
        )
    data = client.content.read_all(desc.digest, limit)
    if len(data) != desc.size or compute_digest(data) != desc.digest:
        raise DigestMismatch(f"content {desc.digest} does not match its descriptor")
    return data


def resolve_manifest(client: Client, target: Descriptor, platform: Platform | None = None) -> Descriptor:
    """The manifest for `platform` (default: the host's) under an image's target."""
    want = platform or host_platform()
    desc = target
    for _ in range(_MAX_NESTING):
        if desc.media_type in MANIFEST_TYPES:
            return desc
        if desc.media_type not in INDEX_TYPES:
            raise InvalidArgument(
                f"{desc.digest}: {desc.media_type!r} is neither an image index nor a manifest"
            )
        children = [
            c for c in parse_index(read_blob(client, desc)) if c.media_type in MANIFEST_TYPES | INDEX_TYPES
        ]
        chosen = next((c for c in children if c.platform is not None and want.matches(c.platform)), None)
        if chosen is None:
            chosen = next(
                (c for c in children if c.platform is None and _manifest_platform_ok(client, c, want)), None
            )
        if chosen is None:
            raise NotFound(f"no manifest for {want} in image index {desc.digest}")
        desc = chosen
    raise InvalidArgument(f"image indexes nested more than {_MAX_NESTING} deep under {target.digest}")


def _manifest_platform_ok(client: Client, desc: Descriptor, want: Platform) -> bool:
    """An index entry without a platform: judge by its config, as containerd does."""
    if desc.media_type not in MANIFEST_TYPES:
        return False
    manifest = parse_manifest(read_blob(client, desc), desc.media_type)
    found = parse_config(read_blob(client, manifest.config)).platform
    return found is None or want.matches(found)


def image_manifest(
    client: Client, image: Image | Descriptor, platform: Platform | None = None
) -> tuple[Descriptor, Manifest, ImageConfig]:
    """The platform's manifest descriptor, the manifest and its config, checked to fit together."""
    target = image.target if isinstance(image, Image) else image
    want = platform or host_platform()
    desc = resolve_manifest(client, target, want)
    try:
        data = read_blob(client, desc)
    except NotFound:
        raise NotFound(
            f"the {want} manifest {desc.digest} of image {target.digest} is not in the content store"
        ) from None
    manifest = parse_manifest(data, desc.media_type, f"manifest {desc.digest}")
    config = parse_config(read_blob(client, manifest.config), f"image config {manifest.config.digest}")
    if config.platform is not None and not want.matches(config.platform):
        raise InvalidArgument(f"image {target.digest} is for {config.platform}, not {want}")
    if len(config.diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"manifest {desc.digest} has {len(manifest.layers)} layers but its config lists {len(config.diff_ids)} diff ids"
        )
    return desc, manifest, config


def is_unpacked(
    client: Client,
    image: Image | Descriptor,
    snapshotter: str = "overlayfs",
    platform: Platform | None = None,
) -> bool:
    _, _, config = image_manifest(client, image, platform)
    chains = chain_ids(config.diff_ids)
    return not chains or Snapshots(client, snapshotter).exists(chains[-1])


def unpack(
    client: Client,
    image: Image | Descriptor,
    snapshotter: str = "overlayfs",
    *,
    platform: Platform | None = None,
    before_layer: Callable[[Descriptor], None] | None = None,
    after_layer: Callable[[Descriptor], None] | None = None,
) -> Unpacked:
    """Unpack the image's layers for `platform` (default: the host's) into `snapshotter`.

    `before_layer` is called before a layer is applied and may block until its blob is in the
    content store, so a pull unpacks each layer while the later ones still download;
    `after_layer` once it is applied (or was already).
    """
    with client.lease():
        desc, manifest, config = image_manifest(client, image, platform)
        chains = chain_ids(config.diff_ids)
        snapshots = Snapshots(client, snapshotter)
        applied = 0
        for i, (layer, diff_id, chain) in enumerate(
            zip(manifest.layers, config.diff_ids, chains, strict=True)
        ):
            if before_layer is not None:
                before_layer(layer)
            if not snapshots.exists(chain) and _unpack_layer(
                client, snapshots, layer, diff_id, chain, chains[i - 1] if i else ""
            ):
                applied += 1
            client.content.update_labels(layer.digest, {LABEL_UNCOMPRESSED: diff_id})
            if after_layer is not None:
                after_layer(layer)
        if chains:
            client.content.update_labels(
                manifest.config.digest, {f"{LABEL_GC_REF_SNAPSHOT}.{snapshotter}": chains[-1]}
            )
    return Unpacked(desc, manifest.config, chains, applied)


def _unpack_layer(
    client: Client, snapshots: Snapshots, layer: Descriptor, diff_id: str, chain: str, parent: str
) -> bool:
    """Apply one layer; False when a concurrent unpack committed the same chain first."""
    key = f"extract-{secrets.token_hex(8)} {chain}"
    mounts = snapshots.prepare(key, parent)
    done = False
    try:
        applied = apply_layer(client, layer, mounts)
        if applied.digest != diff_id:
            raise DigestMismatch(
                f"layer {layer.digest} unpacks to {applied.digest}, but the image config says {diff_id}"
            )
        try:
            snapshots.commit(chain, key)
        except AlreadyExists:
            return False
        done = True
        return True
    finally:
        if not done:
            with contextlib.suppress(ContainerdError):  # the lease frees it anyway; never mask the real error
                snapshots.remove(key)
