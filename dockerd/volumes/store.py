"""The volume service's metadata: which driver holds each volume, its labels and options, and
which containers reference it.

One SQLite file, `<data-root>/volumes/metadata.db` (moby keeps a bolt file of the same name and
role). SQLite in its default rollback-journal mode with `synchronous=FULL` makes every
transaction atomic and durable: a kill -9 at any point leaves either the old or the new state.
References are stored in the same transaction as the volume they point at, so a prune racing a
container create never sees a fresh volume without its reference.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from common import schemadb
from common.schema import LayoutError
from dockerd.engine.errors import EngineError

# The layout's version, `PRAGMA user_version` (common/schemadb.py: migrated when older, a newer
# one refused); no migration yet.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    labels TEXT,          -- JSON object, or NULL when created without labels (Docker shows null)
    options TEXT          -- JSON object, or NULL when created without driver options
);
CREATE TABLE IF NOT EXISTS refs (
    volume TEXT NOT NULL,
    ref TEXT NOT NULL,    -- a container id
    PRIMARY KEY (volume, ref)
);
"""


class StoreVersionError(EngineError):
    """The metadata is of a newer pydockerd, or damaged (the daemon says so, naming the file, and
    does not start; the file is left as it is)."""


@dataclass(frozen=True)
class VolumeMeta:
    name: str
    driver: str
    labels: dict[str, str] | None
    options: dict[str, str] | None


def _dump(value: Mapping[str, str] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), sort_keys=True)


def _load(text: str | None) -> dict[str, str] | None:
    return None if text is None else {str(k): str(v) for k, v in json.loads(text).items()}


class MetadataStore:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            self._db = schemadb.open_database(
                path, current=SCHEMA_VERSION, schema=_SCHEMA, pragmas=("synchronous=FULL",)
            )
        except LayoutError as exc:
            raise StoreVersionError(str(exc)) from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- volumes --------------------------------------------------------------------------

    def put(self, meta: VolumeMeta, ref: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO volumes (name, driver, labels, options) VALUES (?, ?, ?, ?)",
                (meta.name, meta.driver, _dump(meta.labels), _dump(meta.options)),
            )
            if ref:
                db.execute("INSERT OR IGNORE INTO refs (volume, ref) VALUES (?, ?)", (meta.name, ref))

    def get(self, name: str) -> VolumeMeta | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, driver, labels, options FROM volumes WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else VolumeMeta(row[0], row[1], _load(row[2]), _load(row[3]))

    def all(self) -> list[VolumeMeta]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, driver, labels, options FROM volumes ORDER BY name"
            ).fetchall()
        return [VolumeMeta(r[0], r[1], _load(r[2]), _load(r[3])) for r in rows]

    def delete(self, name: str) -> None:
        """Forget the volume and every reference to it."""
        with self._tx() as db:
            db.execute("DELETE FROM volumes WHERE name = ?", (name,))
            db.execute("DELETE FROM refs WHERE volume = ?", (name,))

    # --- references -----------------------------------------------------------------------

    def add_ref(self, name: str, ref: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO refs (volume, ref) VALUES (?, ?)", (name, ref))

    def remove_ref(self, name: str, ref: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM refs WHERE volume = ? AND ref = ?", (name, ref))

    def remove_refs_of(self, ref: str) -> list[str]:
        """Drop every reference REF holds; the names of the volumes it held."""
        with self._tx() as db:
            names = [
                r[0] for r in db.execute("SELECT volume FROM refs WHERE ref = ? ORDER BY volume", (ref,))
            ]
            db.execute("DELETE FROM refs WHERE ref = ?", (ref,))
        return names

    def refs(self, name: str) -> list[str]:
        with self._lock:
            return [
                r[0] for r in self._db.execute("SELECT ref FROM refs WHERE volume = ? ORDER BY ref", (name,))
            ]

    def ref_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT volume, COUNT(*) FROM refs GROUP BY volume").fetchall())

    def replace_refs(self, refs: Iterable[tuple[str, str]]) -> None:
        """Make the reference table exactly REFS ((volume, ref) pairs), in one transaction."""
        with self._tx() as db:
            db.execute("DELETE FROM refs")
            db.executemany("INSERT OR IGNORE INTO refs (volume, ref) VALUES (?, ?)", list(refs))
