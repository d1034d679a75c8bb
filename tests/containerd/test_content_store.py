"""The content store on a real filesystem: round trips, verification, resumable and locked ingests."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from containerd.content import ContentStore, digest_of
from containerd.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def blob_names(store: ContentStore) -> list[str]:
    return sorted(os.listdir(store.blobs))


def ingest_names(store: ContentStore) -> list[str]:
    return sorted(os.listdir(store.ingests))


def write_blob(store: ContentStore, data: bytes, ref: str = "ref-1") -> str:
    with store.writer(ref, total=len(data), expected=digest_of(data)) as w:
        w.write(data)
        return w.commit(len(data), digest_of(data))


def test_round_trip(store: ContentStore) -> None:
    data = b"hello content store\n" * 1000
    with store.writer("upload-1", total=len(data)) as w:
        assert w.offset == 0
        w.write(data[:100])
        w.write(data[100:], offset=100)
        assert w.status().offset == len(data)
        assert w.status().total == len(data)
        digest = w.commit(len(data), digest_of(data))
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.exists(digest)
    info = store.info(digest)
    assert (info.digest, info.size) == (digest, len(data))
    assert info.created_at > 0
    assert store.read_all(digest) == data
    assert [i.digest for i in store.walk()] == [digest]
    # The blob is read-only on disk, named by its hex, and the ingest is gone.
    path = store.blob_path(digest)
    assert path.read_bytes() == data
    assert (path.stat().st_mode & 0o777) == 0o444
    assert ingest_names(store) == []
    store.delete(digest)
    assert not store.exists(digest)
    with pytest.raises(NotFound):
        store.info(digest)
    with pytest.raises(NotFound):
        store.delete(digest)


def test_read_with_offset_and_size(store: ContentStore) -> None:
    data = bytes(range(256)) * 16 * 1024  # 4 MiB: several read chunks
    digest = write_blob(store, data)
    chunks = list(store.read(digest))
    assert len(chunks) >= 4
    assert b"".join(chunks) == data
    assert b"".join(store.read(digest, offset=1000, size=10)) == data[1000:1010]
    assert b"".join(store.read(digest, offset=len(data) - 5)) == data[-5:]
    assert b"".join(store.read(digest, offset=len(data))) == b""
    assert b"".join(store.read(digest, offset=10, size=len(data) * 2)) == data[10:]
    with pytest.raises(InvalidArgument):
        store.read(digest, offset=len(data) + 1)
    with pytest.raises(InvalidArgument):
        store.read(digest, offset=-1)
    with pytest.raises(NotFound):
        store.read(digest_of(b"absent"))


def test_wrong_digest_is_rejected_and_nothing_kept(store: ContentStore) -> None:
    with store.writer("bad-digest") as w:
        w.write(b"some bytes")
        with pytest.raises(FailedPrecondition, match="does not match"):
            w.commit(expected=digest_of(b"other bytes"))
        assert w.closed
    assert blob_names(store) == []
    assert ingest_names(store) == []
    with pytest.raises(NotFound):
        store.status("bad-digest")


def test_expected_digest_given_at_open_is_enforced(store: ContentStore) -> None:
    with store.writer("bad-digest-2", expected=digest_of(b"right")) as w:
        w.write(b"wrong")
        with pytest.raises(FailedPrecondition):
            w.commit()
    assert blob_names(store) == []
    assert ingest_names(store) == []


@pytest.mark.parametrize("size", [9, 11])
def test_wrong_size_is_rejected_and_nothing_kept(store: ContentStore, size: int) -> None:
    with store.writer("bad-size") as w:
        w.write(b"0123456789")
        with pytest.raises(FailedPrecondition, match="10 bytes written, expected"):
            w.commit(size=size)
    assert blob_names(store) == []
    assert ingest_names(store) == []


def test_short_write_against_declared_total_is_rejected(store: ContentStore) -> None:
    with store.writer("short", total=20) as w:
        w.write(b"0123456789")
        with pytest.raises(FailedPrecondition):
            w.commit()
    assert blob_names(store) == []


BAD_DIGESTS = [
    "sha256:../../etc",
    "sha256:../../../../../../tmp/x",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 64 + "/..",
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "../etc/passwd",
    "",
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_bad_digest_strings_are_invalid_and_touch_nothing(store: ContentStore, bad: str) -> None:
    before = sorted(p.relative_to(store.root.parent) for p in store.root.parent.rglob("*"))
    with pytest.raises(InvalidArgument):
        store.info(bad)
    with pytest.raises(InvalidArgument):
        store.read(bad)
    with pytest.raises(InvalidArgument):
        store.delete(bad)
    with pytest.raises(InvalidArgument):
        store.exists(bad)
    if bad:  # "" as an expected digest means "no expectation", as in containerd
        with pytest.raises(InvalidArgument):
            store.writer("r", expected=bad)
        with store.writer("bad-commit") as w:
            w.write(b"data")
            with pytest.raises(InvalidArgument):
                w.commit(expected=bad)
    after = sorted(p.relative_to(store.root.parent) for p in store.root.parent.rglob("*"))
    assert after == before
    assert blob_names(store) == []


def test_commit_of_existing_content(store: ContentStore) -> None:
    digest = write_blob(store, b"shared bytes", ref="first")
    with pytest.raises(AlreadyExists):
        store.writer("second", expected=digest)
    with store.writer("third") as w:
        w.write(b"shared bytes")
        with pytest.raises(AlreadyExists):
            w.commit()
        assert w.digest() == digest
    assert blob_names(store) == [digest.split(":")[1]]
    assert ingest_names(store) == []


def test_resume_after_reopening_the_store(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    first = ContentStore(tmp_path / "c")
    w = first.writer("resumable", total=len(data), expected=digest_of(data))
    w.write(data[:123_456])
    w.close()
    status = first.status("resumable")
    assert (status.offset, status.total, status.expected) == (123_456, len(data), digest_of(data))

    second = ContentStore(tmp_path / "c")  # a restarted daemon
    assert [s.ref for s in second.list_statuses()] == ["resumable"]
    with second.writer("resumable") as w2:
        assert w2.offset == 123_456
        assert (w2.total, w2.expected) == (len(data), digest_of(data))
        with pytest.raises(InvalidArgument, match="offset 0"):
            w2.write(b"x", offset=0)
        w2.write(data[123_456:], offset=123_456)
        assert w2.commit() == digest_of(data)
    assert second.read_all(digest_of(data)) == data
    assert second.list_statuses() == []


def test_resume_refuses_a_different_total(store: ContentStore) -> None:
    with store.writer("t", total=10) as w:
        w.write(b"abc")
    with pytest.raises(FailedPrecondition, match="total 11"):
        store.writer("t", total=11)
    with store.writer("t", total=10) as w:
        assert w.offset == 3


def test_truncate_restarts_the_ingest(store: ContentStore) -> None:
    with store.writer("trunc") as w:
        w.write(b"garbage")
        w.truncate(0)
        with pytest.raises(InvalidArgument):
            w.truncate(3)
        w.write(b"good")
        assert w.commit() == digest_of(b"good")


def test_concurrent_writer_on_same_ref_is_refused(store: ContentStore) -> None:
    w1 = store.writer("busy")
    w1.write(b"part")
    with pytest.raises(Conflict, match="busy locked"):
        store.writer("busy")
    with pytest.raises(Conflict):
        store.abort("busy")
    assert store.ingest_locked("busy")
    w1.close()
    assert not store.ingest_locked("busy")
    with store.writer("busy") as w2:
        assert w2.offset == 4
    store.abort("busy")
    assert ingest_names(store) == []
    with pytest.raises(NotFound):
        store.abort("busy")
    with pytest.raises(InvalidArgument):
        store.writer("")


def test_writer_in_another_process_locks_the_ref_until_it_dies(store: ContentStore) -> None:
    """An ingest survives its writer's death (kill -9) and resumes where it stopped."""
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from containerd.content import ContentStore
        w = ContentStore({str(store.root)!r}).writer("crossproc", total=8)
        w.write(b"1234")
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(Conflict):
            store.writer("crossproc")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with store.writer("crossproc") as w:
        assert w.offset == 4
        w.write(b"5678")
        assert w.commit() == digest_of(b"12345678")


def test_statuses_and_abort(store: ContentStore) -> None:
    for ref in ("a", "b"):
        with store.writer(ref, total=5) as w:
            w.write(b"xy")
    statuses = {s.ref: s for s in store.list_statuses()}
    assert set(statuses) == {"a", "b"}
    assert statuses["a"].offset == 2 and statuses["a"].total == 5
    assert statuses["a"].started_at <= statuses["a"].updated_at
    store.abort("a")
    assert [s.ref for s in store.list_statuses()] == ["b"]
    with pytest.raises(NotFound):
        store.status("a")
    # A closed writer cannot write any more.
    w = store.writer("b")
    w.close()
    with pytest.raises(FailedPrecondition):
        w.write(b"z")
