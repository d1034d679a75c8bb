"""common/schema.py and common/schemadb.py: versioned on-disk state. An unversioned store is the
baseline layout (1), an older one is migrated (a database in the transaction that checks it), a
newer one and a damaged one are refused naming the file, and nothing is changed or deleted."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from common import fastjson, schema, schemadb


def _rename_field(doc: dict[str, Any]) -> None:
    doc["name"] = doc.pop("Name")


def test_unversioned_document_is_the_baseline(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"Name": "a"}')
    doc, migrated = schema.load(path, json.loads, 1)
    assert doc == {"Name": "a", "Version": 1} and migrated  # stamped: the caller writes it back
    doc, migrated = schema.load(path, fastjson.loads, 1)
    assert not schema.upgrade(path, doc, 1)  # already current: nothing to write


def test_older_document_is_migrated_step_by_step(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"Name": "a"}')
    seen: list[int] = []

    def second(doc: dict[str, Any]) -> None:
        seen.append(2)
        doc["extra"] = True

    doc, migrated = schema.load(path, json.loads, 3, {1: _rename_field, 2: second})
    assert migrated and seen == [2]
    assert doc == {"name": "a", "extra": True, "Version": 3}
    assert list(schema.stamped(doc, 3)) == ["Version", "name", "extra"]
    with pytest.raises(schema.LayoutError, match="no migration from layout version 1"):
        schema.load(path, json.loads, 2)
    assert path.read_text() == '{"Name": "a"}'  # migrating is the caller's write, never load's


@pytest.mark.parametrize(
    ("content", "error", "wording"),
    [
        ('{"Version": 7, "x": 1}', schema.NewerLayout, "layout version 7 is newer than this build reads"),
        ('{"Version": 1, "x": ', schema.DamagedState, "not a complete JSON document"),
        ("", schema.DamagedState, "empty file"),
        ("[1]", schema.DamagedState, "not a JSON object"),
        ('{"Version": "2"}', schema.DamagedState, "invalid layout version"),
    ],
    ids=["newer", "half-written", "empty", "not-an-object", "bad-version"],
)
def test_refused_documents_name_the_file_and_stay(
    tmp_path: Path, content: str, error: type[schema.LayoutError], wording: str
) -> None:
    path = tmp_path / "config.v2.json"
    path.write_text(content)
    with pytest.raises(error) as caught:
        schema.load(path, json.loads, 1)
    assert str(caught.value).startswith(f"{path}: ") and wording in str(caught.value)
    assert path.read_text() == content


def test_directory_marker(tmp_path: Path) -> None:
    assert schema.dir_version(tmp_path, fastjson.loads, 1) == 1  # no marker: the baseline
    schema.mark_dir(tmp_path, 1)
    assert json.loads((tmp_path / schema.MARKER).read_text()) == {"Version": 1}
    assert schema.dir_version(tmp_path, fastjson.loads, 1) == 1
    (tmp_path / schema.MARKER).write_text('{"Version": 2}')
    with pytest.raises(schema.NewerLayout, match=str(tmp_path / schema.MARKER)):
        schema.dir_version(tmp_path, fastjson.loads, 1)


# --- SQLite ----------------------------------------------------------------------------------

SCHEMA = "CREATE TABLE t (a TEXT NOT NULL);\nCREATE INDEX t_a ON t (a);"


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_new_database_gets_the_schema_and_version(tmp_path: Path) -> None:
    path = tmp_path / "db"
    schemadb.open_database(path, current=2, schema=SCHEMA).close()
    assert _user_version(path) == 2
    conn = schemadb.open_database(path, current=2, schema=SCHEMA)  # again: nothing to do
    conn.execute("INSERT INTO t VALUES ('x')")
    conn.close()


def test_unversioned_database_is_migrated_in_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a TEXT NOT NULL)")
        conn.execute("INSERT INTO t VALUES ('kept')")

    def add_b(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE t ADD COLUMN b INTEGER NOT NULL DEFAULT 0")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE t SET b = 5")
        raise RuntimeError("the step failed half-way")

    with pytest.raises(RuntimeError):
        schemadb.open_database(path, current=3, schema=SCHEMA, steps={1: add_b, 2: broken})
    # rolled back whole: no column b, still unversioned
    with sqlite3.connect(path) as conn:
        assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["a"]
    assert _user_version(path) == 0

    conn = schemadb.open_database(path, current=2, schema=SCHEMA, steps={1: add_b})
    assert conn.execute("SELECT a, b FROM t").fetchall() == [("kept", 0)]
    conn.close()
    assert _user_version(path) == 2


def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a TEXT)")
        conn.execute("PRAGMA user_version=9")
    before = path.read_bytes()
    with pytest.raises(schema.NewerLayout) as caught:
        schemadb.open_database(path, current=1, schema=SCHEMA, pragmas=("journal_mode=WAL",))
    assert str(caught.value).startswith(f"{path}: layout version 9 is newer")
    assert _user_version(path) == 9 and path.read_bytes() == before


def test_corrupt_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    garbage = b"this is no SQLite database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(schema.DamagedState) as caught:
        schemadb.open_database(path, current=1, schema=SCHEMA, pragmas=("journal_mode=WAL",))
    assert str(caught.value).startswith(f"{path}: not a usable SQLite database")
    assert path.read_bytes() == garbage
