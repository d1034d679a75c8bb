"""Namespaces: create, get, list, update labels, delete (refused unless empty)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from containerd.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from containerd.metadata.records import Namespace
from containerd.metadata.validate import (
    dump_labels,
    load_labels,
    update_mapping,
    validate_identifier,
    validate_labels,
)

if TYPE_CHECKING:
    from containerd.metadata.db import Transaction

# What keeps a namespace from being deleted, with the words containerd uses for them.
_CONTENTS = (
    ("images", "images"),
    ("content", "blobs"),
    ("containers", "containers"),
    ("snapshots", "snapshots"),
)


class NamespaceStore:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.conn = tx.conn

    def create(self, name: str, labels: Mapping[str, str] | None = None) -> Namespace:
        validate_identifier("namespace", name)
        clean = validate_labels(labels or {})
        now = self.tx.now()
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO namespaces (name, labels, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (name, dump_labels(clean), now, now),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"namespace {name}: already exists")
        return Namespace(name, clean)

    def get(self, name: str) -> Namespace:
        row = self.conn.execute("SELECT labels FROM namespaces WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"namespace {name}: not found")
        return Namespace(name, load_labels(row[0]))

    def exists(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM namespaces WHERE name = ?", (name,)).fetchone() is not None

    def list(self) -> list[Namespace]:
        rows = self.conn.execute("SELECT name, labels FROM namespaces ORDER BY name").fetchall()
        return [Namespace(name, load_labels(labels)) for name, labels in rows]

    def update(self, namespace: Namespace, fieldpaths: Sequence[str] = ()) -> Namespace:
        """Update labels: no field paths replaces them all; `labels` or `labels.<key>` otherwise."""
        current = self.get(namespace.name)
        incoming = validate_labels(namespace.labels)
        labels, others = update_mapping(current.labels, incoming, fieldpaths or ["labels"], "labels")
        if others:
            raise InvalidArgument(f"cannot update {others[0]!r} field on namespace {namespace.name}")
        labels = validate_labels(labels)
        self.conn.execute(
            "UPDATE namespaces SET labels = ?, updated_at = ? WHERE name = ?",
            (dump_labels(labels), self.tx.now(), namespace.name),
        )
        return Namespace(namespace.name, labels)

    def set_label(self, name: str, key: str, value: str) -> Namespace:
        return self.update(Namespace(name, {key: value}), [f"labels.{key}"])

    def delete(self, name: str, also_in_use: Sequence[str] = ()) -> None:
        """Delete an empty namespace (its leases go with it).

        `also_in_use` lets the caller add resource kinds it found elsewhere (e.g. a
        snapshotter that namespaces its own keys) that must also block the delete.
        """
        self.get(name)
        in_use = [
            word
            for table, word in _CONTENTS
            if self.conn.execute(f"SELECT 1 FROM {table} WHERE namespace = ? LIMIT 1", (name,)).fetchone()
        ]
        in_use += [kind for kind in also_in_use if kind not in in_use]
        if in_use:
            raise FailedPrecondition(f"namespace {name} must be empty, but it still has {', '.join(in_use)}")
        self.conn.execute("DELETE FROM leases WHERE namespace = ?", (name,))
        self.conn.execute("DELETE FROM namespaces WHERE name = ?", (name,))
