"""Snapshots and layers of a build: a step's work snapshot, its diff as a layer blob, and the
snapshot chain named by chain ID that the next step (or a container) is prepared on.

A step's layer is Diff.Diff between what it started from and what it left (an uncompressed
tar in the content store; its digest is its diff ID). The chain snapshot is then the parent
chain with that layer applied (Diff.Apply on a fresh snapshot, committed under the chain
ID), so a built image's snapshots hold exactly what its layers say, as if it had been
pulled and unpacked, and are shared with any image that has the same layers.
"""

from __future__ import annotations

import contextlib
import secrets
import tarfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from common.digest import compute as compute_digest
from containerd.client import AlreadyExists, ContainerdError, Descriptor, Mount, NotFound, chain_ids
from containerd.client.media import DOCKER_LAYER, WHITEOUT_STYLE_LABEL
from containerd.client.mount import temp_mount

if TYPE_CHECKING:
    from containerd.client import Client

# What Diff writes when nothing changed: a tar with no entries (Python's tarfile pads it to
# one 10 KiB record, Go's archive/tar writes two zero blocks); either is "no layer".
_EMPTY_TARS = {compute_digest(bytes(size)) for size in (2 * tarfile.BLOCKSIZE, tarfile.RECORDSIZE)}


# dockerd's layers are its graphdriver's tars: whiteouts as its tar writer makes them
DOCKER_WHITEOUTS = {WHITEOUT_STYLE_LABEL: "docker"}


def is_empty_layer(desc: Descriptor) -> bool:
    return desc.digest in _EMPTY_TARS


def new_key(kind: str) -> str:
    return f"build-{kind}-{secrets.token_hex(8)}"


class Layers:
    def __init__(self, client: Client, snapshotter: str, tmp_dir: str | None) -> None:
        self.client = client
        self.snapshotter = snapshotter
        self.snapshots = client.snapshots(snapshotter)
        self.tmp_dir = tmp_dir

    def remove_quietly(self, *keys: str) -> None:
        for key in keys:
            with contextlib.suppress(NotFound, ContainerdError):
                self.snapshots.remove(key)

    @contextlib.contextmanager
    def mounted(self, mounts: list[Mount], readonly: bool = False) -> Iterator[str]:
        from containerd.client.mount import readonly as as_readonly

        with temp_mount(as_readonly(mounts) if readonly else mounts, self.tmp_dir) as root:
            yield root

    @contextlib.contextmanager
    def view(self, chain: str) -> Iterator[list[Mount]]:
        """Read-only mounts of CHAIN ("" : an empty tree) for the block."""
        key = new_key("view")
        if chain:
            mounts = self.snapshots.view(key, chain)
        else:
            mounts = self.snapshots.prepare(key, "")
        try:
            yield mounts
        finally:
            self.remove_quietly(key)

    def diff(self, lower_chain: str, upper: list[Mount], epoch: int | None) -> Descriptor | None:
        """The layer that turns LOWER_CHAIN into UPPER, stored; None when nothing changed."""
        with self.view(lower_chain) as lower:
            desc = self.client.diff.compare(
                lower, upper, media_type=DOCKER_LAYER, source_date_epoch=epoch, labels=DOCKER_WHITEOUTS
            )
        if is_empty_layer(desc):
            return None
        return Descriptor(DOCKER_LAYER, desc.digest, desc.size)

    def materialize(self, parent_diff_ids: list[str], layer: Descriptor) -> str:
        """The chain snapshot of the parent's layers plus LAYER (an uncompressed tar, whose
        digest is its diff ID): made once, by applying the layer on the parent chain."""
        chains = chain_ids([*parent_diff_ids, layer.digest])
        chain, parent = chains[-1], (chains[-2] if len(chains) > 1 else "")
        if self.snapshots.exists(chain):
            return chain
        key = new_key("apply")
        mounts = self.snapshots.prepare(key, parent)
        try:
            self.client.diff.apply(layer, mounts)
            try:
                self.snapshots.commit(chain, key)
            except AlreadyExists:
                pass  # another build made the same layer meanwhile
        finally:
            self.remove_quietly(key)
        return chain

    def commit_as_chain(self, parent_diff_ids: list[str], layer: Descriptor, key: str) -> str:
        """The chain snapshot of the parent's layers plus LAYER, made by committing KEY (a
        snapshot prepared on the parent chain whose diff LAYER is) instead of applying the
        layer again: the same files without writing them twice."""
        chain = chain_ids([*parent_diff_ids, layer.digest])[-1]
        if self.snapshots.exists(chain):
            return chain
        try:
            self.snapshots.commit(chain, key)
        except AlreadyExists:
            pass  # another build made the same layer meanwhile
        return chain
