"""Exporting images from containerd as a docker-save archive or an OCI archive.

docker format (what `docker load` reads): per layer a directory `<chainID hex>/` with
VERSION, json and an uncompressed layer.tar (gzip and zstd layers are decompressed and
checked against their diff IDs: docker expects plain tars), the image config as
`<config hex>.json`, manifest.json (Config, RepoTags, Layers) and repositories. Layers are
named by chain ID, so images that share lower layers share their directories.

oci format: oci-layout, index.json (one entry per image name, annotated with
`io.containerd.image.name` and the tag as `org.opencontainers.image.ref.name`, as
containerd's exporter does) and blobs/sha256/<hex> for everything the images reach,
byte for byte as stored (digests unchanged). Content of other platforms that the store
does not hold is left out, as containerd does.

Output is deterministic: fixed order, mtime 0, owner 0:0, fixed modes, compact JSON.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from common import atomicfile
from common.digest import Digester
from containerd.client.errors import DigestMismatch, InvalidArgument, NotFound
from containerd.client.images import Image, get_image
from containerd.client.media import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    Descriptor,
    Platform,
    canonical_json,
    chain_ids,
    compression_of,
    host_platform,
    parse_index,
    parse_manifest,
)
from containerd.client.names import normalize_name, parse_reference
from containerd.client.unpack import image_manifest, read_blob

if TYPE_CHECKING:
    from containerd.client.client import Client

FORMATS = ("docker", "oci")


def export_archive(
    client: Client,
    image_names: Sequence[str],
    out: str | Path | IO[bytes],
    *,
    format: str = "docker",
    platform: Platform | None = None,
    tmp_dir: str | None = None,
) -> None:
    """Write the named images to `out` (a path, written atomically, or a binary stream)."""
    if format not in FORMATS:
        raise InvalidArgument(f"unknown archive format {format!r} (use one of {', '.join(FORMATS)})")
    if not image_names:
        raise InvalidArgument("no image to export")
    images = [find_image(client, name) for name in image_names]
    want = platform or host_platform()
    if isinstance(out, str | Path):
        with atomicfile.Replacing(out, 0o600) as f:
            _write(client, images, f, format, want, tmp_dir)
    else:
        _write(client, images, out, format, want, tmp_dir)


def find_image(client: Client, name: str) -> Image:
    """The image `name` as stored, else under its normalised name (`busybox` finds docker.io/library/busybox:latest)."""
    try:
        return get_image(client, name)
    except NotFound:
        try:
            normalized = normalize_name(name)
        except InvalidArgument:
            normalized = name
        if normalized == name:
            raise
        try:
            return get_image(client, normalized)
        except NotFound:
            raise NotFound(f"image {name}: not found") from None


def _write(
    client: Client, images: list[Image], out: IO[bytes], format: str, platform: Platform, tmp_dir: str | None
) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        if format == "docker":
            _DockerWriter(client, tar, platform, tmp_dir).write(images)
        else:
            _OciWriter(client, tar, platform).write(images)


# --- tar members ------------------------------------------------------------------------------


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name.rstrip("/") + "/", directory=True))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


class _BlobReader(io.RawIOBase):
    """A blob read from the content service, hashed as it passes; check() after the last byte."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self.hash = Digester()

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buf = chunk
            self.hash.update(chunk)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def check(self, digest: str) -> None:
        while self.read(1 << 20):  # the tar took exactly `size` bytes; hash any rest too
            pass
        got = self.hash.digest()
        if got != digest:
            raise DigestMismatch(f"content {digest} read back as {got}")


def _add_blob(client: Client, tar: tarfile.TarFile, name: str, desc: Descriptor) -> None:
    reader = _BlobReader(client.content.read(desc.digest))
    tar.addfile(_info(name, desc.size), io.BufferedReader(reader, 1 << 20))
    reader.check(desc.digest)


# --- docker-save --------------------------------------------------------------------------------


@dataclass
class _DockerWriter:
    client: Client
    tar: tarfile.TarFile
    platform: Platform
    tmp_dir: str | None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # by manifest digest
    repositories: dict[str, dict[str, str]] = field(default_factory=dict)
    layers: dict[str, tuple[str, Descriptor, str]] = field(
        default_factory=dict
    )  # dir -> (parent dir, layer, diff id)
    configs: dict[str, Descriptor] = field(default_factory=dict)  # file name -> config

    def write(self, images: list[Image]) -> None:
        for image in images:
            self.plan(image)
        for directory, (parent, layer, diff_id) in self.layers.items():
            _add_dir(self.tar, directory)
            _add_bytes(self.tar, f"{directory}/VERSION", b"1.0")
            meta: dict[str, str] = {"id": directory}
            if parent:
                meta["parent"] = parent
            _add_bytes(self.tar, f"{directory}/json", canonical_json(meta))
            self.add_layer_tar(f"{directory}/layer.tar", layer, diff_id)
        for name, config in self.configs.items():
            _add_blob(self.client, self.tar, name, config)
        _add_bytes(self.tar, "manifest.json", canonical_json(list(self.entries.values())))
        _add_bytes(self.tar, "repositories", canonical_json(self.repositories))

    def plan(self, image: Image) -> None:
        desc, manifest, config = image_manifest(self.client, image, self.platform)
        dirs = [chain.split(":", 1)[1] for chain in chain_ids(config.diff_ids)]
        config_file = manifest.config.digest.split(":", 1)[1] + ".json"
        self.configs[config_file] = manifest.config
        entry = self.entries.setdefault(
            desc.digest, {"Config": config_file, "RepoTags": None, "Layers": [f"{d}/layer.tar" for d in dirs]}
        )
        for i, directory in enumerate(dirs):
            self.layers.setdefault(
                directory, (dirs[i - 1] if i else "", manifest.layers[i], config.diff_ids[i])
            )
        repo_tag = _docker_repo_tag(image.name)
        if repo_tag is not None:
            repo, tag = repo_tag
            tags = entry["RepoTags"] or []
            if f"{repo}:{tag}" not in tags:
                entry["RepoTags"] = [*tags, f"{repo}:{tag}"]
            if dirs:
                self.repositories.setdefault(repo, {})[tag] = dirs[-1]

    def add_layer_tar(self, name: str, layer: Descriptor, diff_id: str) -> None:
        """The layer uncompressed, spooled (a tar header needs the size first) and checked against its diff id."""
        with tempfile.TemporaryFile(prefix="pycontainerd-export-", dir=self.tmp_dir) as spool:
            raw = io.BufferedReader(_BlobReader(self.client.content.read(layer.digest)), 1 << 20)
            compression = compression_of(raw.peek(4)[:4])
            plain: Any = raw
            if compression == "gzip":
                plain = gzip.GzipFile(fileobj=raw, mode="rb")
            elif compression == "zstd":
                import zstandard

                plain = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            digest = Digester()
            size = 0
            while chunk := plain.read(1 << 20):
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            if not digest.verify(diff_id):
                raise DigestMismatch(
                    f"layer {layer.digest} decompresses to {digest.digest()}, not its diff id {diff_id}"
                )
            spool.seek(0)
            self.tar.addfile(_info(name, size), spool)


def _docker_repo_tag(name: str) -> tuple[str, str] | None:
    """("busybox", "latest") for docker.io/library/busybox:latest; None for a name without a tag."""
    try:
        ref = parse_reference(name, default_tag=False)
    except InvalidArgument:
        return None
    if not ref.tag:
        return None
    return ref.familiar_repository, ref.tag


# --- OCI --------------------------------------------------------------------------------------


@dataclass
class _OciWriter:
    client: Client
    tar: tarfile.TarFile
    platform: Platform
    blobs: dict[str, Descriptor] = field(default_factory=dict)

    def write(self, images: list[Image]) -> None:
        manifests = []
        for image in images:
            self.collect(image.target, required=True)
            annotations = dict(image.target.annotations)
            annotations[ANNOTATION_IMAGE_NAME] = image.name
            try:
                ref = parse_reference(image.name, default_tag=False)
                if ref.tag:
                    annotations[ANNOTATION_REF_NAME] = ref.tag
            except InvalidArgument:
                pass  # a name that is no reference (a dangling "import@sha256:..."): no ref name
            target = image.target
            manifests.append(Descriptor(target.media_type, target.digest, target.size, annotations).to_json())
        _add_bytes(self.tar, "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(
            self.tar,
            "index.json",
            canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
        )
        _add_dir(self.tar, "blobs")
        _add_dir(self.tar, "blobs/sha256")
        for digest in sorted(self.blobs):
            _add_blob(self.client, self.tar, f"blobs/sha256/{digest.split(':', 1)[1]}", self.blobs[digest])

    def collect(self, desc: Descriptor, required: bool) -> None:
        if desc.digest in self.blobs:
            return
        if not required and not self.client.content.exists(desc.digest):
            return  # another platform's content, never pulled
        if desc.media_type in INDEX_TYPES:
            for child in parse_index(read_blob(self.client, desc), f"index {desc.digest}"):
                self.collect(child, required=child.platform is None or self.platform.matches(child.platform))
        elif desc.media_type in MANIFEST_TYPES:
            manifest = parse_manifest(
                read_blob(self.client, desc), desc.media_type, f"manifest {desc.digest}"
            )
            self.collect(manifest.config, required=True)
            for layer in manifest.layers:
                self.collect(
                    layer,
                    required="foreign" not in layer.media_type and "nondistributable" not in layer.media_type,
                )
        self.blobs[desc.digest] = Descriptor(desc.media_type, desc.digest, desc.size)
