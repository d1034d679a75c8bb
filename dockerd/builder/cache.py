"""The build cache: each step's image, found again by (parent image, instruction).

A record is a pycontainerd lease named `pydocker-build-cache-<key>` that holds the step's
manifest; the manifest keeps its config and layers, the config keeps the step's snapshot
chain (gc labels), so a record keeps everything the step made, in pycontainerd's own
metadata: it survives restarts of either daemon and is never a Docker image (`docker
images` does not see it). The key is the sha256 of the parent image's ID and the step's
cache string (what dockerd's classic builder compares: the command as history records it,
plus what else decides the result, such as the source checksums of a COPY). `docker builder
prune` deletes records; `system df` adds up the layer snapshots they hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from containerd.client import ContainerdError, Descriptor, NotFound, Resource
from containerd.client.media import DOCKER_MANIFEST

if TYPE_CHECKING:
    from containerd.client import Client, Lease

PREFIX = "pydocker-build-cache-"
LABEL_KIND = "pydocker.build/cache"
LABEL_IMAGE = "pydocker.build/image"  # the step's image ID
LABEL_MANIFEST = "pydocker.build/manifest"  # digest of its manifest
LABEL_MANIFEST_SIZE = "pydocker.build/manifest-size"
LABEL_PARENT = "pydocker.build/parent"
LABEL_DESCRIPTION = "pydocker.build/description"
LABEL_CHAIN = "pydocker.build/chain"  # the snapshot the step's own layer is ("" for none)
_MAX_LABEL = 200


@dataclass(frozen=True)
class CacheRecord:
    key: str
    image_id: str
    manifest: Descriptor
    parent: str
    description: str
    chain: str  # the step's own layer snapshot, "" when the step made no layer
    created_at: int  # ns since the epoch

    @property
    def id(self) -> str:
        """The record's ID as `docker builder prune` and `system df -v` show it."""
        return self.key[:25]


@dataclass(frozen=True)
class PruneResult:
    deleted: list[str]  # record IDs
    reclaimed: int  # bytes of layer snapshots that went with them


def cache_key(parent_id: str, cache_string: str) -> str:
    return hashlib.sha256(f"{parent_id}\n{cache_string}".encode()).hexdigest()


class BuildCache:
    def __init__(self, client: Client, snapshotter: str = "overlayfs") -> None:
        self.client = client
        self.snapshotter = snapshotter

    def get(self, key: str) -> CacheRecord | None:
        """The record for KEY, if it and the content it holds are still there."""
        found = self.client.leases.list(f'id=="{PREFIX}{key}"')
        if not found:
            return None
        record = _record(found[0])
        if record is None or not self.client.content.exists(record.manifest.digest):
            return None
        if record.chain and not self.client.snapshots(self.snapshotter).exists(record.chain):
            return None
        return record

    def put(
        self, key: str, image_id: str, manifest: Descriptor, parent: str, description: str, chain: str
    ) -> None:
        with contextlib.suppress(ContainerdError):
            self.client.leases.delete(f"{PREFIX}{key}")
        self._create(key, image_id, manifest, parent, description, chain)

    def _create(
        self, key: str, image_id: str, manifest: Descriptor, parent: str, description: str, chain: str
    ) -> None:
        labels = {
            LABEL_KIND: "step",
            LABEL_IMAGE: image_id,
            LABEL_MANIFEST: manifest.digest,
            LABEL_MANIFEST_SIZE: str(manifest.size),
            LABEL_PARENT: parent,
            LABEL_DESCRIPTION: description[:_MAX_LABEL],
            LABEL_CHAIN: chain,
        }
        # No lease header: the record must not itself belong to the build's lease.
        with self.client.using_lease(""):
            lease = self.client.leases.create(f"{PREFIX}{key}", labels={k: v for k, v in labels.items() if v})
            self.client.leases.add_resource(lease.id, Resource(manifest.digest, "content"))

    def records(self) -> list[CacheRecord]:
        out = []
        for lease in self.client.leases.list(f'labels."{LABEL_KIND}"==step'):
            record = _record(lease)
            if record is not None:
                out.append(record)
        return sorted(out, key=lambda r: r.created_at)

    def size(self, record: CacheRecord) -> int:
        """Bytes of the step's own layer snapshot (0 for a step without a layer)."""
        if not record.chain:
            return 0
        try:
            return self.client.snapshots(self.snapshotter).usage(record.chain).size
        except NotFound:
            return 0

    def prune(
        self, *, older_than: float | None = None, keep_storage: int = 0, keys: set[str] | None = None
    ) -> PruneResult:
        """Delete records (all, those in KEYS, or those made more than `older_than` seconds
        ago), oldest first, until what is left takes at most `keep_storage` bytes. Garbage is
        collected before the answer; a layer an image still uses stays (and is not counted)."""
        records = self.records()
        sizes = {r.key: self.size(r) for r in records}
        total = sum(sizes.values())
        now_ns = time.time_ns()
        deleted: list[CacheRecord] = []
        for record in records:
            if keys is not None and record.key not in keys:
                continue
            if older_than is not None and now_ns - record.created_at < older_than * 10**9:
                continue
            if keep_storage and total <= keep_storage:
                break
            with contextlib.suppress(NotFound):
                self.client.leases.delete(f"{PREFIX}{record.key}", sync=True)
            deleted.append(record)
            total -= sizes[record.key]
        snaps = self.client.snapshots(self.snapshotter)
        reclaimed = sum(sizes[r.key] for r in deleted if r.chain and not snaps.exists(r.chain))
        return PruneResult([r.id for r in deleted], reclaimed)


def _record(lease: Lease) -> CacheRecord | None:
    labels = lease.labels
    if not lease.id.startswith(PREFIX) or LABEL_MANIFEST not in labels:
        return None
    try:
        manifest = Descriptor(
            DOCKER_MANIFEST, labels[LABEL_MANIFEST], int(labels.get(LABEL_MANIFEST_SIZE, "0"))
        )
    except ValueError:
        return None
    return CacheRecord(
        lease.id[len(PREFIX) :],
        labels.get(LABEL_IMAGE, ""),
        manifest,
        labels.get(LABEL_PARENT, ""),
        labels.get(LABEL_DESCRIPTION, ""),
        labels.get(LABEL_CHAIN, ""),
        lease.created_at,
    )
