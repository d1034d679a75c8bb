"""Pull (POST /images/create?fromImage=).

Images live in pycontainerd only: a pull writes each blob through the Content service with
its expected digest (so a registry serving wrong bytes gets nothing stored), under one lease,
labels the manifest (and index) with containerd's gc.ref labels, unpacks, and only then
creates the image record (name = the normalised reference, target = the descriptor the
registry resolved the tag to). Layers are fetched three at a time and each is unpacked as
soon as its download is done.

Work before the first progress message (resolving the reference, reaching the registry,
fetching the manifest) fails as an HTTP error, as dockerd's does (`prepare()`); later errors
go into the stream (progress.py). `connect` is shared with push and login.
"""

from __future__ import annotations

import contextvars
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from common.digest import compute as compute_digest
from containerd.client import (
    Client,
    Descriptor,
    Image,
    create_or_update_image,
    familiar_name,
    get_image,
    host_platform,
    unpack,
)
from containerd.client.errors import ContainerdError, DigestMismatch, InvalidArgument
from containerd.client.errors import NotFound as ContainerdNotFound
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
from containerd.client.names import Reference, parse_reference
from containerd.client.unpack import is_unpacked
from dockerd.engine.distribution.progress import Progress, Streamed, message, short
from dockerd.engine.distribution.registry_client import (
    AuthConfig,
    RegistryConfig,
    RegistryError,
    Session,
    connect,
)
from dockerd.engine.errors import EngineError, InvalidParameter, NotFound

ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST]
LABEL_SOURCE = "containerd.io/distribution.source."
DOWNLOAD_WORKERS = 3  # dockerd's default max-concurrent-downloads
CONFIG_LIMIT = 8 << 20


def parse_pull_reference(from_image: str, tag: str) -> Reference:
    """fromImage and tag as the API gives them (tag may be a digest), normalised like Docker's."""
    text = from_image
    if tag:
        text = f"{from_image}@{tag}" if ":" in tag else f"{from_image}:{tag}"
    try:
        return parse_reference(text)
    except InvalidArgument as exc:
        raise InvalidParameter(str(exc)) from None


@dataclass
class _Resolved:
    top: Descriptor  # what the tag points at (index or manifest)
    top_bytes: bytes
    manifest: Descriptor  # the host platform's
    manifest_bytes: bytes
    index_slot: int  # the manifest's position in the index (-1: no index)


class Pull(Streamed):
    def __init__(
        self, client: Client, config: RegistryConfig, from_image: str, tag: str, auth: AuthConfig
    ) -> None:
        super().__init__()
        self.client = client
        self.config = config
        self.ref = parse_pull_reference(from_image, tag)
        self.auth = auth
        self.name = str(self.ref)
        self.session: Session | None = None
        self.resolved: _Resolved | None = None

    @property
    def familiar(self) -> str:
        return familiar_name(self.name)

    def prepare(self) -> None:
        """Reach the registry and resolve the reference; errors here are HTTP errors."""
        self.session = connect(self.config, self.ref, "pull", self.auth)
        try:
            self.resolved = self._resolve(self.session)
        except BaseException:
            self.session.close()
            raise

    def _fetch_manifest(self, session: Session, ref: str, expected: str = "") -> tuple[bytes, str, str]:
        try:
            data, media_type, header = session.manifest(ref, ACCEPT)
        except RegistryError as exc:
            raise self._pull_error(exc) from None
        digest = compute_digest(data)
        if (expected and digest != expected) or (
            header and header.startswith("sha256:") and header != digest
        ):
            raise InvalidParameter(f"manifest verification failed for digest {expected or header}")
        if media_type not in MANIFEST_TYPES | INDEX_TYPES:
            try:
                media_type = str(json.loads(data).get("mediaType") or "")
            except (ValueError, AttributeError):
                media_type = ""
            if media_type not in MANIFEST_TYPES | INDEX_TYPES:
                raise InvalidParameter(f"unsupported manifest media type for {self.familiar}")
        return data, media_type, digest

    def _pull_error(self, exc: RegistryError) -> EngineError:
        if exc.code in ("MANIFEST_UNKNOWN", "NOT_FOUND") or (
            exc.status == 404 and exc.code != "NAME_UNKNOWN"
        ):
            return NotFound(f"manifest for {self.familiar} not found: {exc}")
        if exc.status in (401, 403) or exc.code in ("NAME_UNKNOWN", "UNAUTHORIZED", "DENIED"):
            repo = familiar_name(self.ref.repository)
            return NotFound(
                f"pull access denied for {repo}, repository does not exist or may require 'docker login': {exc}"
            )
        return exc

    def _resolve(self, session: Session) -> _Resolved:
        wanted = self.ref.digest or self.ref.tag
        data, media_type, digest = self._fetch_manifest(session, wanted, self.ref.digest)
        top = Descriptor(media_type, digest, len(data))
        if media_type in MANIFEST_TYPES:
            return _Resolved(top, data, top, data, -1)
        platform = host_platform()
        try:
            entries = parse_index(data)
        except InvalidArgument as exc:
            raise InvalidParameter(str(exc)) from None
        for slot, entry in enumerate(entries):
            if (
                entry.media_type in MANIFEST_TYPES
                and entry.platform is not None
                and platform.matches(entry.platform)
            ):
                child, child_type, child_digest = self._fetch_manifest(session, entry.digest, entry.digest)
                return _Resolved(top, data, Descriptor(child_type, child_digest, len(child)), child, slot)
        raise NotFound(f"no matching manifest for {platform} in the manifest list entries")

    def _work(self, progress: Progress) -> None:
        assert self.session is not None and self.resolved is not None
        try:
            with self.client.lease():
                self._pull(progress, self.session, self.resolved)
        finally:
            self.session.close()

    def _pull(self, progress: Progress, session: Session, res: _Resolved) -> None:
        progress.put(message(f"Pulling from {self.ref.path}", self.ref.digest or self.ref.tag))
        try:
            manifest = parse_manifest(res.manifest_bytes, res.manifest.media_type)
        except InvalidArgument as exc:
            raise InvalidParameter(str(exc)) from None
        source = {f"{LABEL_SOURCE}{self.ref.domain}": self.ref.path}
        already = self._already_unpacked(res.manifest, manifest.config.digest)
        if not already:
            config = b"".join(
                session.blob_chunks(manifest.config.digest, manifest.config.size, lambda n: None)
            )
            if len(config) > CONFIG_LIMIT:
                raise InvalidParameter("image config too large")
            self.client.content.write(config, size=len(config), expected=manifest.config.digest)
            parse_config(config)
            # The manifest goes first so unpack can read it while the layers still download.
            self.client.content.write(
                res.manifest_bytes, size=len(res.manifest_bytes), expected=res.manifest.digest,
                labels=_gc_labels(res.manifest.media_type, res.manifest_bytes),
            )  # fmt: skip
            if res.index_slot >= 0:
                self.client.content.write(
                    res.top_bytes, size=len(res.top_bytes), expected=res.top.digest,
                    labels={f"{LABEL_GC_REF_CONTENT}.m.{res.index_slot}": res.manifest.digest},
                )  # fmt: skip
            with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="pull-layer") as pool:
                downloads = self._start_downloads(pool, progress, session, manifest.layers, source)
                try:
                    self._unpack_as_downloaded(progress, res.top, downloads)
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            self._ensure_stored(res)
        up_to_date = self._points_at(res.top.digest)
        create_or_update_image(self.client, Image(name=self.name, target=res.top))
        if not self.ref.digest:
            # As dockerd: the repository's digest reference too (the image's RepoDigests).
            create_or_update_image(
                self.client, Image(name=f"{self.ref.repository}@{res.top.digest}", target=res.top)
            )
        progress.put(message(f"Digest: {res.top.digest}"))
        state = "Image is up to date for" if up_to_date else "Downloaded newer image for"
        progress.put(message(f"Status: {state} {self.familiar}"))
        self.events.append((self.familiar, familiar_name(self.ref.repository)))

    def _already_unpacked(self, manifest: Descriptor, config_digest: str) -> bool:
        if not (self.client.content.exists(manifest.digest) and self.client.content.exists(config_digest)):
            return False
        try:
            return is_unpacked(self.client, manifest)
        except ContainerdError:
            return False

    def _ensure_stored(self, res: _Resolved) -> None:
        if res.index_slot >= 0 and not self.client.content.exists(res.top.digest):
            self.client.content.write(
                res.top_bytes, size=len(res.top_bytes), expected=res.top.digest,
                labels={f"{LABEL_GC_REF_CONTENT}.m.{res.index_slot}": res.manifest.digest},
            )  # fmt: skip

    def _points_at(self, digest: str) -> bool:
        try:
            return get_image(self.client, self.name).target.digest == digest
        except ContainerdNotFound:
            return False

    def _start_downloads(
        self,
        pool: ThreadPoolExecutor,
        progress: Progress,
        session: Session,
        layers: list[Descriptor],
        source: dict[str, str],
    ) -> dict[str, Future[None]]:
        """Start downloading the layers the content store lacks, by digest."""
        downloads: dict[str, Future[None]] = {}
        for layer in layers:
            if layer.digest in downloads:
                continue
            if self.client.content.exists(layer.digest):
                progress.put(message("Already exists", short(layer.digest)))
                continue
            progress.put(message("Pulling fs layer", short(layer.digest)))
            run = contextvars.copy_context().run
            downloads[layer.digest] = pool.submit(run, self._fetch_layer, progress, session, layer, source)
        return downloads

    def _unpack_as_downloaded(
        self, progress: Progress, top: Descriptor, downloads: dict[str, Future[None]]
    ) -> None:
        """Unpack layer by layer, each as soon as its download is done (as dockerd does)."""

        def before(layer: Descriptor) -> None:
            download = downloads.get(layer.digest)
            if download is not None:
                download.result()
                progress.put(message("Extracting", short(layer.digest), 0, layer.size))

        def after(layer: Descriptor) -> None:
            if layer.digest in downloads:
                progress.put(message("Pull complete", short(layer.digest)))

        try:
            unpack(self.client, top, before_layer=before, after_layer=after)
        except ContainerdError as exc:  # a download's own errors are the engine's, raised as they are
            raise InvalidParameter(f"failed to register layer: {exc}") from None

    def _fetch_layer(
        self, progress: Progress, session: Session, layer: Descriptor, source: dict[str, str]
    ) -> None:
        id_ = short(layer.digest)
        last = [0.0]

        def on_bytes(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1 or done == layer.size:
                last[0] = now
                progress.put(message("Downloading", id_, done, layer.size))

        try:
            self.client.content.write(
                session.blob_chunks(layer.digest, layer.size, on_bytes),
                size=layer.size,
                expected=layer.digest,
                labels=source,
            )
        except DigestMismatch:
            raise InvalidParameter(
                f"filesystem layer verification failed for digest {layer.digest}"
            ) from None
        progress.put(message("Verifying Checksum", id_))
        progress.put(message("Download complete", id_))


def _gc_labels(media_type: str, data: bytes) -> dict[str, str]:
    manifest = parse_manifest(data, media_type)
    labels = {f"{LABEL_GC_REF_CONTENT}.config": manifest.config.digest}
    labels.update({f"{LABEL_GC_REF_CONTENT}.l.{i}": d.digest for i, d in enumerate(manifest.layers)})
    return labels
