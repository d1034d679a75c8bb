"""Pull: resolve a reference on a registry, store every blob verified, unpack, name the image.

As containerd's client.Pull with its CRI plugin's options: the manifest (the host platform's,
when the reference names an index) and its config go to the content store first, with
containerd's gc.ref labels so that the garbage collector keeps what the image needs; the layers
download concurrently and each is unpacked into the snapshotter as soon as it is complete; the
image records are written last, so a failed pull leaves no image (its blobs, under the pull's
lease, are collected).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from common.digest import compute as compute_digest
from containerd.client import (
    Client,
    Descriptor,
    Image,
    create_or_update_image,
    host_platform,
    parse_reference,
    unpack,
)
from containerd.client.errors import ContainerdError, DigestMismatch, InvalidArgument, NotFound
from containerd.client.media import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    LABEL_GC_REF_CONTENT,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_config,
    parse_index,
    parse_manifest,
)
from containerd.client.names import Reference
from containerd.remotes.registry import RegistryError, RegistryHosts, Repository, Unauthorized

ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST]
LABEL_DISTRIBUTION_SOURCE = "containerd.io/distribution.source."
DOWNLOAD_WORKERS = 3
CONFIG_LIMIT = 8 << 20


class PullError(Exception):
    """A pull that failed; `not_found` when the registry has no such image."""

    def __init__(self, message: str, *, not_found: bool = False, unauthorized: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found
        self.unauthorized = unauthorized


@dataclass(frozen=True)
class Pulled:
    name: str  # the normalised reference (docker.io/library/busybox:latest)
    target: Descriptor  # what the registry resolved it to (index or manifest)
    manifest: Descriptor  # the host platform's manifest
    config_digest: str  # the image id
    repo_digest: str  # repository@digest of target


@dataclass(frozen=True)
class _Resolved:
    top: Descriptor
    top_bytes: bytes
    manifest: Descriptor
    manifest_bytes: bytes
    index_slot: int  # the manifest's place in the index, -1 without an index


class Puller:
    def __init__(
        self,
        client: Client,
        hosts: RegistryHosts | None = None,
        *,
        snapshotter: str = "overlayfs",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.hosts = hosts or RegistryHosts()
        self.snapshotter = snapshotter
        self.labels = dict(labels or {})

    def pull(self, ref: str, *, extra_names: Callable[[Pulled], list[str]] | None = None) -> Pulled:
        """Pull REF; `extra_names` gives more names for the same target (the CRI's id and digest
        references). Raises PullError for registry failures, containerd errors for the store's."""
        try:
            reference = parse_reference(ref)
        except InvalidArgument as exc:
            raise PullError(f"failed to resolve reference {ref!r}: {exc}") from None
        with self.client.lease():
            repo, resolved = self._resolve(reference)
            try:
                pulled = self._fetch(repo, reference, resolved)
            finally:
                repo.close()
            for name in [pulled.name, *(extra_names(pulled) if extra_names else [])]:
                create_or_update_image(
                    self.client, Image(name=name, target=pulled.target, labels=self.labels)
                )
        return pulled

    # --- resolving ---------------------------------------------------------------------------

    def _resolve(self, ref: Reference) -> tuple[Repository, _Resolved]:
        errors: list[str] = []
        not_found = unauthorized = False
        for endpoint in self.hosts.endpoints(ref.domain):
            repo = Repository(endpoint, ref.path, self.hosts.credentials_for(ref.domain, endpoint))
            try:
                repo.ping()
                return repo, self._resolve_on(repo, ref)
            except RegistryError as exc:
                repo.close()
                not_found = not_found or exc.status == 404
                unauthorized = unauthorized or isinstance(exc, Unauthorized)
                errors.append(f"{endpoint}: {exc}")
        what = f'failed to resolve reference "{ref}"'
        if not_found:
            raise PullError(f"{what}: {ref}: not found", not_found=True)
        raise PullError(f"{what}: {'; '.join(errors)}", unauthorized=unauthorized)

    def _resolve_on(self, repo: Repository, ref: Reference) -> _Resolved:
        data, media_type, header_digest = repo.manifest(ref.digest or ref.tag, ACCEPT)
        digest = compute_digest(data)
        if ref.digest and digest != ref.digest:
            raise RegistryError(f"manifest {ref.digest} has digest {digest}")
        if header_digest and header_digest != digest and not ref.digest:
            raise RegistryError(f"registry says manifest {header_digest}, its bytes are {digest}")
        media_type = media_type if media_type in INDEX_TYPES | MANIFEST_TYPES else _sniff(data)
        top = Descriptor(media_type, digest, len(data))
        if media_type not in INDEX_TYPES:
            return _Resolved(top, data, top, data, -1)
        want = host_platform()
        for slot, desc in enumerate(parse_index(data)):
            if (
                desc.platform is not None
                and want.matches(desc.platform)
                and desc.media_type in MANIFEST_TYPES
            ):
                mdata, _, _ = repo.manifest(desc.digest, ACCEPT)
                if compute_digest(mdata) != desc.digest:
                    raise RegistryError(f"manifest {desc.digest}: wrong content")
                return _Resolved(top, data, desc, mdata, slot)
        raise RegistryError(f"no match for platform {want} in manifest {digest}", 404, "NOT_FOUND")

    # --- fetching ----------------------------------------------------------------------------

    def _fetch(self, repo: Repository, ref: Reference, res: _Resolved) -> Pulled:
        manifest = parse_manifest(res.manifest_bytes, res.manifest.media_type)
        source = {f"{LABEL_DISTRIBUTION_SOURCE}{ref.domain}": ref.path}
        content = self.client.content
        try:
            if not content.exists(manifest.config.digest):
                config = b"".join(repo.blob(manifest.config.digest))
                if len(config) > CONFIG_LIMIT:
                    raise PullError(f"image config {manifest.config.digest} is too large")
                parse_config(config)
                content.write(config, size=len(config), expected=manifest.config.digest, labels=source)
            labels = {f"{LABEL_GC_REF_CONTENT}.config": manifest.config.digest}
            labels.update({f"{LABEL_GC_REF_CONTENT}.l.{i}": d.digest for i, d in enumerate(manifest.layers)})
            content.write(
                res.manifest_bytes, size=len(res.manifest_bytes), expected=res.manifest.digest, labels=labels
            )
            if res.index_slot >= 0:
                content.write(
                    res.top_bytes, size=len(res.top_bytes), expected=res.top.digest,
                    labels={f"{LABEL_GC_REF_CONTENT}.m.{res.index_slot}": res.manifest.digest},
                )  # fmt: skip
            with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="pull-layer") as pool:
                downloads: dict[str, Future[None]] = {}
                for layer in manifest.layers:
                    if layer.digest not in downloads and not content.exists(layer.digest):
                        run = contextvars.copy_context().run  # the lease travels with the worker's calls
                        downloads[layer.digest] = pool.submit(run, self._fetch_layer, repo, layer, source)

                def before(layer: Descriptor) -> None:
                    download = downloads.get(layer.digest)
                    if download is not None:
                        download.result()

                try:
                    unpack(self.client, res.manifest, self.snapshotter, before_layer=before)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        except RegistryError as exc:
            raise PullError(f"failed to copy: {exc}", not_found=exc.status == 404) from None
        except DigestMismatch as exc:
            raise PullError(f"failed to copy: {exc}") from None
        return Pulled(
            str(ref), res.top, res.manifest, manifest.config.digest, f"{ref.repository}@{res.top.digest}"
        )

    def _fetch_layer(self, repo: Repository, layer: Descriptor, source: dict[str, str]) -> None:
        self.client.content.write(
            repo.blob(layer.digest), size=layer.size, expected=layer.digest, labels=source
        )


def _sniff(data: bytes) -> str:
    """A manifest served without a usable Content-Type: its mediaType field, or its shape."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError("manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("manifest is not a JSON object")
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type in INDEX_TYPES | MANIFEST_TYPES:
        return media_type
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


__all__ = ["ContainerdError", "NotFound", "PullError", "Pulled", "Puller"]
