"""Pull and push (POST /images/create?fromImage=, POST /images/{name}/push) and POST /auth.

Images live in pycontainerd only: a pull writes each blob through the Content service with
its expected digest (so a registry serving wrong bytes gets nothing stored), under one lease,
labels the manifest (and index) with containerd's gc.ref labels, unpacks, and only then
creates the image record (name = the normalised reference, target = the descriptor the
registry resolved the tag to). A push sends the blobs pycontainerd holds for the image's
manifest as they are, so every digest is preserved.

Work before the first progress message (resolving the reference, reaching the registry,
fetching the manifest) fails as an HTTP error, as dockerd's does; later errors go into the
JSON stream as {"errorDetail": {"message"}, "error"}. The streaming side runs in one worker
thread feeding a queue (the lease lives in that thread's context); layers move concurrently
in a small pool.
"""

from __future__ import annotations

import contextvars
import json
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

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
from containerd.client.unpack import image_manifest, is_unpacked
from dockerd.engine.errors import EngineError, InvalidParameter, NotFound
from dockerd.engine.distribution.registry_client import (
    AuthConfig,
    RegistryConfig,
    RegistryError,
    Session,
    Unauthorized,
)

ACCEPT = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST]
LABEL_SOURCE = "containerd.io/distribution.source."
# dockerd's defaults for max-concurrent-downloads and max-concurrent-uploads
DOWNLOAD_WORKERS = 3
UPLOAD_WORKERS = 5
CONFIG_LIMIT = 8 << 20

# Set by dockerd/main.py from the flags and daemon.json.
CONFIG = RegistryConfig()


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


def message(status: str, id_: str = "", current: int | None = None, total: int | None = None) -> bytes:
    out: dict[str, Any] = {"status": status}
    if id_:
        detail: dict[str, int] = {}
        if current is not None:
            detail["current"] = current
            if total:
                detail["total"] = total
        out["progressDetail"] = detail
        if current is not None and total:
            out["progress"] = _bar(current, total)
        out["id"] = id_
    return json.dumps(out, separators=(",", ":")).encode() + b"\r\n"


def error_message(text: str) -> bytes:
    return json.dumps({"errorDetail": {"message": text}, "error": text}).encode() + b"\r\n"


def _bar(current: int, total: int) -> str:
    width = 50
    filled = min(width, current * width // total) if total else 0
    arrow = "=" * max(filled - 1, 0) + (">" if filled else "")
    return f"[{arrow:<{width}}] {_size(current)}/{_size(total)}"


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def parse_pull_reference(from_image: str, tag: str) -> Reference:
    """fromImage and tag as the API gives them (tag may be a digest), normalised like Docker's."""
    text = from_image
    if tag:
        text = f"{from_image}@{tag}" if ":" in tag else f"{from_image}:{tag}"
    try:
        return parse_reference(text)
    except InvalidArgument as exc:
        raise InvalidParameter(str(exc)) from None


def _connect(ref: Reference, actions: str, auth: AuthConfig, *, push: bool = False) -> Session:
    """A session on the first endpoint that answers (mirrors first for a pull from docker.io)."""
    errors: list[EngineError] = []
    for base in CONFIG.endpoints(ref.domain, push=push):
        session = Session(base, ref.path, actions, auth)
        try:
            session.ping()
            return session
        except httpx.HTTPError as exc:
            session.close()
            errors.append(RegistryError(f'Get "{base}/v2/": {_transport_text(exc)}', 500))
        except EngineError as exc:
            session.close()
            errors.append(exc)
    raise errors[-1] if errors else RegistryError(f"no endpoint for {ref.domain}", 500)


def _transport_text(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        return "connect: connection refused"
    return text


class Cancelled(Exception):
    """The client went away: the pull or push stops at its next progress message."""


class _Progress:
    """Messages from worker threads to the response, in order."""

    _END = object()

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.cancelled = threading.Event()

    def put(self, data: bytes) -> None:
        """Queue a message; raises Cancelled once nobody reads them any more.

        Every download reports its bytes through here, so a client hanging up stops the
        downloads (and their half-written ingests are aborted) within one progress tick.
        """
        if self.cancelled.is_set():
            raise Cancelled
        self.queue.put(data)

    def end(self, last: bytes = b"") -> None:
        if last:
            self.queue.put(last)
        self.queue.put(self._END)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item


class _Streamed:
    """A pull or a push: work in a thread, its progress as the response body.

    `events` holds the (id, name) pairs of the image events to publish once the stream ended
    well; `cancel()` is for a client that went away.
    """

    def __init__(self) -> None:
        self.progress = _Progress()
        self.events: list[tuple[str, str]] = []

    def _work(self, progress: _Progress) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        self.progress.cancelled.set()

    def stream(self) -> Iterator[bytes]:
        progress = self.progress

        def main() -> None:
            last = b""
            try:
                self._work(progress)
            except Cancelled:
                self.events.clear()
            except EngineError as exc:
                last = error_message(str(exc))
            except ContainerdError as exc:
                last = error_message(str(exc))
            except httpx.HTTPError as exc:
                last = error_message(_transport_text(exc))
            except Exception as exc:  # noqa: BLE001 - never a traceback in the stream
                last = error_message(f"{type(exc).__name__}: {exc}")
            if last:
                self.events.clear()
            progress.end(last)

        threading.Thread(target=main, name=type(self).__name__.lower(), daemon=True).start()
        return iter(progress)


# --- pull -----------------------------------------------------------------------------------


@dataclass
class _Resolved:
    top: Descriptor  # what the tag points at (index or manifest)
    top_bytes: bytes
    manifest: Descriptor  # the host platform's
    manifest_bytes: bytes
    index_slot: int  # the manifest's position in the index (-1: no index)


class Pull(_Streamed):
    def __init__(self, client: Client, from_image: str, tag: str, auth: AuthConfig) -> None:
        super().__init__()
        self.client = client
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
        self.session = _connect(self.ref, "pull", self.auth)
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

    def _work(self, progress: _Progress) -> None:
        assert self.session is not None and self.resolved is not None
        try:
            with self.client.lease():
                self._pull(progress, self.session, self.resolved)
        finally:
            self.session.close()

    def _pull(self, progress: _Progress, session: Session, res: _Resolved) -> None:
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
            create_or_update_image(self.client, Image(name=f"{self.ref.repository}@{res.top.digest}", target=res.top))
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
        progress: _Progress,
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

    def _unpack_as_downloaded(self, progress: _Progress, top: Descriptor, downloads: dict[str, Future[None]]) -> None:
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
        self, progress: _Progress, session: Session, layer: Descriptor, source: dict[str, str]
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


# --- push -----------------------------------------------------------------------------------


class Push(_Streamed):
    def __init__(self, client: Client, name: str, tag: str, auth: AuthConfig) -> None:
        super().__init__()
        self.client = client
        self.auth = auth
        try:
            ref = parse_reference(name, default_tag=False)
        except InvalidArgument as exc:
            raise InvalidParameter(str(exc)) from None
        self.ref = ref
        self.tags = [tag] if tag else ([ref.tag] if ref.tag else [])
        self.images: list[tuple[str, Image]] = []
        self.session: Session | None = None

    def prepare(self) -> None:
        from containerd.client import list_images

        repo = self.ref.repository
        if self.tags:
            for tag in self.tags:
                try:
                    self.images.append((tag, get_image(self.client, f"{repo}:{tag}")))
                except ContainerdNotFound:
                    pass
        else:
            for image in list_images(self.client):
                base, _, tag = image.name.rpartition(":")
                if base == repo and "@" not in image.name:
                    self.images.append((tag, image))
        if not self.images:
            raise NotFound(f"An image does not exist locally with the tag: {familiar_name(repo)}")
        self.session = _connect(self.ref, "pull,push", self.auth, push=True)

    def _work(self, progress: _Progress) -> None:
        assert self.session is not None
        try:
            progress.put(message(f"The push refers to repository [{self.ref.repository}]"))
            for tag, image in self.images:
                self._push_one(progress, self.session, tag, image)
        finally:
            self.session.close()

    def _push_one(self, progress: _Progress, session: Session, tag: str, image: Image) -> None:
        desc, manifest, config = image_manifest(self.client, image)
        data = self.client.content.read_all(desc.digest, 4 << 20)
        pairs = list(zip(manifest.layers, config.diff_ids, strict=True))
        for _layer, diff_id in pairs:
            progress.put(message("Preparing", short(diff_id)))
        with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="push-layer") as pool:
            futures = [
                pool.submit(self._push_layer, progress, session, layer, diff_id) for layer, diff_id in pairs
            ]
            for future in futures:
                future.result()
        if not session.has_blob(manifest.config.digest):
            session.upload(
                manifest.config.digest, manifest.config.size, self.client.content.read(manifest.config.digest)
            )
        try:
            session.put_manifest(tag, data, desc.media_type)
        except RegistryError as exc:
            raise RegistryError(f"{exc}", exc.status, exc.code) from None
        # As dockerd: what was pushed is known by its digest in that repository (RepoDigests).
        create_or_update_image(self.client, Image(name=f"{self.ref.repository}@{desc.digest}", target=desc))
        progress.put(message(f"{tag}: digest: {desc.digest} size: {len(data)}"))
        aux = {"progressDetail": {}, "aux": {"Tag": tag, "Digest": desc.digest, "Size": len(data)}}
        progress.put(json.dumps(aux, separators=(",", ":")).encode() + b"\r\n")
        self.events.append((familiar_name(f"{self.ref.repository}:{tag}"), familiar_name(self.ref.repository)))

    def _push_layer(self, progress: _Progress, session: Session, layer: Descriptor, diff_id: str) -> None:
        id_ = short(diff_id)
        if session.has_blob(layer.digest):
            progress.put(message("Layer already exists", id_))
            return
        mount_from = ""
        try:
            labels = self.client.content.info(layer.digest).labels
            mount_from = (
                labels.get(f"{LABEL_SOURCE}{session.host}", "") if self.ref.domain == session.host else ""
            )
        except ContainerdError:
            pass
        if mount_from == self.ref.path:
            mount_from = ""
        sent = [0]
        last = [0.0]

        def chunks() -> Iterator[bytes]:
            for chunk in self.client.content.read(layer.digest):
                sent[0] += len(chunk)
                now = time.monotonic()
                if now - last[0] >= 0.1 or sent[0] == layer.size:
                    last[0] = now
                    progress.put(message("Pushing", id_, sent[0], layer.size))
                yield chunk

        if session.upload(layer.digest, layer.size, chunks(), mount_from):
            progress.put(message(f"Mounted from {mount_from}", id_))
        else:
            progress.put(message("Pushed", id_))


# --- login ----------------------------------------------------------------------------------


def login(auth: AuthConfig) -> dict[str, str]:
    """POST /auth: check the credentials against the registry named by serveraddress."""
    server = auth.serveraddress or "https://index.docker.io/v1/"
    host = server.split("://", 1)[-1].split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        host = "docker.io"
    try:
        ref = parse_reference(f"{host}/login/probe" if host != "docker.io" else "login/probe")
    except InvalidArgument as exc:
        raise InvalidParameter(str(exc)) from None
    errors: list[EngineError] = []
    for base in CONFIG.endpoints(ref.domain, push=True):
        session = Session(base, ref.path, "pull", auth)
        try:
            session.login()
            return {"Status": "Login Succeeded", "IdentityToken": ""}
        except httpx.HTTPError as exc:
            errors.append(RegistryError(f'Get "{base}/v2/": {_transport_text(exc)}', 500))
        except Unauthorized:
            raise
        except EngineError as exc:
            errors.append(exc)
        finally:
            session.close()
    raise errors[-1] if errors else InvalidParameter(f"no endpoint for {server}")
