"""Garbage collection over a real content store and metadata DB.

Snapshots come from FakeSnapshotter, a small in-memory stand-in for the overlay
snapshotter that implements the two calls the collector uses (walk, remove) and, like
the real one, refuses to remove a snapshot that still has children.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from containerd import gc
from containerd.content import ContentStore, digest_of
from containerd.errors import FailedPrecondition, NotFound
from containerd.metadata import (
    AnyProto,
    Container,
    Descriptor,
    Image,
    LeaseResource,
    MetadataDB,
    NamespacedContent,
    Runtime,
)

INDEX = "application/vnd.oci.image.index.v1+json"
HOUR = 3600 * 10**9


@dataclass(frozen=True)
class FakeSnapshot:
    name: str
    parent: str = ""
    labels: dict[str, str] = field(default_factory=dict)


class FakeSnapshotter:
    def __init__(self, *snapshots: FakeSnapshot, refuse: tuple[str, ...] = ()) -> None:
        self.snapshots = {s.name: s for s in snapshots}
        self.removed: list[str] = []
        self.refuse = refuse

    def walk(self) -> Iterator[FakeSnapshot]:
        return iter(list(self.snapshots.values()))

    def remove(self, key: str) -> None:
        if key not in self.snapshots:
            raise NotFound(f"snapshot {key}: not found")
        if key in self.refuse or any(s.parent == key for s in self.snapshots.values()):
            raise FailedPrecondition(f"snapshot {key}: cannot remove (in use or has children)")
        del self.snapshots[key]
        self.removed.append(key)


@dataclass
class Env:
    db: MetadataDB
    store: ContentStore

    def ns(self, name: str = "default") -> NamespacedContent:
        return NamespacedContent(self.db, self.store, name)

    def blobs(self) -> set[str]:
        return {f"sha256:{name}" for name in os.listdir(self.store.blobs)}

    def records(self) -> set[tuple[str, str]]:
        with self.db.transaction() as tx:
            return set(tx.conn.execute("SELECT namespace, digest FROM content").fetchall())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    db = MetadataDB(tmp_path / "meta.db")
    yield Env(db, ContentStore(tmp_path / "content"))
    db.close()


def put(ns: NamespacedContent, data: bytes, labels: dict[str, str] | None = None) -> str:
    with ns.writer(f"w-{digest_of(data)[7:19]}") as w:
        w.write(data)
        return w.commit(labels=labels)


def unpacked_image(env: Env, namespace: str = "default", tag: str = "busybox") -> dict[str, str]:
    """An index -> manifest -> config + 2 layers, labelled the way containerd's unpacker does,
    with the config naming the top of its snapshot chain."""
    ns = env.ns(namespace)
    layer0, layer1 = put(ns, b"layer-0"), put(ns, b"layer-1")
    config = put(ns, b"config", {"containerd.io/gc.ref.snapshot.overlayfs": "chain-1"})
    manifest = put(
        ns,
        b"manifest",
        {
            "containerd.io/gc.ref.content.config": config,
            "containerd.io/gc.ref.content.l.0": layer0,
            "containerd.io/gc.ref.content.l.1": layer1,
        },
    )
    index = put(ns, b"index", {"containerd.io/gc.ref.content.m.0": manifest})
    with env.db.transaction() as tx:
        tx.images(namespace).create(Image(tag, Descriptor(INDEX, index, 5)))
    return {"index": index, "manifest": manifest, "config": config, "layer0": layer0, "layer1": layer1}


def chain() -> FakeSnapshotter:
    return FakeSnapshotter(FakeSnapshot("chain-0"), FakeSnapshot("chain-1", "chain-0"))


def test_unreferenced_content_goes_and_image_chains_stay(env: Env) -> None:
    parts = unpacked_image(env)
    junk = put(env.ns(), b"junk")
    snaps = chain()
    snaps.snapshots["orphan"] = FakeSnapshot("orphan", "chain-1")
    result = gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert result.content == [junk]
    assert result.content_records == [("default", junk)]
    assert result.snapshots == [("overlayfs", "orphan")]
    assert result.errors == []
    assert env.blobs() == set(parts.values())
    assert set(snaps.snapshots) == {"chain-0", "chain-1"}
    # Nothing left to collect: a second run removes nothing.
    assert not gc.collect(env.db, env.store, {"overlayfs": snaps}).removed_anything


def test_deleting_the_image_frees_its_whole_chain_children_first(env: Env) -> None:
    unpacked_image(env)
    snaps = chain()
    with env.db.transaction() as tx:
        tx.images("default").delete("busybox")
    result = gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert env.blobs() == set() and env.records() == set()
    assert len(result.content) == 5
    assert snaps.removed == ["chain-1", "chain-0"]
    assert result.errors == []


def test_dry_run_reports_and_touches_nothing(env: Env) -> None:
    parts = unpacked_image(env)
    snaps = chain()
    with env.db.transaction() as tx:
        tx.images("default").delete("busybox")
    before = (env.blobs(), env.records())
    result = gc.collect(env.db, env.store, {"overlayfs": snaps}, dry_run=True)
    assert result.dry_run
    assert set(result.content) == set(parts.values())
    assert {d for _, d in result.content_records} == set(parts.values())
    assert set(result.snapshots) == {("overlayfs", "chain-0"), ("overlayfs", "chain-1")}
    assert (env.blobs(), env.records()) == before
    assert set(snaps.snapshots) == {"chain-0", "chain-1"} and snaps.removed == []


def test_containers_keep_their_snapshot_and_its_parents(env: Env) -> None:
    snaps = FakeSnapshotter(
        FakeSnapshot("base"),
        FakeSnapshot("top", "base"),
        FakeSnapshot("ctr-rw", "top"),
        FakeSnapshot("stray-rw", "top"),
    )
    with env.db.transaction() as tx:
        tx.containers("default").create(
            Container(
                "web",
                Runtime("io.containerd.runc.v2"),
                AnyProto("spec", b"{}"),
                snapshotter="overlayfs",
                snapshot_key="ctr-rw",
            )
        )
    result = gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert set(snaps.snapshots) == {"base", "top", "ctr-rw"}
    assert result.snapshots == [("overlayfs", "stray-rw")] and result.errors == []
    with env.db.transaction() as tx:
        tx.containers("default").delete("web")
    gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert snaps.snapshots == {}
    assert snaps.removed == ["stray-rw", "ctr-rw", "top", "base"]


def test_leases_protect_work_in_progress(env: Env) -> None:
    ns = env.ns()
    with env.db.transaction() as tx:
        tx.leases("default").create("pull")
    with ns.writer("half-done", lease="pull") as w:
        w.write(b"partial")
    with ns.writer("done", lease="pull") as w:
        w.write(b"manifest")
        manifest = w.commit(labels={"containerd.io/gc.ref.content.l.0": digest_of(b"layer")})
    layer = put(ns, b"layer")
    with env.db.transaction() as tx:
        tx.leases("default").add_resource("pull", LeaseResource("extract-1", "snapshots/overlayfs"))
    snaps = FakeSnapshotter(FakeSnapshot("base"), FakeSnapshot("extract-1", "base"), FakeSnapshot("other"))
    later = time.time_ns() + 2 * HOUR  # past the ingest grace period
    result = gc.collect(env.db, env.store, {"overlayfs": snaps}, now_ns=later)
    assert env.blobs() == {manifest, layer}  # the layer is reached through the manifest's label
    assert set(snaps.snapshots) == {"base", "extract-1"}
    assert [s.ref for s in ns.list_statuses()] == ["half-done"]
    assert result.ingests == []

    # Releasing the lease releases everything it held.
    with env.db.transaction() as tx:
        tx.leases("default").delete("pull")
    result = gc.collect(env.db, env.store, {"overlayfs": snaps}, now_ns=later)
    assert env.blobs() == set() and snaps.snapshots == {}
    assert result.ingests == ["default/half-done"]
    assert ns.list_statuses() == []


def test_expired_lease_protects_nothing_and_is_removed(env: Env) -> None:
    ns = env.ns()
    with env.db.transaction() as tx:
        tx.leases("default").create("old", {"containerd.io/gc.expire": "2001-01-01T00:00:00Z"})
        tx.leases("default").create("fresh", {"containerd.io/gc.expire": "2999-01-01T00:00:00.5+02:00"})
    with ns.writer("a", lease="old") as w:
        w.write(b"old bytes")
        old = w.commit()
    with ns.writer("b", lease="fresh") as w:
        w.write(b"fresh bytes")
        fresh = w.commit()
    result = gc.collect(env.db, env.store)
    assert result.leases == [("default", "old")]
    assert env.blobs() == {fresh}
    assert old in result.content
    with env.db.transaction() as tx:
        assert [x.id for x in tx.leases("default").list()] == ["fresh"]


def test_flat_lease_keeps_only_what_it_holds(env: Env) -> None:
    ns = env.ns()
    layer = put(ns, b"layer")
    manifest = put(ns, b"manifest", {"containerd.io/gc.ref.content.l.0": layer})
    snaps = FakeSnapshotter(
        FakeSnapshot("parent"), FakeSnapshot("child", "parent", {"containerd.io/gc.ref.content": layer})
    )
    with env.db.transaction() as tx:
        leases = tx.leases("default")
        leases.create("flat", {"containerd.io/gc.flat": "1"})
        leases.add_resource("flat", LeaseResource(manifest, "content"))
        leases.add_resource("flat", LeaseResource("child", "snapshots/overlayfs"))
    gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert env.blobs() == {manifest}  # not the layer its label names
    assert set(snaps.snapshots) == {"parent", "child"}  # a snapshot keeps its parents regardless


def test_gc_root_label_and_snapshot_labels(env: Env) -> None:
    ns = env.ns()
    pinned = put(ns, b"pinned", {"containerd.io/gc.root": "2024-01-01T00:00:00Z"})
    via_snapshot = put(ns, b"referenced by a snapshot")
    snaps = FakeSnapshotter(
        FakeSnapshot(
            "rooted", labels={"containerd.io/gc.root": "x", "containerd.io/gc.ref.content.x": via_snapshot}
        ),
    )
    gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert env.blobs() == {pinned, via_snapshot}
    assert set(snaps.snapshots) == {"rooted"}


def test_blob_shared_by_namespaces_lives_while_any_references_it(env: Env) -> None:
    parts = unpacked_image(env, "ns-a")
    extra = env.ns("ns-b")
    put(extra, b"layer-0")  # the same bytes, recorded in ns-b, unreferenced there
    gc.collect(env.db, env.store, {"overlayfs": chain()})
    assert ("ns-b", parts["layer0"]) not in env.records()
    assert ("ns-a", parts["layer0"]) in env.records()
    assert parts["layer0"] in env.blobs()
    # References do not cross namespaces: an image in ns-b naming ns-a's index keeps no
    # ns-a record (there is none in ns-b to follow) but does keep the blob itself.
    with env.db.transaction() as tx:
        tx.images("ns-b").create(Image("alias", Descriptor(INDEX, parts["index"], 5)))
        tx.images("ns-a").delete("busybox")
    gc.collect(env.db, env.store, {"overlayfs": chain()})
    assert env.blobs() == {parts["index"]}
    assert env.records() == set()


def test_ingest_policy(env: Env) -> None:
    ns = env.ns()
    with ns.writer("stale") as w:
        w.write(b"s")
    live = ns.writer("live")
    live.write(b"l")
    with ns.writer("recent") as w:
        w.write(b"r")
    with ns.writer("held") as w:
        w.write(b"h")
    with env.db.transaction() as tx:
        # A lease may name the ingest by the store's own ref ("<namespace>/<ref>") too.
        tx.leases("default").create("l")
        tx.leases("default").add_resource("l", LeaseResource("default/held", "ingests"))
    try:
        now = time.time_ns()
        assert gc.collect(env.db, env.store, now_ns=now).ingests == []  # all within the grace period
        dry = gc.collect(env.db, env.store, now_ns=now + 2 * HOUR, dry_run=True)
        assert sorted(dry.ingests) == ["default/recent", "default/stale"]  # not the locked one
        os.utime(env.store._ingest_dir("default/recent") / "data", ns=(now + 2 * HOUR, now + 2 * HOUR))
        result = gc.collect(env.db, env.store, now_ns=now + 2 * HOUR)
        assert result.ingests == ["default/stale"]
        assert sorted(s.ref for s in ns.list_statuses()) == ["held", "live", "recent"]
    finally:
        live.close()


def test_snapshot_records_map_namespaced_keys(env: Env) -> None:
    """With a snapshotter that is not namespaced, DB records name each key's backend snapshot."""
    snaps = FakeSnapshotter(
        FakeSnapshot("ns-a/1/base"),
        FakeSnapshot("ns-a/2/rw", "ns-a/1/base"),
        FakeSnapshot("ns-b/3/rw", "ns-a/1/base"),
    )
    with env.db.transaction() as tx:
        tx.snapshots("ns-a").add("overlayfs", "base", "ns-a/1/base")
        tx.snapshots("ns-a").add("overlayfs", "rw", "ns-a/2/rw")
        tx.snapshots("ns-b").add("overlayfs", "rw", "ns-b/3/rw")
        tx.containers("ns-a").create(
            Container("c", Runtime("r"), AnyProto("s"), snapshotter="overlayfs", snapshot_key="rw")
        )
    result = gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert result.snapshots == [("overlayfs", "ns-b/3/rw")]
    assert result.snapshot_records == [("ns-b", "overlayfs", "rw")]
    assert set(snaps.snapshots) == {"ns-a/1/base", "ns-a/2/rw"}
    with env.db.transaction() as tx:
        assert [r.key for r in tx.snapshots("ns-a").list()] == ["base", "rw"]
        assert tx.snapshots("ns-b").list() == []


def test_failed_snapshot_removal_is_reported_and_spares_its_parents(env: Env) -> None:
    snaps = FakeSnapshotter(
        FakeSnapshot("p"), FakeSnapshot("busy", "p"), FakeSnapshot("free"), refuse=("busy",)
    )
    result = gc.collect(env.db, env.store, {"overlayfs": snaps})
    assert result.snapshots == [("overlayfs", "free")]
    assert len(result.errors) == 1 and "busy" in result.errors[0]
    assert set(snaps.snapshots) == {"p", "busy"}


def test_helpers() -> None:
    digests, snapshots = gc.references(
        {
            "containerd.io/gc.ref.content": digest_of(b"a"),
            "containerd.io/gc.ref.content.l.0": digest_of(b"b"),
            "containerd.io/gc.ref.contentish": digest_of(b"c"),
            "containerd.io/gc.ref.content.bad": "not-a-digest",
            "containerd.io/gc.ref.snapshot.overlayfs": "chain",
            "containerd.io/gc.ref.snapshot.native/1": "other",
        }
    )
    assert sorted(digests) == sorted([digest_of(b"a"), digest_of(b"b")])
    assert sorted(snapshots) == [("native", "other"), ("overlayfs", "chain")]
    now = time.time_ns()
    assert gc.lease_expired({"containerd.io/gc.expire": "2000-01-01T00:00:00Z"}, now)
    assert not gc.lease_expired({"containerd.io/gc.expire": "2999-01-01T00:00:00Z"}, now)
    assert not gc.lease_expired({"containerd.io/gc.expire": "garbage"}, now)
    assert not gc.lease_expired({}, now)


def test_snapshotter_that_namespaces_itself(env: Env) -> None:
    """Names "<namespace>/<key>" (a namespaced snapshotter's all-namespace view): the namer
    resolves keys, the owner scopes the references found on snapshot labels."""
    shared = put(env.ns("ns-a"), b"shared")
    put(env.ns("ns-b"), b"shared")
    snaps = FakeSnapshotter(
        FakeSnapshot("ns-a/base"),
        FakeSnapshot(
            "ns-a/rw",
            "ns-a/base",
            {"containerd.io/gc.ref.snapshot.overlayfs": "extra", "containerd.io/gc.ref.content": shared},
        ),
        FakeSnapshot("ns-a/extra"),
        FakeSnapshot("ns-b/rw"),
    )
    with env.db.transaction() as tx:
        tx.containers("ns-a").create(
            Container("c", Runtime("r"), AnyProto("s"), snapshotter="overlayfs", snapshot_key="rw")
        )
    result = gc.collect(
        env.db,
        env.store,
        {"overlayfs": snaps},
        snapshot_name=gc.prefix_namer,
        snapshot_owner=gc.prefix_owner,
    )
    assert result.snapshots == [("overlayfs", "ns-b/rw")]
    assert set(snaps.snapshots) == {"ns-a/base", "ns-a/rw", "ns-a/extra"}
    assert env.records() == {("ns-a", shared)}
    assert env.blobs() == {shared}
