"""The SQLite metadata DB: namespaced CRUD, update field paths, transactions."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containerd.content import digest_of
from containerd.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from containerd.metadata import (
    AnyProto,
    Container,
    Descriptor,
    Image,
    LeaseResource,
    MetadataDB,
    Namespace,
    Runtime,
)

SPEC = AnyProto("types.containerd.io/opencontainers/runtime-spec/1/Spec", b'{"ociVersion":"1.1.0"}')
RUNC = Runtime("io.containerd.runc.v2", AnyProto("containerd.runc.v1.Options", b"\x01\x02"))
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetadataDB]:
    ticks = itertools.count(1_000)
    database = MetadataDB(tmp_path / "meta.db", clock=lambda: next(ticks))
    yield database
    database.close()


# Any: each test sets the few fields it is about, of whichever record type; the record's
# constructor still checks the names.
def container(cid: str = "c1", **kw: Any) -> Container:
    fields: dict[str, Any] = {"id": cid, "runtime": RUNC, "spec": SPEC}
    fields.update(kw)
    return Container(**fields)


def image(name: str = "docker.io/library/busybox:latest", data: bytes = b"index", **kw: Any) -> Image:
    fields: dict[str, Any] = {"name": name, "target": Descriptor(INDEX, digest_of(data), len(data))}
    fields.update(kw)
    return Image(**fields)


# --- namespaces ------------------------------------------------------------


def test_namespace_crud(db: MetadataDB) -> None:
    with db.transaction() as tx:
        tx.namespaces.create("alpha", {"team": "a"})
        tx.namespaces.create("beta")
        with pytest.raises(AlreadyExists):
            tx.namespaces.create("alpha")
        for bad in ("", "has space", "a..b", "-lead", "x" * 77, "a/b"):
            with pytest.raises(InvalidArgument):
                tx.namespaces.create(bad)
    with db.transaction() as tx:
        assert tx.namespaces.get("alpha") == Namespace("alpha", {"team": "a"})
        assert [n.name for n in tx.namespaces.list()] == ["alpha", "beta"]
        with pytest.raises(NotFound):
            tx.namespaces.get("gamma")
        updated = tx.namespaces.update(Namespace("alpha", {"tier": "1"}), ["labels.tier"])
        assert updated.labels == {"team": "a", "tier": "1"}
        updated = tx.namespaces.update(Namespace("alpha", {}), ["labels.team"])
        assert updated.labels == {"tier": "1"}
        assert tx.namespaces.update(Namespace("alpha", {"x": "y"})).labels == {"x": "y"}
        with pytest.raises(InvalidArgument):
            tx.namespaces.update(Namespace("alpha", {}), ["name"])
        tx.namespaces.delete("beta")
        with pytest.raises(NotFound):
            tx.namespaces.delete("beta")


def test_namespace_delete_refused_unless_empty(db: MetadataDB) -> None:
    with db.transaction() as tx:
        tx.images("busy").create(image())
        tx.containers("busy").create(container())
        tx.content("busy").add(digest_of(b"index"), 5)
        tx.snapshots("busy").add("overlayfs", "layer-1")
        tx.leases("busy").create("lease-1")
    with db.transaction() as tx:
        with pytest.raises(FailedPrecondition) as err:
            tx.namespaces.delete("busy")
        assert (
            str(err.value)
            == "namespace busy must be empty, but it still has images, blobs, containers, snapshots"
        )
    with db.transaction() as tx:
        tx.images("busy").delete("docker.io/library/busybox:latest")
        tx.containers("busy").delete("c1")
        tx.content("busy").remove(digest_of(b"index"))
        tx.snapshots("busy").remove("overlayfs", "layer-1")
        with pytest.raises(FailedPrecondition, match="still has snapshots"):
            tx.namespaces.delete("busy", also_in_use=["snapshots"])
        tx.namespaces.delete("busy")  # leases go with it
    with db.transaction() as tx:
        assert tx.namespaces.list() == []
        assert tx.leases("busy").list() == []


def test_labels_are_validated(db: MetadataDB) -> None:
    with db.transaction() as tx:
        with pytest.raises(InvalidArgument, match="more than 4096"):
            tx.namespaces.create("big", {"k": "v" * 4096})
        with pytest.raises(InvalidArgument, match="empty"):
            tx.leases("ns").create("l", {"": "v"})
        ok = tx.namespaces.create("fits", {"k": "v" * 4095, "dropped": ""})
        assert set(ok.labels) == {"k"}


# --- containers --------------------------------------------------------------


def test_container_crud_and_namespace_isolation(db: MetadataDB) -> None:
    with db.transaction() as tx:
        a = tx.containers("ns-a").create(container("web", labels={"app": "a"}, image="busybox"))
        b = tx.containers("ns-b").create(container("web", labels={"app": "b"}))
        assert a.created_at == a.updated_at > 0
        with pytest.raises(AlreadyExists):
            tx.containers("ns-a").create(container("web"))
        # Creating a record created its namespace, as in containerd.
        assert [n.name for n in tx.namespaces.list()] == ["ns-a", "ns-b"]
    with db.transaction() as tx:
        got = tx.containers("ns-a").get("web")
        assert got == a
        assert got.runtime.options == AnyProto("containerd.runc.v1.Options", b"\x01\x02")
        assert got.spec == SPEC
        assert tx.containers("ns-b").get("web").labels == {"app": "b"} == b.labels
        with pytest.raises(NotFound):
            tx.containers("ns-c").get("web")
        tx.containers("ns-a").delete("web")
        with pytest.raises(NotFound):
            tx.containers("ns-a").delete("web")
        assert tx.containers("ns-b").get("web").id == "web"
        assert tx.containers("ns-a").list() == []


def test_container_validation(db: MetadataDB) -> None:
    with db.transaction() as tx:
        store = tx.containers("default")
        with pytest.raises(InvalidArgument, match="container id"):
            store.create(container("bad id"))
        with pytest.raises(InvalidArgument, match="Runtime.Name"):
            store.create(container(runtime=Runtime("")))
        with pytest.raises(InvalidArgument, match="Spec"):
            store.create(container(spec=None))
        with pytest.raises(InvalidArgument, match="Snapshotter must be set"):
            store.create(container(snapshot_key="k"))
        with pytest.raises(InvalidArgument, match="extension"):
            store.create(container(extensions={"": AnyProto("t")}))


def test_container_list_filters(db: MetadataDB) -> None:
    with db.transaction() as tx:
        store = tx.containers("default")
        store.create(container("one", image="busybox", labels={"tier": "web", "com.example/x": "1"}))
        store.create(container("two", image="alpine", labels={"tier": "db"}))
        store.create(container("three", image="busybox", runtime=Runtime("io.containerd.pyrunc.v1")))

        def ids(*fs: str) -> list[str]:
            return [c.id for c in store.list(fs)]

        assert ids() == ["one", "three", "two"]
        assert ids("image==busybox") == ["one", "three"]
        assert ids("labels.tier==web", "labels.tier==db") == ["one", "two"]
        assert ids('labels."com.example/x"') == ["one"]
        assert ids("image==busybox,labels.tier") == ["one"]
        assert ids("runtime.name~=pyrunc") == ["three"]
        assert ids("id!=two") == ["one", "three"]
        with pytest.raises(InvalidArgument):
            store.list(["id=="])


def test_container_update_field_paths(db: MetadataDB) -> None:
    with db.transaction() as tx:
        store = tx.containers("default")
        created = store.create(
            container(
                labels={"a": "1", "b": "2"},
                image="busybox",
                snapshotter="overlayfs",
                snapshot_key="c1-snap",
                extensions={"ext1": AnyProto("t1", b"1")},
            )
        )
        incoming = container(
            labels={"a": "10", "c": "3"},
            image="alpine",
            snapshotter="overlayfs",
            snapshot_key="c1-new",
            spec=AnyProto(SPEC.type_url, b"{}"),
            extensions={"ext2": AnyProto("t2", b"2")},
        )
        u = store.update(incoming, ["labels.a", "labels.b"])
        assert u.labels == {"a": "10"}  # labels.b absent from the update: removed
        assert (u.image, u.spec, u.snapshot_key) == ("busybox", SPEC, "c1-snap")
        assert u.created_at == created.created_at and u.updated_at > created.updated_at
        u = store.update(incoming, ["image", "extensions.ext2"])
        assert u.image == "alpine"
        assert u.extensions == {"ext1": AnyProto("t1", b"1"), "ext2": AnyProto("t2", b"2")}
        u = store.update(incoming, ["spec", "snapshotkey", "labels"])
        assert (u.spec, u.snapshot_key, u.labels) == (incoming.spec, "c1-new", {"a": "10", "c": "3"})
        with pytest.raises(InvalidArgument, match="cannot update 'runtime'"):
            store.update(incoming, ["runtime"])
        # No field paths: every updatable field is replaced; immutable ones must not differ.
        u = store.update(dataclasses.replace(incoming, labels={"only": "this"}))
        assert u.labels == {"only": "this"} and u.extensions == incoming.extensions
        with pytest.raises(InvalidArgument, match="Snapshotter field is immutable"):
            store.update(dataclasses.replace(incoming, snapshotter="native"))
        with pytest.raises(InvalidArgument, match="Runtime.Name field is immutable"):
            store.update(dataclasses.replace(incoming, runtime=Runtime("other")))
        with pytest.raises(NotFound):
            store.update(container("ghost"), ["labels"])
    with db.transaction() as tx:
        assert tx.containers("default").get("c1").labels == {"only": "this"}


# --- images -----------------------------------------------------------------


def test_image_crud_update_and_filters(db: MetadataDB) -> None:
    with db.transaction() as tx:
        store = tx.images("default")
        busybox = store.create(image(labels={"env": "prod"}))
        store.create(image("docker.io/library/alpine:3", b"alpine"))
        with pytest.raises(AlreadyExists):
            store.create(image())
        with pytest.raises(InvalidArgument, match="name"):
            store.create(image(""))
        with pytest.raises(InvalidArgument, match="Digest"):
            store.create(image("x", target=Descriptor(INDEX, "sha256:../../etc", 1)))
        with pytest.raises(InvalidArgument, match="Size"):
            store.create(image("x", target=Descriptor(INDEX, digest_of(b"x"), 0)))
        with pytest.raises(InvalidArgument, match="MediaType"):
            store.create(image("x", target=Descriptor("", digest_of(b"x"), 1)))

        assert [i.name for i in store.list(["name~=busybox"])] == [busybox.name]
        assert [i.name for i in store.list(["labels.env==prod"])] == [busybox.name]
        assert len(store.list([f"target.digest=={digest_of(b'alpine')}", "labels.env"])) == 2
        assert [i.name for i in store.list(["target.mediatype==" + INDEX])] == [
            "docker.io/library/alpine:3",
            busybox.name,
        ]

        new_target = Descriptor(
            MANIFEST, digest_of(b"manifest"), 8, {"org.opencontainers.image.ref.name": "x"}
        )
        u = store.update(image(labels={"env": "dev", "k": "v"}, target=new_target), ["labels.k"])
        assert u.labels == {"env": "prod", "k": "v"} and u.target == busybox.target
        u = store.update(image(target=new_target), ["annotations.org.opencontainers.image.ref.name"])
        assert u.target.digest == busybox.target.digest
        assert u.target.annotations == {"org.opencontainers.image.ref.name": "x"}
        u = store.update(image(target=new_target), ["target"])
        assert u.target == new_target and u.created_at == busybox.created_at
        u = store.update(image(labels={"z": "1"}, target=new_target))
        assert u.labels == {"z": "1"}
        with pytest.raises(InvalidArgument, match="cannot update 'size'"):
            store.update(image(), ["size"])
        with pytest.raises(NotFound):
            store.update(image("nope"))
        store.delete(busybox.name)
        with pytest.raises(NotFound):
            store.get(busybox.name)
        with pytest.raises(NotFound):
            tx.images("other").delete("docker.io/library/alpine:3")


# --- leases -------------------------------------------------------------------


def test_leases_and_resources(db: MetadataDB) -> None:
    digest = digest_of(b"layer")
    with db.transaction() as tx:
        leases = tx.leases("default")
        lease = leases.create("pull-1", {"containerd.io/gc.expire": "2100-01-01T00:00:00Z"})
        leases.create("pull-2")
        with pytest.raises(AlreadyExists):
            leases.create("pull-1")
        assert [x.id for x in leases.list(['labels."containerd.io/gc.expire"'])] == ["pull-1"]
        assert [x.id for x in leases.list(["id~=2$"])] == ["pull-2"]
        leases.add_resource("pull-1", LeaseResource(digest, "content"))
        leases.add_resource("pull-1", LeaseResource(digest, "content"))  # idempotent
        leases.add_resource("pull-1", LeaseResource("sha256-chain", "snapshots/overlayfs"))
        leases.add_resource("pull-1", LeaseResource("upload-ref", "ingests"))
        with pytest.raises(InvalidArgument):
            leases.add_resource("pull-1", LeaseResource("not-a-digest", "content"))
        with pytest.raises(InvalidArgument, match="unsupported lease resource type"):
            leases.add_resource("pull-1", LeaseResource("x", "images"))
        with pytest.raises(InvalidArgument):
            leases.add_resource("pull-1", LeaseResource("x", "snapshots/"))
        with pytest.raises(NotFound):
            leases.add_resource("nope", LeaseResource(digest, "content"))
        assert leases.list_resources("pull-1") == [
            LeaseResource(digest, "content"),
            LeaseResource("upload-ref", "ingests"),
            LeaseResource("sha256-chain", "snapshots/overlayfs"),
        ]
        leases.delete_resource("pull-1", LeaseResource("upload-ref", "ingests"))
        assert len(leases.list_resources("pull-1")) == 2
        assert leases.get("pull-1") == lease
        # Leases are namespaced.
        with pytest.raises(NotFound):
            tx.leases("other").get("pull-1")
        leases.delete("pull-1")
        with pytest.raises(NotFound):
            leases.list_resources("pull-1")
        with pytest.raises(NotFound):
            leases.delete("pull-1")
        # The resources went with the lease.
        assert tx.conn.execute("SELECT COUNT(*) FROM lease_resources").fetchone()[0] == 0


# --- content records -----------------------------------------------------------


def test_content_records(db: MetadataDB) -> None:
    d1, d2 = digest_of(b"one"), digest_of(b"two")
    with db.transaction() as tx:
        records = tx.content("default")
        records.add(d1, 3, {"containerd.io/gc.ref.content.l.0": d2})
        records.add(d2, 3)
        with pytest.raises(AlreadyExists):
            records.add(d1, 3)
        with pytest.raises(InvalidArgument):
            records.add("sha256:../../etc", 3)
        info = records.get(d1)
        assert (info.size, info.labels) == (3, {"containerd.io/gc.ref.content.l.0": d2})
        assert [i.digest for i in records.list(['labels."containerd.io/gc.ref.content.l.0"'])] == [d1]
        assert [i.digest for i in records.list(["size==3"])] == sorted([d1, d2])
        u = records.update(dataclasses.replace(info, labels={"x": "y"}), ["labels.x"])
        assert (
            u.labels == {"containerd.io/gc.ref.content.l.0": d2, "x": "y"} and u.updated_at > info.updated_at
        )
        assert records.update(dataclasses.replace(info, labels={})).labels == {}
        with pytest.raises(InvalidArgument, match="cannot update 'size'"):
            records.update(info, ["size"])
        with pytest.raises(NotFound):
            tx.content("other").get(d1)
        records.remove(d1)
        with pytest.raises(NotFound):
            records.remove(d1)


# --- transactions ---------------------------------------------------------------


class Boom(Exception):
    pass


def test_transaction_rolls_back_on_error(db: MetadataDB) -> None:
    with pytest.raises(Boom), db.transaction() as tx:
        tx.containers("default").create(container("c1"))
        tx.images("default").create(image())
        tx.leases("default").create("l1")
        raise Boom()
    with db.transaction() as tx:
        assert tx.namespaces.list() == []
        assert tx.containers("default").list() == []
        assert tx.images("default").list() == []
        assert tx.leases("default").list() == []
    # A store error half-way through rolls back the earlier writes of the block too.
    with pytest.raises(AlreadyExists), db.transaction() as tx:
        tx.containers("default").create(container("c2"))
        tx.containers("default").create(container("c2"))
    with db.transaction() as tx:
        assert tx.containers("default").list() == []


def test_nested_transaction_is_a_savepoint(db: MetadataDB) -> None:
    with db.transaction() as tx:
        tx.containers("default").create(container("outer"))
        with pytest.raises(Boom), db.transaction() as inner:
            inner.containers("default").create(container("inner"))
            raise Boom()
        tx.containers("default").create(container("after"))
    with db.transaction() as tx:
        assert [c.id for c in tx.containers("default").list()] == ["after", "outer"]


def test_records_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    with MetadataDB(path) as first, first.transaction() as tx:
        tx.containers("default").create(container("persisted", labels={"k": "v"}))
    with MetadataDB(path) as second, second.transaction() as tx:
        assert tx.containers("default").get("persisted").labels == {"k": "v"}


def test_threads_share_the_db(db: MetadataDB) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                with db.transaction() as tx:
                    tx.containers("default").create(container(f"c-{n}-{i}"))
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.transaction() as tx:
        assert len(tx.containers("default").list()) == 80
