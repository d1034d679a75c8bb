"""Each layer's store on common/schema.py: the previous release's (unversioned) files are read and
written back in the current layout; a newer layout and a damaged file are refused naming the file,
left byte for byte, and (where a store holds many records) the other records still load."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest

from common import schema
from containerd.metadata import MetadataDB
from containerd.snapshots.storage import Storage
from dockerd.engine.container.state import ContainerStore
from runtime import state as runtime_state
from runtime.errors import PyruncError

# A record exactly as release 0.1.0 wrote it (no "Version").
RECORD_V1 = {
    "id": "", "name": "n", "created": "2026-12-01T00:00:00.000000000Z", "image_id": "sha256:00", "image_ref": "busybox",
    "config": {"Cmd": ["true"]}, "host_config": {}, "path": "true", "args": [], "state": {"Running": False},
    "restart_count": 0, "has_been_started": True, "manually_stopped": False, "removal_in_progress": False,
}  # fmt: skip


def _record(root: Path, cid: str, content: str) -> Path:
    (root / cid).mkdir(parents=True)
    path = root / cid / "config.v2.json"
    path.write_text(content)
    return path


def test_container_records(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = _record(tmp_path, "a" * 64, json.dumps(dict(RECORD_V1, id="a" * 64, name="old")))
    newer_text = json.dumps(dict(RECORD_V1, id="b" * 64, name="newer", Version=2, NewField=1))
    newer = _record(tmp_path, "b" * 64, newer_text)
    half_text = json.dumps(dict(RECORD_V1, id="c" * 64, name="half"))[:100]
    half = _record(tmp_path, "c" * 64, half_text)
    with caplog.at_level(logging.ERROR, logger="pydockerd.containers"):
        store = ContainerStore(str(tmp_path))
    assert [c.name for c in store.all()] == ["old"]
    # the old record, migrated: now in the current layout, every field kept
    written = json.loads(old.read_text())
    assert written.items() >= dict(RECORD_V1, id="a" * 64, name="old", Version=1).items()
    # the others: named in the log, untouched
    assert newer.read_text() == newer_text and half.read_text() == half_text
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{newer}: layout version 2 is newer than this build reads (up to 1)" in messages
    assert f"{half}: not a complete JSON document" in messages


def test_pyrunc_state(tmp_path: Path) -> None:
    cid = "ctr"
    (tmp_path / cid).mkdir()
    path = tmp_path / cid / "state.json"
    fields = {
        "id": cid, "bundle": "/b", "rootfs": "/b/rootfs", "pid": 1, "pid_start": 2, "created": "t",
        "config": {}, "cgroup": {}, "owner": "", "annotations": {},
    }  # fmt: skip
    path.write_text(json.dumps(fields))  # 0.1.0's: no Version, no rootfs_mount
    loaded = runtime_state.load(str(tmp_path), cid)
    assert (loaded.bundle, loaded.pid, loaded.rootfs_mount) == ("/b", 1, 0)
    loaded.save(str(tmp_path))
    assert json.loads(path.read_text())["Version"] == 1
    path.write_text(json.dumps(dict(fields, Version=3)))
    with pytest.raises(PyruncError, match=f"container ctr: {path}: layout version 3 is newer"):
        runtime_state.load(str(tmp_path), cid)
    path.write_text('{"id": "ctr", "bun')
    with pytest.raises(PyruncError, match=f"container ctr: {path}: not a complete JSON document"):
        runtime_state.load(str(tmp_path), cid)
    assert path.read_text() == '{"id": "ctr", "bun'


def _unversioned_copy(make: object, path: Path) -> None:
    """What 0.1.0 left: the same tables with user_version unset (the snapshotter's never set it)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=0")


def test_metadata_database(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    MetadataDB(path).close()
    _unversioned_copy(MetadataDB, path)
    MetadataDB(path).close()  # the baseline layout: read as version 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        conn.execute("PRAGMA user_version=2")
    with pytest.raises(schema.NewerLayout, match=f"{path}: layout version 2 is newer"):
        MetadataDB(path)
    garbage = b"\0garbage" * 1000
    path.write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(schema.DamagedState, match=f"{path}: not a usable SQLite database"):
        MetadataDB(path)
    assert path.read_bytes() == garbage


def test_snapshotter_database(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with sqlite3.connect(path) as conn:  # 0.1.0's table, unversioned, with a row
        conn.execute(
            "CREATE TABLE snapshots (id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL,"
            " key TEXT NOT NULL, kind TEXT NOT NULL, parent_id INTEGER REFERENCES snapshots(id),"
            " labels TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
            " size INTEGER NOT NULL DEFAULT 0, inodes INTEGER NOT NULL DEFAULT 0, UNIQUE (namespace, key))"
        )
        conn.execute(
            "INSERT INTO snapshots (namespace, key, kind, created_at, updated_at) VALUES ('ns', 'k', 'committed', 1, 1)"
        )
    storage = Storage(str(path))
    with storage.transaction() as tx:
        row = tx.get("ns", "k")
        assert row is not None and row.kind == "committed"
    storage.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        conn.execute("PRAGMA user_version=5")
    with pytest.raises(schema.NewerLayout, match=f"{path}: layout version 5 is newer"):
        Storage(str(path))
