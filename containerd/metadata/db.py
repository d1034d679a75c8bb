"""The metadata DB: one SQLite file, every record namespaced like containerd's bolt store.

containerd keeps v1/<namespace>/{images,containers,content,snapshots,leases}; here each
kind is a table whose primary key starts with the namespace. All access goes through
`transaction()`: one write transaction at a time (BEGIN IMMEDIATE, guarded by a lock so
the gRPC server's threads can share the connection), nested use becomes a savepoint,
and any exception rolls back everything done inside the block.

    db = MetadataDB(path)
    with db.transaction() as tx:
        tx.containers("default").create(container)
        tx.leases("default").add_resource(lease_id, LeaseResource(digest, "content"))
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from common.schemadb import DbSteps, open_database
from containerd.metadata.containers import ContainerStore
from containerd.metadata.content import ContentRecords
from containerd.metadata.images import ImageStore
from containerd.metadata.leases import LeaseStore
from containerd.metadata.namespaces import NamespaceStore
from containerd.metadata.snapshots import SnapshotRecords

# The layout (common/schemadb.py): release 0.1.0's is 1; a change adds a step to MIGRATIONS.
SCHEMA_VERSION = 1
MIGRATIONS: DbSteps = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    id TEXT NOT NULL,
    labels TEXT NOT NULL,
    image TEXT NOT NULL,
    runtime_name TEXT NOT NULL,
    runtime_options_type_url TEXT,
    runtime_options BLOB,
    spec_type_url TEXT,
    spec BLOB,
    snapshotter TEXT NOT NULL,
    snapshot_key TEXT NOT NULL,
    extensions TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS images (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    media_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    annotations TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS leases (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    id TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS lease_resources (
    namespace TEXT NOT NULL,
    lease TEXT NOT NULL,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, type, id),
    FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS content (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    labels TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, digest)
);
CREATE TABLE IF NOT EXISTS snapshots (
    namespace TEXT NOT NULL REFERENCES namespaces(name),
    snapshotter TEXT NOT NULL,
    key TEXT NOT NULL,
    backend_key TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, snapshotter, key)
);
CREATE INDEX IF NOT EXISTS content_by_digest ON content(digest);
"""


class Transaction:
    """Handle to the open transaction; hands out the per-kind stores."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], int]) -> None:
        self.conn = conn
        self.clock = clock

    def now(self) -> int:
        return self.clock()

    @property
    def namespaces(self) -> NamespaceStore:
        return NamespaceStore(self)

    def containers(self, namespace: str) -> ContainerStore:
        return ContainerStore(self, namespace)

    def images(self, namespace: str) -> ImageStore:
        return ImageStore(self, namespace)

    def leases(self, namespace: str) -> LeaseStore:
        return LeaseStore(self, namespace)

    def content(self, namespace: str) -> ContentRecords:
        return ContentRecords(self, namespace)

    def snapshots(self, namespace: str) -> SnapshotRecords:
        return SnapshotRecords(self, namespace)


class MetadataDB:
    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], int] = time.time_ns) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        # Autocommit mode: transactions are begun and ended explicitly below. The layout is checked
        # (and an older one migrated) in one transaction; a newer or damaged file is refused as is.
        self._conn = open_database(
            self.path, current=SCHEMA_VERSION, schema=_SCHEMA, steps=MIGRATIONS,
            pragmas=("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"),
        )  # fmt: skip
        self._lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            depth = self._depth
            savepoint = f"sp{depth}"
            self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield Transaction(self._conn, self._clock)
            except BaseException:
                if depth == 0:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO {savepoint}")
                    self._conn.execute(f"RELEASE {savepoint}")
                raise
            else:
                self._conn.execute("COMMIT" if depth == 0 else f"RELEASE {savepoint}")
            finally:
                self._depth = depth

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> MetadataDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
