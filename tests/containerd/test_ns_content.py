"""The content store as a namespace sees it: records, labels, sharing, leases, ingests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerd.content import ContentInfo, ContentStore, digest_of
from containerd.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound
from containerd.metadata import LeaseResource, MetadataDB, NamespacedContent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[MetadataDB, ContentStore]]:
    db = MetadataDB(tmp_path / "meta.db")
    yield db, ContentStore(tmp_path / "content")
    db.close()


def put(ns: NamespacedContent, data: bytes, labels: dict[str, str] | None = None, ref: str = "") -> str:
    with ns.writer(ref or f"ref-{digest_of(data)[7:19]}", total=len(data), expected=digest_of(data)) as w:
        w.write(data)
        return w.commit(len(data), digest_of(data), labels)


def test_commit_records_blob_in_namespace_only(env: tuple[MetadataDB, ContentStore]) -> None:
    db, store = env
    a, b = NamespacedContent(db, store, "ns-a"), NamespacedContent(db, store, "ns-b")
    digest = put(a, b"payload", {"kind": "test"})
    info = a.info(digest)
    assert (info.size, info.labels) == (7, {"kind": "test"})
    assert b"".join(a.read(digest, offset=3, size=2)) == b"lo"
    with pytest.raises(NotFound):
        b.info(digest)
    with pytest.raises(NotFound):
        b.read(digest)
    assert b.walk() == []
    # Same bytes from another namespace: shared on disk, recorded at writer open.
    with pytest.raises(AlreadyExists):
        b.writer("upload", total=7, expected=digest)
    assert b.info(digest).size == 7
    assert os.listdir(store.blobs) == [digest[7:]]
    # Delete drops the record only; the blob waits for garbage collection.
    a.delete(digest)
    with pytest.raises(NotFound):
        a.info(digest)
    assert store.exists(digest)
    with pytest.raises(AlreadyExists):
        b.writer("again", expected=digest)


def test_commit_without_expected_into_namespace_that_has_it(env: tuple[MetadataDB, ContentStore]) -> None:
    db, store = env
    ns = NamespacedContent(db, store, "default")
    digest = put(ns, b"twice")
    with ns.writer("second") as w:
        w.write(b"twice")
        with pytest.raises(AlreadyExists):
            w.commit()
    assert ns.list_statuses() == []
    assert ns.info(digest).size == 5


def test_walk_update_with_label_filters(env: tuple[MetadataDB, ContentStore]) -> None:
    db, store = env
    ns = NamespacedContent(db, store, "default")
    d1 = put(ns, b"layer-1", {"containerd.io/uncompressed": digest_of(b"u1"), "tier": "base"})
    d2 = put(ns, b"layer-2", {"tier": "app"})
    d3 = put(ns, b"config")

    def digests(*fs: str) -> list[str]:
        return [i.digest for i in ns.walk(fs)]

    assert digests() == sorted([d1, d2, d3])
    assert digests("labels.tier==base") == [d1]
    assert digests("labels.tier") == sorted([d1, d2])
    assert digests('labels."containerd.io/uncompressed"') == [d1]
    assert digests("labels.tier==app", f"digest=={d3}") == sorted([d2, d3])
    assert digests("labels.tier!=base") == sorted([d2, d3])
    updated = ns.update(ContentInfo(d3, 0, 0, 0, {"tier": "conf"}), ["labels.tier"])
    assert updated.labels == {"tier": "conf"} and updated.size == len(b"config")
    assert digests("labels.tier~=^(conf|app)$") == sorted([d2, d3])
    with pytest.raises(InvalidArgument):
        ns.update(ContentInfo(d3, 0, 0, 0, {}), ["digest"])
    with pytest.raises(NotFound):
        ns.update(ContentInfo(digest_of(b"absent"), 0, 0, 0, {}))


def test_ingests_are_namespaced_and_resumable_across_reopen(tmp_path: Path) -> None:
    data = b"0123456789" * 1000
    db = MetadataDB(tmp_path / "meta.db")
    store = ContentStore(tmp_path / "content")
    a, b = NamespacedContent(db, store, "ns-a"), NamespacedContent(db, store, "ns-b")
    wa = a.writer("same-ref", total=len(data))
    wa.write(data[:4000])
    with b.writer("same-ref") as wb:  # no conflict: a different namespace's ingest
        wb.write(b"other")
    with pytest.raises(Conflict):
        a.writer("same-ref")
    wa.close()
    assert [(s.ref, s.offset) for s in a.list_statuses()] == [("same-ref", 4000)]
    assert [(s.ref, s.offset) for s in b.list_statuses()] == [("same-ref", 5)]
    assert a.list_statuses(["ref==nope"]) == []
    assert a.status("same-ref").total == len(data)
    db.close()

    # A restarted daemon: fresh objects on the same files.
    db2 = MetadataDB(tmp_path / "meta.db")
    a2 = NamespacedContent(db2, ContentStore(tmp_path / "content"), "ns-a")
    with a2.writer("same-ref") as w:
        assert w.offset == 4000 and w.status().ref == "same-ref"
        w.write(data[4000:])
        digest = w.commit(expected=digest_of(data), labels={"resumed": "yes"})
    assert a2.info(digest).labels == {"resumed": "yes"}
    assert b"".join(a2.read(digest)) == data
    assert a2.list_statuses() == []
    with pytest.raises(NotFound):
        a2.status("same-ref")
    with pytest.raises(NotFound):
        a2.abort("same-ref")
    db2.close()


def test_failed_commit_keeps_nothing(env: tuple[MetadataDB, ContentStore]) -> None:
    db, store = env
    ns = NamespacedContent(db, store, "default")
    with ns.writer("bad") as w:
        w.write(b"abc")
        with pytest.raises(FailedPrecondition):
            w.commit(expected=digest_of(b"xyz"))
    with ns.writer("bad-size") as w:
        w.write(b"abc")
        with pytest.raises(FailedPrecondition):
            w.commit(size=4)
    assert os.listdir(store.blobs) == []
    assert ns.walk() == [] and ns.list_statuses() == []
    with pytest.raises(InvalidArgument):
        ns.writer("r", expected="sha256:../../etc")
    with pytest.raises(InvalidArgument):
        ns.info("sha256:../../etc")


def test_writer_under_a_lease(env: tuple[MetadataDB, ContentStore]) -> None:
    db, store = env
    ns = NamespacedContent(db, store, "default")
    with db.transaction() as tx:
        tx.leases("default").create("import-1")
    with pytest.raises(NotFound):
        ns.writer("x", lease="no-such-lease")
    w = ns.writer("blob-ref", lease="import-1")
    w.write(b"leased")
    with db.transaction() as tx:
        assert tx.leases("default").list_resources("import-1") == [LeaseResource("blob-ref", "ingests")]
    digest = w.commit()
    with db.transaction() as tx:
        assert tx.leases("default").list_resources("import-1") == [LeaseResource(digest, "content")]
    # Sharing a blob under a lease puts it in the lease too.
    other = NamespacedContent(db, store, "other")
    with db.transaction() as tx:
        tx.leases("other").create("import-2")
    with pytest.raises(AlreadyExists):
        other.writer("r", expected=digest, lease="import-2")
    with db.transaction() as tx:
        assert tx.leases("other").list_resources("import-2") == [LeaseResource(digest, "content")]
