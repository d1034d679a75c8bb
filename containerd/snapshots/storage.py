"""The snapshotter's own metadata: one SQLite table of snapshots.

Each row is one snapshot directory (ROOT/snapshots/<id>). Keys are unique per namespace;
a parent is a row id, so a chain is followed without names and a committed layer is
shared by every child that names it. Every call runs in one transaction (BEGIN
IMMEDIATE, so two processes on the same file serialise instead of failing half-way).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from common.schemadb import DbSteps, open_database

# The layout (common/schemadb.py): release 0.1.0's, which set no user_version, is 1.
SCHEMA_VERSION = 1
MIGRATIONS: DbSteps = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    parent_id INTEGER REFERENCES snapshots(id),
    labels TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    inodes INTEGER NOT NULL DEFAULT 0,
    UNIQUE (namespace, key)
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots (parent_id);
"""

_COLUMNS = "id, namespace, key, kind, parent_id, labels, created_at, updated_at, size, inodes"


@dataclass
class Row:
    id: int
    namespace: str
    key: str
    kind: str
    parent_id: int | None
    labels: dict[str, str]
    created_at: int
    updated_at: int
    size: int
    inodes: int


def _row(values: tuple[Any, ...]) -> Row:
    id_, ns, key, kind, parent_id, labels, created, updated, size, inodes = values
    return Row(id_, ns, key, kind, parent_id, json.loads(labels), created, updated, size, inodes)


class Tx:
    """Queries inside one open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def get(self, namespace: str, key: str) -> Row | None:
        cur = self._c.execute(
            f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? AND key = ?", (namespace, key)
        )
        found = cur.fetchone()
        return _row(found) if found else None

    def by_id(self, id_: int) -> Row:
        found = self._c.execute(f"SELECT {_COLUMNS} FROM snapshots WHERE id = ?", (id_,)).fetchone()
        if found is None:
            raise LookupError(f"snapshot row {id_} vanished")
        return _row(found)

    def chain(self, row: Row) -> list[Row]:
        """The parents of ROW, nearest first."""
        out = []
        parent = row.parent_id
        while parent is not None:
            p = self.by_id(parent)
            out.append(p)
            parent = p.parent_id
        return out

    def insert(
        self, namespace: str, key: str, kind: str, parent_id: int | None, labels: dict[str, str], now: int
    ) -> int:
        cur = self._c.execute(
            "INSERT INTO snapshots (namespace, key, kind, parent_id, labels, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (namespace, key, kind, parent_id, json.dumps(labels, sort_keys=True), now, now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def has_children(self, id_: int) -> bool:
        return (
            self._c.execute("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1", (id_,)).fetchone()
            is not None
        )

    def commit(
        self, id_: int, name: str, kind: str, labels: dict[str, str], size: int, inodes: int, now: int
    ) -> None:
        self._c.execute(
            "UPDATE snapshots SET key = ?, kind = ?, labels = ?, size = ?, inodes = ?, updated_at = ? WHERE id = ?",
            (name, kind, json.dumps(labels, sort_keys=True), size, inodes, now, id_),
        )

    def set_labels(self, id_: int, labels: dict[str, str], now: int) -> None:
        self._c.execute(
            "UPDATE snapshots SET labels = ?, updated_at = ? WHERE id = ?",
            (json.dumps(labels, sort_keys=True), now, id_),
        )

    def delete(self, id_: int) -> None:
        self._c.execute("DELETE FROM snapshots WHERE id = ?", (id_,))

    def rows(self, namespace: str) -> list[Row]:
        cur = self._c.execute(
            f"SELECT {_COLUMNS} FROM snapshots WHERE namespace = ? ORDER BY key", (namespace,)
        )
        return [_row(r) for r in cur.fetchall()]

    def ids(self) -> set[int]:
        return {r[0] for r in self._c.execute("SELECT id FROM snapshots").fetchall()}

    def namespaces(self) -> list[str]:
        return [r[0] for r in self._c.execute("SELECT DISTINCT namespace FROM snapshots ORDER BY namespace")]


class Storage:
    """One SQLite file; a lock makes the connection safe for the daemon's worker threads."""

    def __init__(self, path: str) -> None:
        # The layout is checked (an older one migrated) in one transaction; a newer or damaged
        # file is refused as it is (common/schemadb.py).
        self._conn = open_database(
            path, current=SCHEMA_VERSION, schema=_SCHEMA, steps=MIGRATIONS,
            pragmas=("journal_mode = WAL", "foreign_keys = ON"),
        )  # fmt: skip
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
