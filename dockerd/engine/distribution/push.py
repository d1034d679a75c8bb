"""Push (POST /images/{name}/push): the blobs pycontainerd holds for the image's manifest are
sent as they are, so every digest is preserved; five layers at a time (dockerd's default),
each by cross-repository mount when the registry has it elsewhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from containerd.client import (
    Client,
    Descriptor,
    Image,
    create_or_update_image,
    familiar_name,
    get_image,
    list_images,
)
from containerd.client.errors import ContainerdError, InvalidArgument
from containerd.client.errors import NotFound as ContainerdNotFound
from containerd.client.names import parse_reference
from containerd.client.unpack import image_manifest
from dockerd.engine.distribution.progress import Progress, Streamed, message, short
from dockerd.engine.distribution.pull import LABEL_SOURCE
from dockerd.engine.distribution.registry_client import (
    AuthConfig,
    RegistryConfig,
    RegistryError,
    Session,
    connect,
)
from dockerd.engine.errors import InvalidParameter, NotFound

UPLOAD_WORKERS = 5  # dockerd's default max-concurrent-uploads


class Push(Streamed):
    def __init__(self, client: Client, config: RegistryConfig, name: str, tag: str, auth: AuthConfig) -> None:
        super().__init__()
        self.client = client
        self.config = config
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
        self.session = connect(self.config, self.ref, "pull,push", self.auth, push=True)

    def _work(self, progress: Progress) -> None:
        assert self.session is not None
        try:
            progress.put(message(f"The push refers to repository [{self.ref.repository}]"))
            for tag, image in self.images:
                self._push_one(progress, self.session, tag, image)
        finally:
            self.session.close()

    def _push_one(self, progress: Progress, session: Session, tag: str, image: Image) -> None:
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
        self.events.append(
            (familiar_name(f"{self.ref.repository}:{tag}"), familiar_name(self.ref.repository))
        )

    def _push_layer(self, progress: Progress, session: Session, layer: Descriptor, diff_id: str) -> None:
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
