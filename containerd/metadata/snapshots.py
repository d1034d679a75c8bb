"""Per-namespace snapshot records: which namespace owns which snapshot key.

For a snapshotter that is not namespaced itself, these records map a namespace's key to
the snapshotter's own name for it (`backend_key`); the collector uses them to resolve
references and removes the records of the snapshots it removes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from containerd import filters
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.base import NamespacedStore
from containerd.metadata.records import SnapshotRecord
from containerd.metadata.validate import dump_labels, load_labels, update_mapping, validate_labels

_COLUMNS = "snapshotter, key, backend_key, labels, created_at, updated_at"


class SnapshotRecords(NamespacedStore):
    def add(
        self, snapshotter: str, key: str, backend_key: str = "", labels: Mapping[str, str] | None = None
    ) -> SnapshotRecord:
        if not snapshotter or not key:
            raise InvalidArgument("snapshot records need a snapshotter and a key")
        self.ensure_namespace()
        now = self.tx.now()
        record = SnapshotRecord(snapshotter, key, backend_key, validate_labels(labels or {}), now, now)
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO snapshots (namespace, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.namespace, *_row(record)),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"snapshot {key} ({snapshotter}): already exists")
        return record

    def get(self, snapshotter: str, key: str) -> SnapshotRecord:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (self.namespace, snapshotter, key),
        ).fetchone()
        if row is None:
            raise NotFound(f"snapshot {key} ({snapshotter}): not found")
        return _record(row)

    def list(self, snapshotter: str = "", filter_strings: Iterable[str] = ()) -> list[SnapshotRecord]:
        matcher = filters.parse_all(filter_strings)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? AND (? = '' OR snapshotter = ?)"
            " ORDER BY snapshotter, key",
            (self.namespace, snapshotter, snapshotter),
        ).fetchall()
        found = [_record(row) for row in rows]
        return [r for r in found if matcher.match(_fields(r))]

    def update(self, record: SnapshotRecord, fieldpaths: Sequence[str] = ()) -> SnapshotRecord:
        current = self.get(record.snapshotter, record.key)
        labels, others = update_mapping(current.labels, record.labels, fieldpaths or ["labels"], "labels")
        if others:
            raise InvalidArgument(f"cannot update {others[0]!r} field on snapshot {record.key}")
        updated = dataclasses.replace(current, labels=validate_labels(labels), updated_at=self.tx.now())
        self.conn.execute(
            "UPDATE snapshots SET labels = ?, updated_at = ? WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (
                dump_labels(updated.labels),
                updated.updated_at,
                self.namespace,
                updated.snapshotter,
                updated.key,
            ),
        )
        return updated

    def remove(self, snapshotter: str, key: str) -> None:
        cur = self.conn.execute(
            "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?",
            (self.namespace, snapshotter, key),
        )
        if cur.rowcount == 0:
            raise NotFound(f"snapshot {key} ({snapshotter}): not found")


def _fields(r: SnapshotRecord) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] in ("name", "key"):
            return r.key
        if path[0] == "snapshotter":
            return r.snapshotter
        if path[0] == "labels":
            return filters.map_field(r.labels, path[1:])
        return None

    return field


def _row(r: SnapshotRecord) -> tuple[object, ...]:
    return (r.snapshotter, r.key, r.backend_key, dump_labels(r.labels), r.created_at, r.updated_at)


def _record(row: Any) -> SnapshotRecord:
    snapshotter, key, backend_key, labels, created, updated = row
    return SnapshotRecord(snapshotter, key, backend_key, load_labels(labels), created, updated)
