"""Versioned SQLite stores (the rules are `common/schema.py`'s): the layout version is
`PRAGMA user_version`, 0 (never set) on a database that already has tables is the baseline
layout, and the check, the migration steps and the new version are one transaction, so a crash
mid-migration leaves the old layout whole.

    conn = open_database(path, current=2, schema=CREATE_STATEMENTS, steps={1: add_column},
                         pragmas=("journal_mode=WAL", "synchronous=FULL"))

Not for pyrunc or the shim (sqlite3 is a heavy import); the daemons' stores use it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence

from common.schema import BASELINE, DamagedState, LayoutError, NewerLayout

DbSteps = Mapping[int, Callable[[sqlite3.Connection], None]]


def statements(script: str) -> list[str]:
    """A schema script's statements (they hold no ';' of their own), to run inside a transaction:
    executescript() would commit first."""
    return [s.strip() for s in script.split(";") if s.strip()]


def open_database(
    path: str | os.PathLike[str],
    *,
    current: int,
    schema: str,
    steps: DbSteps | None = None,
    pragmas: Sequence[str] = (),
) -> sqlite3.Connection:
    """A connection (autocommit mode, shareable between threads) to the database at PATH in layout
    CURRENT: created with SCHEMA when new, migrated by STEPS when older. NewerLayout for a newer
    database, DamagedState for a file that is not a usable database; the file is left as it was."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        # Checked before the pragmas too, which may rewrite the header (journal_mode=WAL does):
        # a newer database is left byte for byte.
        _refuse_newer(conn, path, current)
        for pragma in pragmas:
            conn.execute(f"PRAGMA {pragma}")
        _migrate(conn, path, current, schema, steps or {})
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DamagedState(path, f"not a usable SQLite database: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _refuse_newer(conn: sqlite3.Connection, path: str | os.PathLike[str], current: int) -> None:
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > current:
        raise NewerLayout(path, found, current)


def _migrate(
    conn: sqlite3.Connection, path: str | os.PathLike[str], current: int, schema: str, steps: DbSteps
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        _refuse_newer(conn, path, current)  # again, now that no other writer can change it
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        fresh = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if fresh:
            for statement in statements(schema):
                conn.execute(statement)
        else:
            for version in range(found or BASELINE, current):
                step = steps.get(version)
                if step is None:
                    raise LayoutError(
                        path, f"no migration from layout version {version} (this build reads {current})"
                    )
                step(conn)
        conn.execute(f"PRAGMA user_version={int(current)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
