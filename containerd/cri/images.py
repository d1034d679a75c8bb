"""The CRI's image service on pycontainerd's images in the `k8s.io` namespace.

A CRI image is what containerd's CRI plugin calls one: the image *config* digest is its id, and
the image records naming the same target are its names (`repo:tag` ones are RepoTags,
`repo@digest` ones RepoDigests, and the id itself is recorded as a name too, as containerd's
CRI does, so `ctr -n k8s.io images ls` shows the same three records). Pulls go through
containerd.remotes, in this process: pycontainerd fetches the blobs itself.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from containerd.client import Client, Image, delete_image, image_manifest, list_images, normalize_name
from containerd.client.errors import ContainerdError as ClientError
from containerd.client.errors import NotFound as ClientNotFound
from containerd.client.unpack import read_blob
from containerd.cri.config import CRIConfig
from containerd.errors import ContainerdError, InvalidArgument, NotFound
from containerd.remotes import Credentials, Puller, PullError, RegistryHosts

IMAGE_LABEL = "io.cri-containerd.image"
_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


@dataclass
class CRIImage:
    id: str  # config digest
    target_digest: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: dict[str, Any]
    top_chain: str  # the snapshot a container's writable layer is prepared on
    names: list[str]  # every record naming it


class Images:
    def __init__(self, client: Client, cfg: CRIConfig) -> None:
        self.client = client
        self.cfg = cfg
        self._cache: dict[
            str, tuple[str, int, dict[str, Any], str]
        ] = {}  # target -> (id, size, config, chain)
        self._pull_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # --- reading -----------------------------------------------------------------------------

    def _describe(self, image: Image) -> tuple[str, int, dict[str, Any], str]:
        cached = self._cache.get(image.target.digest)
        if cached is not None:
            return cached
        from containerd.client import chain_ids
        from containerd.client.media import load_json

        desc, manifest, config = image_manifest(self.client, image)
        doc = load_json(read_blob(self.client, manifest.config), "image config")
        size = desc.size + manifest.config.size + sum(layer.size for layer in manifest.layers)
        chains = chain_ids(config.diff_ids)
        value = (
            manifest.config.digest,
            size,
            doc if isinstance(doc, dict) else {},
            chains[-1] if chains else "",
        )
        self._cache[image.target.digest] = value
        return value

    def all(self) -> list[CRIImage]:
        by_id: dict[str, CRIImage] = {}
        for image in list_images(self.client):
            try:
                id_, size, config, chain = self._describe(image)
            except ClientError:
                continue  # not for this platform, or content missing: not a usable image
            item = by_id.setdefault(id_, CRIImage(id_, image.target.digest, [], [], size, config, chain, []))
            item.names.append(image.name)
            if image.name == id_:
                continue
            if "@" in image.name:
                item.repo_digests.append(image.name)
            else:
                item.repo_tags.append(image.name)
        for item in by_id.values():
            item.repo_tags.sort()
            item.repo_digests.sort()
        return sorted(by_id.values(), key=lambda i: i.id)

    def resolve(self, ref: str) -> CRIImage:
        """By image id (full, or 'sha256:'-less), by name (normalised), by repo digest."""
        if not ref:
            raise InvalidArgument("image reference must not be empty")
        images = self.all()
        if _ID.match(ref):
            want = ref if ref.startswith("sha256:") else f"sha256:{ref}"
            for item in images:
                if item.id == want:
                    return item
        else:
            try:
                name = normalize_name(ref)
            except ClientError as exc:
                raise InvalidArgument(f"invalid image reference {ref!r}: {exc}") from None
            for item in images:
                if name in item.names:
                    return item
        raise NotFound(f"image {ref!r}: not found")

    def find(self, ref: str) -> CRIImage | None:
        try:
            return self.resolve(ref)
        except NotFound:
            return None

    # --- changing ----------------------------------------------------------------------------

    def pull(self, ref: str, auth: Any = None) -> str:
        """Pull REF; returns the image id. One pull per reference at a time."""
        try:
            name = normalize_name(ref)
        except ClientError as exc:
            raise InvalidArgument(f"failed to pull image {ref!r}: {exc}") from None
        with self._lock:
            lock = self._pull_locks.setdefault(name, threading.Lock())
        with lock:
            hosts = self._hosts(name, auth)
            puller = Puller(
                self.client, hosts, snapshotter=self.cfg.snapshotter, labels={IMAGE_LABEL: "managed"}
            )
            try:
                pulled = puller.pull(name, extra_names=lambda p: [p.repo_digest, p.config_digest])
            except PullError as exc:
                kind = NotFound if exc.not_found else ContainerdError
                raise kind(f'failed to pull and unpack image "{name}": {exc}') from None
            except ClientError as exc:
                raise ContainerdError(f'failed to pull and unpack image "{name}": {exc}') from None
        return pulled.config_digest

    def _hosts(self, name: str, auth: Any) -> RegistryHosts:
        creds: dict[str, Credentials] = {}
        for host, conf in self.cfg.auths.items():
            creds[host] = Credentials.from_auth(
                conf.get("auth", ""), conf.get("username", ""), conf.get("password", ""),
                identity_token=conf.get("identitytoken", ""),
            )  # fmt: skip
        if auth is not None and (auth.username or auth.auth or auth.registry_token or auth.identity_token):
            domain = name.split("/", 1)[0]
            given = Credentials.from_auth(
                auth.auth, auth.username, auth.password,
                identity_token=auth.identity_token, registry_token=auth.registry_token,
            )  # fmt: skip
            creds[domain] = given
            for mirror in self.cfg.mirrors.get(domain, []):
                creds[mirror.split("://", 1)[-1].rstrip("/")] = given
        return RegistryHosts(mirrors=self.cfg.mirrors, insecure=self.cfg.insecure, credentials=creds)

    def remove(self, ref: str) -> None:
        """Every record naming the image goes (idempotent: an unknown image is no error)."""
        item = self.find(ref)
        if item is None:
            return
        for name in item.names:
            try:
                delete_image(self.client, name, sync=name == item.names[-1])
            except ClientNotFound:
                pass
        self._cache.pop(item.target_digest, None)

    def import_layout(self, path: str) -> None:
        """Import an OCI layout or archive (the configured sandbox image) and name it as a pull would."""
        from containerd.client import import_archive

        images = import_archive(self.client, path, labels={IMAGE_LABEL: "managed"})
        for image in images:
            id_, _, _, _ = self._describe(image)
            from containerd.client import create_or_update_image

            create_or_update_image(
                self.client, Image(name=id_, target=image.target, labels={IMAGE_LABEL: "managed"})
            )


def fs_usage(path: str) -> tuple[int, int]:
    """(bytes, inodes) used under PATH (the snapshotter's directory), not crossing mounts."""
    used = inodes = 0
    dev = os.stat(path).st_dev if os.path.exists(path) else None
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev]
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            used += st.st_blocks * 512
            inodes += 1
    return used, inodes


def now_ns() -> int:
    return time.time_ns()
