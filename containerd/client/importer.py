"""Importing image archives into containerd: docker-save archives, OCI layouts, OCI archives.

What lands in the daemon is what containerd's own importer makes of the same archive:

* docker-save (manifest.json + config JSON + per-layer tars): a Docker schema 2 manifest
  is built for each manifest.json entry (config `application/vnd.docker.container.image.v1+json`,
  layers `application/vnd.docker.image.rootfs.diff.tar[.gzip]` by their real compression),
  serialised as containerd serialises it, so the manifest digest is the one `ctr images
  import` gives. Images are named from RepoTags, normalised like Docker's
  (`busybox:latest` -> `docker.io/library/busybox:latest`). Each layer's uncompressed
  digest must equal the config's diff_id, as `docker load` requires.
* OCI layout / archive: the blobs under index.json are imported as they are (every one
  checked against its digest and size); an index entry is named by its
  `io.containerd.image.name` annotation, else by `org.opencontainers.image.ref.name`: a
  full reference as it is, a bare tag ("latest") as `<base_name>:<tag>`.
  Manifests of other platforms whose blobs the archive does not carry are skipped.
* An image that gets no name is still imported, as `<dangling_prefix>@<manifest digest>`
  (pydockerd's untagged images); nameless content would be garbage-collected.

Children are kept alive by containerd's labels: `containerd.io/gc.ref.content.m.<i>` on an
index, `containerd.io/gc.ref.content.config` and `.l.<i>` on a manifest. All of it is
written under one lease, and the images are created only once every blob has been
verified and (by default) unpacked, so an archive that fails half-way leaves no image, and
what it wrote goes with the lease.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from common.digest import Digester
from common.digest import compute as compute_digest
from containerd.client.archive import Source, check_name, open_source
from containerd.client.errors import ArchiveError, InvalidArgument
from containerd.client.images import Image, create_or_update_image
from containerd.client.media import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    LABEL_UNCOMPRESSED,
    MANIFEST_TYPES,
    MAX_JSON_BLOB,
    OCI_LAYER_ZSTD,
    Descriptor,
    Platform,
    canonical_json,
    child_gc_labels,
    compression_of,
    host_platform,
    load_json,
    parse_config,
    parse_index,
    parse_manifest,
)
from containerd.client.names import is_tag, normalize_name, parse_reference
from containerd.client.unpack import unpack as unpack_image

if TYPE_CHECKING:
    from containerd.client.client import Client

_CONFIG_FILE = re.compile(r"^([0-9a-f]{64})(?:\.json)?$")


def import_archive(
    client: Client,
    source: str | Path | IO[bytes],
    *,
    unpack: bool = True,
    snapshotter: str = "overlayfs",
    base_name: str | None = None,
    dangling_prefix: str = "import",
    labels: Mapping[str, str] | None = None,
    platform: Platform | None = None,
    tmp_dir: str | None = None,
) -> list[Image]:
    """Import every image of the archive at `source` (a path, a directory or a binary stream).

    unpack: unpack each image for `platform` (default: the host's) into `snapshotter`.
    base_name: the repository for OCI manifests named only by a tag ("latest").
    dangling_prefix: images without any name become `<dangling_prefix>@<digest>`.
    labels: set on every image created or updated.
    tmp_dir: where a stream or a compressed archive is spooled (default: the system's).

    Returns the images created or updated, in archive order. Raises ArchiveError for a
    malformed or hostile archive, other containerd errors for what the daemon refuses (a
    layer it will not apply); in both cases no image is created or changed.
    """
    if base_name is not None:
        base = parse_reference(base_name, default_tag=False)
        if base.tag or base.digest:
            raise InvalidArgument(f"base name {base_name!r} must be a repository, without tag or digest")
    want = platform or host_platform()
    label = str(source) if isinstance(source, str | Path) else "archive"
    with client.lease():
        with open_source(source, tmp_dir) as src, _as_archive_error(label):
            importer = _Importer(client, src, want)
            if src.has("oci-layout") and src.has("index.json"):
                named = importer.import_oci(base_name, dangling_prefix)
            elif src.has("manifest.json"):
                named = importer.import_docker(dangling_prefix)
            elif src.has("repositories"):
                raise ArchiveError(
                    "a docker-save archive without manifest.json (Docker before 1.10) is not supported"
                )
            else:
                raise ArchiveError(
                    "not a docker-save archive, OCI layout or OCI archive (no manifest.json, no oci-layout)"
                )
        targets: dict[str, Descriptor] = {}
        for name, target in named:
            targets[name] = target  # a name listed twice: the last one wins
        if unpack:
            # The daemon's refusals (a hostile layer) keep their own kind: they are not the client's findings.
            for target in {t.digest: t for t in targets.values()}.values():
                unpack_image(client, target, snapshotter, platform=want)
        return [
            create_or_update_image(client, Image(name, target, dict(labels or {})))
            for name, target in targets.items()
        ]


@contextlib.contextmanager
def _as_archive_error(label: str) -> Iterator[None]:
    """What is wrong with the archive's content, however it was found out, is an ArchiveError."""
    try:
        yield
    except ArchiveError as exc:
        raise ArchiveError(f"{label}: {exc}") from None
    except InvalidArgument as exc:
        raise ArchiveError(f"{label}: {exc}") from None


@dataclass
class _Importer:
    client: Client
    src: Source
    platform: Platform
    done: set[str] = field(default_factory=set)  # digests imported (or found present) by this import
    docker_layers: dict[str, tuple[Descriptor, str]] = field(
        default_factory=dict
    )  # member -> (desc, diff id)

    # --- reading the archive -------------------------------------------------------------------

    def read_small(self, name: str, limit: int = MAX_JSON_BLOB) -> bytes:
        if not self.src.has(name):
            raise ArchiveError(f"{self.src.describe(name)} is missing")
        size = self.src.size(name)
        if size > limit:
            raise ArchiveError(f"{self.src.describe(name)} is {size} bytes, more than the {limit} allowed")
        with self.src.open(name) as f:
            return f.read(limit + 1)

    def read_blob(self, desc: Descriptor) -> bytes:
        data = self.read_small(_blob_path(desc.digest))
        got = compute_digest(data)
        if got != desc.digest or len(data) != desc.size:
            raise ArchiveError(
                f"blob {desc.digest} does not match its descriptor (it has {len(data)} bytes and digest {got})"
            )
        return data

    # --- writing content -----------------------------------------------------------------------

    def write_json(self, data: bytes, desc: Descriptor) -> None:
        """A manifest, index or config, with the gc labels that keep its children."""
        labels = child_gc_labels(desc.media_type, data)
        _, written = self.client.content.write(data, size=desc.size, expected=desc.digest, labels=labels)
        if labels and not written:
            self.client.content.update_labels(desc.digest, labels)
        self.done.add(desc.digest)

    # --- OCI layouts ---------------------------------------------------------------------------

    def import_oci(self, base_name: str | None, dangling_prefix: str) -> list[tuple[str, Descriptor]]:
        layout = load_json(self.read_small("oci-layout"), "oci-layout")
        if not isinstance(layout, Mapping) or not isinstance(layout.get("imageLayoutVersion"), str):
            raise ArchiveError("oci-layout has no imageLayoutVersion")
        named: list[tuple[str, Descriptor]] = []
        for desc in parse_index(self.read_small("index.json"), "index.json"):
            self.oci_blob(desc, required=True)
            name = _oci_name(desc.annotations, base_name) or f"{dangling_prefix}@{desc.digest}"
            named.append((name, Descriptor(desc.media_type, desc.digest, desc.size, desc.annotations)))
        return named

    def oci_blob(self, desc: Descriptor, required: bool) -> None:
        if desc.digest in self.done:
            return
        path = _blob_path(desc.digest)
        if not self.src.has(path):
            if required:
                raise ArchiveError(f"blob {desc.digest} ({desc.media_type}) is missing from the archive")
            return  # content of another platform, or a foreign layer, that the archive does not ship
        if desc.media_type in INDEX_TYPES:
            data = self.read_blob(desc)
            for child in parse_index(data, f"index {desc.digest}"):
                self.oci_blob(child, required=child.platform is None or self.platform.matches(child.platform))
            self.write_json(data, desc)
        elif desc.media_type in MANIFEST_TYPES:
            data = self.read_blob(desc)
            manifest = parse_manifest(data, desc.media_type, f"manifest {desc.digest}")
            self.oci_blob(manifest.config, required=True)
            for layer in manifest.layers:
                self.oci_blob(layer, required=not _foreign(layer))
            self.write_json(data, desc)
        else:
            with self.src.open(path) as f:
                self.client.content.write(f, size=desc.size, expected=desc.digest)
            self.done.add(desc.digest)

    # --- docker-save archives --------------------------------------------------------------------

    def import_docker(self, dangling_prefix: str) -> list[tuple[str, Descriptor]]:
        entries = load_json(self.read_small("manifest.json"), "manifest.json")
        if not isinstance(entries, list):
            raise ArchiveError("manifest.json is not a list")
        parsed = [_docker_entry(entry, i) for i, entry in enumerate(entries)]  # every name checked first
        named: list[tuple[str, Descriptor]] = []
        for config_name, layer_names, repo_tags in parsed:
            manifest = self.docker_manifest(config_name, layer_names)
            for tag in repo_tags:
                try:
                    name = normalize_name(tag)
                except InvalidArgument as exc:
                    raise ArchiveError(f"manifest.json: RepoTag {tag!r}: {exc}") from None
                ref = parse_reference(name)
                annotations = {
                    ANNOTATION_IMAGE_NAME: name,
                    ANNOTATION_REF_NAME: ref.tag + (f"@{ref.digest}" if ref.digest else ""),
                }
                named.append(
                    (name, Descriptor(manifest.media_type, manifest.digest, manifest.size, annotations))
                )
            if not repo_tags:
                named.append((f"{dangling_prefix}@{manifest.digest}", manifest))
        return named

    def docker_manifest(self, config_name: str, layer_names: list[str]) -> Descriptor:
        config_bytes = self.read_small(config_name)
        config_digest = compute_digest(config_bytes)
        named_as = _CONFIG_FILE.match(posixpath.basename(config_name))
        if named_as and f"sha256:{named_as.group(1)}" != config_digest:
            raise ArchiveError(
                f"image config {config_name!r} does not match the digest its name gives (it is {config_digest})"
            )
        config = parse_config(config_bytes, f"image config {config_name!r}")
        if len(config.diff_ids) != len(layer_names):
            raise ArchiveError(
                f"manifest.json lists {len(layer_names)} layers for {config_name!r}, whose config has {len(config.diff_ids)} diff ids"
            )
        layers = [
            self.docker_layer(name, diff_id)
            for name, diff_id in zip(layer_names, config.diff_ids, strict=True)
        ]
        config_desc = Descriptor(DOCKER_CONFIG, config_digest, len(config_bytes))
        self.write_json(config_bytes, config_desc)
        # Field order and compact form as containerd's importer writes it: the same digest.
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": config_desc.to_json(),
                "layers": [layer.to_json() for layer in layers],
            }
        )
        desc = Descriptor(DOCKER_MANIFEST, compute_digest(manifest), len(manifest))
        self.write_json(manifest, desc)
        return desc

    def docker_layer(self, name: str, diff_id: str) -> Descriptor:
        if name in self.docker_layers:
            desc, found = self.docker_layers[name]
        else:
            if not self.src.has(name):
                raise ArchiveError(f"layer {self.src.describe(name)} is missing")
            with self.src.open(name) as f:
                digest, size, compression, found = _layer_digests(f, name)
            media_type = {"gzip": DOCKER_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}.get(compression, DOCKER_LAYER)
            desc = Descriptor(media_type, digest, size)
            with self.src.open(name) as f:
                _, written = self.client.content.write(
                    f, size=size, expected=digest, labels={LABEL_UNCOMPRESSED: found}
                )
            if not written:
                self.client.content.update_labels(digest, {LABEL_UNCOMPRESSED: found})
            self.docker_layers[name] = (desc, found)
            self.done.add(digest)
        if found != diff_id:
            raise ArchiveError(f"layer {name!r} has diff id {found}, but the image config says {diff_id}")
        return desc


def _blob_path(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _foreign(layer: Descriptor) -> bool:
    return "foreign" in layer.media_type or "nondistributable" in layer.media_type


def _oci_name(annotations: Mapping[str, str], base_name: str | None) -> str | None:
    image_name = annotations.get(ANNOTATION_IMAGE_NAME)
    if image_name:
        try:
            return normalize_name(image_name)
        except InvalidArgument as exc:
            raise ArchiveError(f"index.json: image name {image_name!r}: {exc}") from None
    ref = annotations.get(ANNOTATION_REF_NAME)
    if not ref:
        return None
    if is_tag(ref):
        return normalize_name(f"{base_name}:{ref}") if base_name else None
    try:
        return normalize_name(ref)
    except InvalidArgument:
        return None  # a ref name that is no reference ("v1+build"): the image stays unnamed


def _docker_entry(entry: Any, index: int) -> tuple[str, list[str], list[str]]:
    where = f"manifest.json entry {index}"
    if not isinstance(entry, Mapping):
        raise ArchiveError(f"{where} is not an object")
    config, layers, tags = entry.get("Config"), entry.get("Layers"), entry.get("RepoTags") or []
    if not isinstance(config, str):
        raise ArchiveError(f"{where} has no Config")
    if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
        raise ArchiveError(f"{where} has no Layers list")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ArchiveError(f"{where} has a malformed RepoTags")
    return check_name(config), [check_name(layer) for layer in layers], list(tags)


class _Hashing(io.RawIOBase):
    """Reads through, hashing and counting the raw (maybe compressed) bytes."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.hash = Digester()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._inner.read(len(b))
        b[: len(data)] = data
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def _layer_digests(f: IO[bytes], name: str) -> tuple[str, int, str, str]:
    """(digest, size, compression, diff id) of a layer, in one pass."""
    raw = _Hashing(f)
    buffered = io.BufferedReader(raw, 1 << 20)
    compression = compression_of(buffered.peek(4)[:4])
    plain: Any = buffered
    if compression == "gzip":
        plain = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif compression == "zstd":
        import zstandard

        plain = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    uncompressed = Digester()
    try:
        while chunk := plain.read(1 << 20):
            uncompressed.update(chunk)
        while buffered.read(1 << 20):  # what a decompressor left unread is part of the blob too
            pass
    except Exception as exc:  # noqa: BLE001 - gzip, zlib and zstd errors alike: a corrupt layer
        raise ArchiveError(f"layer {name!r} is corrupt: {exc}") from None
    return raw.hash.digest(), raw.size, compression, uncompressed.digest()
