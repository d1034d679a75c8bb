"""The overlayfs snapshotter: every layer unpacked once, shared by every child.

On disk, under ROOT:
    metadata.db            this snapshotter's SQLite table (see storage.py)
    snapshots/<id>/fs      the snapshot's own files: a committed layer, or an active upperdir
    snapshots/<id>/work    overlayfs' workdir (active snapshots only)

Namespaces: the snapshotter is namespaced itself. Every call takes the namespace first and
keys are unique per namespace, so two namespaces may both use the key "k" (as containerd's
metadata layer allows). A parent must be in the caller's namespace. A committed snapshot is
still exactly one directory, which every snapshot prepared on it (in that namespace) uses
as a lowerdir, so an image's layers are unpacked once per namespace and shared by all its
containers. `namespaces()` and `walk(ns)` let garbage collection see everything.

Mounts are the ones containerd's overlayfs snapshotter returns:
    no parent                  bind of fs, "rw" (active) or "ro" (view)
    view of one committed      bind of the parent's fs, "ro"
    active with parents        overlay: [index=off,] workdir, upperdir=fs, lowerdir=parents nearest first
    view of two or more        overlay with lowerdir only (read-only; overlayfs needs two lowers for that)
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Iterator

from containerd.errors import AlreadyExists, ContainerdError, FailedPrecondition, InvalidArgument, NotFound
from containerd.snapshots.mount import Mount
from containerd.snapshots.storage import Row, Storage, Tx
from containerd.snapshots.types import (
    KIND_ACTIVE,
    KIND_COMMITTED,
    KIND_VIEW,
    SnapshotInfo,
    Usage,
    validate_labels,
)

_INDEX_PARAM = "/sys/module/overlay/parameters/index"


def disk_usage(path: str) -> Usage:
    """Bytes allocated (st_blocks, as du counts them) and inodes under PATH, each hard link once."""
    seen: set[tuple[int, int]] = set()
    size = 0

    def add(st: os.stat_result) -> None:
        nonlocal size
        ident = (st.st_dev, st.st_ino)
        if ident not in seen:
            seen.add(ident)
            size += st.st_blocks * 512

    try:
        add(os.lstat(path))
    except FileNotFoundError:
        return Usage(0, 0)
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                add(st)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return Usage(size, len(seen))


class OverlaySnapshotter:
    """containerd's overlayfs snapshotter over ROOT; every method takes the namespace first."""

    def __init__(self, root: str, *, index_off: bool | None = None) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(os.path.join(self.root, "snapshots"), mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        # containerd turns the inodes index off whenever the kernel knows the option: with
        # index=on, an upperdir may never be reused with different lowers.
        self.index_off = os.path.exists(_INDEX_PARAM) if index_off is None else index_off
        self._db = Storage(os.path.join(self.root, "metadata.db"))

    def close(self) -> None:
        self._db.close()

    # --- paths -------------------------------------------------------------------------

    def _dir(self, id_: int) -> str:
        return os.path.join(self.root, "snapshots", str(id_))

    def fs_path(self, id_: int) -> str:
        return os.path.join(self._dir(id_), "fs")

    def _work_path(self, id_: int) -> str:
        return os.path.join(self._dir(id_), "work")

    # --- creating ----------------------------------------------------------------------

    def prepare(
        self, namespace: str, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """A new writable snapshot on PARENT (a committed snapshot, or none)."""
        return self._create(namespace, KIND_ACTIVE, key, parent, labels)

    def view(
        self, namespace: str, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """A new read-only snapshot of PARENT."""
        return self._create(namespace, KIND_VIEW, key, parent, labels)

    def _create(
        self, namespace: str, kind: str, key: str, parent: str, labels: dict[str, str] | None
    ) -> list[Mount]:
        if not key:
            raise InvalidArgument("snapshot key must not be empty")
        labels = dict(labels or {})
        validate_labels(labels)
        with self._db.transaction() as tx:
            if tx.get(namespace, key) is not None:
                raise AlreadyExists(f"snapshot {key}: already exists")
            parent_row = None
            if parent:
                parent_row = tx.get(namespace, parent)
                if parent_row is None:
                    raise NotFound(f"parent snapshot {parent}: not found")
                if parent_row.kind != KIND_COMMITTED:
                    raise InvalidArgument(f"parent snapshot {parent} is not committed ({parent_row.kind})")
            id_ = tx.insert(
                namespace, key, kind, parent_row.id if parent_row else None, labels, time.time_ns()
            )
            try:
                self._make_dirs(id_, kind, parent_row)
            except OSError as e:
                raise ContainerdError(
                    f"snapshot {key}: cannot create its directory: {e.strerror or e}"
                ) from None
            row = tx.by_id(id_)
            return self._mounts(row, tx.chain(row))

    def _make_dirs(self, id_: int, kind: str, parent: Row | None) -> None:
        final = self._dir(id_)
        # a directory under this id can only be a leftover of a crash between rename and COMMIT
        shutil.rmtree(final, ignore_errors=True)
        staging = os.path.join(self.root, "snapshots", f"new-{id_}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            os.mkdir(staging, 0o700)
            os.mkdir(os.path.join(staging, "fs"), 0o755)
            if kind == KIND_ACTIVE:
                os.mkdir(os.path.join(staging, "work"), 0o711)
            if parent is not None:
                # the container's / shows the upper's root: give it the image's owner
                st = os.stat(self.fs_path(parent.id))
                os.chown(os.path.join(staging, "fs"), st.st_uid, st.st_gid)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _mounts(self, row: Row, parents: list[Row]) -> list[Mount]:
        options = ["index=off"] if self.index_off else []
        if not parents:
            mode = "ro" if row.kind == KIND_VIEW else "rw"
            return [Mount("bind", self.fs_path(row.id), "", [mode, "rbind"])]
        if row.kind == KIND_ACTIVE:
            options += [f"workdir={self._work_path(row.id)}", f"upperdir={self.fs_path(row.id)}"]
        elif len(parents) == 1:
            return [Mount("bind", self.fs_path(parents[0].id), "", ["ro", "rbind"])]
        options.append("lowerdir=" + ":".join(self.fs_path(p.id) for p in parents))
        return [Mount("overlay", "overlay", "", options)]

    # --- reading -----------------------------------------------------------------------

    def _must_get(self, tx: Tx, namespace: str, key: str) -> Row:
        row = tx.get(namespace, key)
        if row is None:
            raise NotFound(f"snapshot {key}: not found")
        return row

    def _info(self, tx: Tx, row: Row) -> SnapshotInfo:
        parent = tx.by_id(row.parent_id).key if row.parent_id is not None else ""
        return SnapshotInfo(row.key, parent, row.kind, dict(row.labels), row.created_at, row.updated_at)

    def mounts(self, namespace: str, key: str) -> list[Mount]:
        with self._db.transaction() as tx:
            row = self._must_get(tx, namespace, key)
            if row.kind == KIND_COMMITTED:
                raise FailedPrecondition(
                    f"snapshot {key} is committed: only active snapshots and views have mounts"
                )
            return self._mounts(row, tx.chain(row))

    def stat(self, namespace: str, key: str) -> SnapshotInfo:
        with self._db.transaction() as tx:
            return self._info(tx, self._must_get(tx, namespace, key))

    def walk(self, namespace: str) -> Iterator[SnapshotInfo]:
        """Every snapshot of NAMESPACE, ordered by key."""
        with self._db.transaction() as tx:
            rows = tx.rows(namespace)
            keys = {r.id: r.key for r in rows}
            infos = [
                SnapshotInfo(
                    r.key,
                    keys.get(r.parent_id, "") if r.parent_id is not None else "",
                    r.kind,
                    dict(r.labels),
                    r.created_at,
                    r.updated_at,
                )
                for r in rows
            ]
        yield from infos

    def namespaces(self) -> list[str]:
        """Namespaces that hold at least one snapshot."""
        with self._db.transaction() as tx:
            return tx.namespaces()

    def usage(self, namespace: str, key: str) -> Usage:
        """A committed layer's usage as measured at commit; an active one's measured now."""
        with self._db.transaction() as tx:
            row = self._must_get(tx, namespace, key)
        if row.kind == KIND_COMMITTED:
            return Usage(row.size, row.inodes)
        return disk_usage(self.fs_path(row.id))

    # --- changing ----------------------------------------------------------------------

    def commit(self, namespace: str, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """Turn the active snapshot KEY into the committed snapshot NAME (the same directory)."""
        if not name:
            raise InvalidArgument("committed snapshot name must not be empty")
        if labels is not None:
            labels = dict(labels)
            validate_labels(labels)
        with self._db.transaction() as tx:
            row = self._check_commit(tx, namespace, name, key)
        # measured outside the lock: a big layer takes a while to walk
        used = disk_usage(self.fs_path(row.id))
        with self._db.transaction() as tx:
            again = self._check_commit(tx, namespace, name, key)
            if again.id != row.id:
                raise NotFound(f"snapshot {key}: not found")
            new_labels = again.labels if labels is None else labels
            tx.commit(row.id, name, KIND_COMMITTED, new_labels, used.size, used.inodes, time.time_ns())

    def _check_commit(self, tx: Tx, namespace: str, name: str, key: str) -> Row:
        row = self._must_get(tx, namespace, key)
        if row.kind != KIND_ACTIVE:
            raise FailedPrecondition(
                f"snapshot {key} is {row.kind}, not active: only active snapshots can be committed"
            )
        if tx.get(namespace, name) is not None:
            raise AlreadyExists(f"snapshot {name}: already exists")
        return row

    def remove(self, namespace: str, key: str) -> None:
        """Remove KEY and its directory; a snapshot that is some other's parent stays."""
        with self._db.transaction() as tx:
            row = self._must_get(tx, namespace, key)
            if tx.has_children(row.id):
                raise FailedPrecondition(f"snapshot {key} has children: remove them first")
            tx.delete(row.id)
            doomed = os.path.join(self.root, "snapshots", f"rm-{row.id}")
            # renamed inside the transaction: if the rename fails the row stays
            try:
                os.rename(self._dir(row.id), doomed)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise FailedPrecondition(
                    f"snapshot {key}: cannot move its directory away: {e.strerror}"
                ) from None
        shutil.rmtree(doomed, ignore_errors=True)

    def update(self, namespace: str, info: SnapshotInfo, fieldpaths: list[str] | None = None) -> SnapshotInfo:
        """Update labels (the only mutable field): all of them, or `labels.<key>` one by one."""
        with self._db.transaction() as tx:
            row = self._must_get(tx, namespace, info.name)
            labels = dict(row.labels)
            if not fieldpaths:
                labels = dict(info.labels)
            for path in fieldpaths or []:
                if path == "labels":
                    labels = dict(info.labels)
                elif path.startswith("labels."):
                    name = path[len("labels.") :]
                    if name in info.labels:
                        labels[name] = info.labels[name]
                    else:
                        labels.pop(name, None)
                else:
                    raise InvalidArgument(
                        f"cannot update {path!r} of snapshot {info.name}: only labels can change"
                    )
            validate_labels(labels)
            tx.set_labels(row.id, labels, time.time_ns())
            return self._info(tx, tx.by_id(row.id))

    def cleanup(self) -> list[str]:
        """Remove directories no snapshot owns (left by a crash mid-create or mid-remove)."""
        base = os.path.join(self.root, "snapshots")
        with self._db.transaction() as tx:
            owned = {str(i) for i in tx.ids()}
            removed = []
            for name in sorted(os.listdir(base)):
                if name not in owned:
                    shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                    removed.append(name)
        return removed
