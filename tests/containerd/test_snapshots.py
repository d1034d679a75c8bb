"""The overlayfs snapshotter on a real filesystem, with real overlay and bind mounts."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest

from containerd.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from containerd.snapshots import (
    KIND_ACTIVE,
    KIND_COMMITTED,
    KIND_VIEW,
    Mount,
    OverlaySnapshotter,
    SnapshotInfo,
)
from containerd.snapshots.views import AllNamespaces, Namespaced, flat_name
from tests.containerd.conftest import mounted

NS = "default"


def fs_of(sn: OverlaySnapshotter, mounts: list[Mount]) -> str:
    """The directory a snapshot writes into: a bind's source or an overlay's upperdir."""
    m = mounts[0]
    if m.type == "bind":
        return m.source
    return next(o.split("=", 1)[1] for o in m.options if o.startswith("upperdir="))


def commit_layer(sn: OverlaySnapshotter, name: str, parent: str, files: dict[str, bytes], tmp: Path) -> None:
    """Prepare on PARENT, write FILES through the real mount, commit as NAME."""
    key = f"extract-{name}"
    mounts = sn.prepare(NS, key, parent)
    with mounted(mounts, tmp / f"mnt-{name}") as root:
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    sn.commit(NS, name, key)


def test_prepare_without_parent_is_a_writable_bind_of_fs(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    mounts = sn.prepare(NS, "k1")
    assert len(mounts) == 1
    m = mounts[0]
    assert (m.type, m.options) == ("bind", ["rw", "rbind"])
    assert m.source.startswith(sn.root + "/snapshots/") and m.source.endswith("/fs")
    assert os.path.isdir(os.path.join(os.path.dirname(m.source), "work"))
    with mounted(mounts, tmp_path / "mnt") as root:
        (root / "hello").write_text("hi")
    assert Path(m.source, "hello").read_text() == "hi"
    info = sn.stat(NS, "k1")
    assert (info.name, info.parent, info.kind) == ("k1", "", KIND_ACTIVE)


def test_overlay_chain_mounts_like_containerd(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    commit_layer(sn, "base", "", {"a": b"base-a", "keep": b"k"}, tmp_path)
    commit_layer(sn, "mid", "base", {"a": b"mid-a", "b": b"mid-b"}, tmp_path)
    base_fs = fs_of(sn, sn.view(NS, "v-base", "base"))
    v_mid = sn.view(NS, "v-mid", "mid")

    mounts = sn.prepare(NS, "c1", "mid")
    assert len(mounts) == 1 and mounts[0].type == "overlay" and mounts[0].source == "overlay"
    opts = mounts[0].options
    names = [o.split("=", 1)[0] for o in opts]
    assert names[-3:] == ["workdir", "upperdir", "lowerdir"]
    assert ("index=off" in opts) == os.path.exists("/sys/module/overlay/parameters/index")
    lowers = next(o for o in opts if o.startswith("lowerdir=")).split("=", 1)[1].split(":")
    assert lowers[1] == base_fs  # nearest parent first
    assert len(lowers) == 2

    with mounted(mounts, tmp_path / "c1") as root:
        assert (root / "a").read_bytes() == b"mid-a"
        assert (root / "keep").read_bytes() == b"k"
        (root / "new").write_text("n")
        os.unlink(root / "b")
    upper = fs_of(sn, mounts)
    assert Path(upper, "new").read_text() == "n"
    st = os.lstat(os.path.join(upper, "b"))  # the deletion is an overlay whiteout in the upperdir
    assert (st.st_mode & 0o170000, st.st_rdev) == (0o020000, 0)
    # the committed layer below never changed
    assert Path(lowers[0], "b").read_bytes() == b"mid-b"

    # a view of a chain: overlay with lowerdirs only, read-only
    assert v_mid[0].type == "overlay"
    assert not any(o.startswith(("upperdir=", "workdir=")) for o in v_mid[0].options)
    with mounted(v_mid, tmp_path / "v-mid") as root:
        assert (root / "b").read_bytes() == b"mid-b"
        with pytest.raises(OSError) as err:
            (root / "x").write_text("no")
        assert err.value.errno == errno.EROFS


def test_view_of_single_committed_is_a_readonly_bind_of_the_parent(
    sn: OverlaySnapshotter, tmp_path: Path
) -> None:
    commit_layer(sn, "base", "", {"f": b"1"}, tmp_path)
    mounts = sn.view(NS, "v", "base")
    assert [(m.type, m.options) for m in mounts] == [("bind", ["ro", "rbind"])]
    assert sn.stat(NS, "v").kind == KIND_VIEW
    with mounted(mounts, tmp_path / "v") as root:
        assert (root / "f").read_bytes() == b"1"
        with pytest.raises(OSError) as err:
            (root / "g").write_text("no")
        assert err.value.errno == errno.EROFS
    # a view without a parent: its own (empty) directory, read-only
    empty = sn.view(NS, "v-empty")
    assert [(m.type, m.options) for m in empty] == [("bind", ["ro", "rbind"])]
    assert os.listdir(empty[0].source) == []
    assert sn.mounts(NS, "v") == mounts


def test_committed_layers_are_shared_not_copied(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    commit_layer(sn, "base", "", {"big": b"x" * 4096}, tmp_path)
    m1 = sn.prepare(NS, "c1", "base")
    m2 = sn.prepare(NS, "c2", "base")
    lower1 = next(o for o in m1[0].options if o.startswith("lowerdir="))
    lower2 = next(o for o in m2[0].options if o.startswith("lowerdir="))
    assert lower1 == lower2
    assert fs_of(sn, m1) != fs_of(sn, m2)
    # one directory per snapshot, nothing else
    assert len(os.listdir(os.path.join(sn.root, "snapshots"))) == 3


def test_errors(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    sn.prepare(NS, "a")
    with pytest.raises(AlreadyExists):
        sn.prepare(NS, "a")
    with pytest.raises(AlreadyExists):
        sn.view(NS, "a")
    with pytest.raises(InvalidArgument):
        sn.prepare(NS, "")
    with pytest.raises(NotFound):
        sn.prepare(NS, "b", "missing")
    with pytest.raises(InvalidArgument):  # an active parent
        sn.prepare(NS, "b", "a")
    sn.commit(NS, "layer", "a")
    with pytest.raises(NotFound):
        sn.stat(NS, "a")
    with pytest.raises(FailedPrecondition):  # committed: not active
        sn.commit(NS, "layer2", "layer")
    with pytest.raises(FailedPrecondition):
        sn.mounts(NS, "layer")
    sn.view(NS, "v", "layer")
    with pytest.raises(FailedPrecondition):  # a view cannot be committed
        sn.commit(NS, "layer3", "v")
    sn.prepare(NS, "c", "layer")
    with pytest.raises(AlreadyExists):
        sn.commit(NS, "layer", "c")
    with pytest.raises(FailedPrecondition):  # has children
        sn.remove(NS, "layer")
    with pytest.raises(NotFound):
        sn.remove(NS, "nope")
    with pytest.raises(NotFound):
        sn.commit(NS, "x", "nope")
    with pytest.raises(InvalidArgument):
        sn.prepare(NS, "big", labels={"k": "v" * 5000})
    with pytest.raises(InvalidArgument):
        sn.prepare(NS, "nokey", labels={"": "v"})
    # children gone, the parent can go
    sn.remove(NS, "c")
    sn.remove(NS, "v")
    sn.remove(NS, "layer")
    assert list(sn.walk(NS)) == []
    assert os.listdir(os.path.join(sn.root, "snapshots")) == []


def test_commit_keeps_the_directory_and_records_usage(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    mounts = sn.prepare(NS, "k", labels={"a": "1"})
    fs = fs_of(sn, mounts)
    Path(fs, "blob").write_bytes(os.urandom(1 << 20))
    os.link(os.path.join(fs, "blob"), os.path.join(fs, "blob-link"))
    os.mkdir(os.path.join(fs, "d"))
    active = sn.usage(NS, "k")
    assert active.inodes == 3  # fs itself, blob (both names), d
    assert active.size >= 1 << 20
    assert active.size < (1 << 20) + 64 * 1024  # the hard link is not counted twice
    sn.commit(NS, "layer", "k")
    info = sn.stat(NS, "layer")
    assert (info.kind, info.labels) == (KIND_COMMITTED, {"a": "1"})
    assert fs_of(sn, sn.view(NS, "v", "layer")) == fs
    assert sn.usage(NS, "layer") == active
    sn.prepare(NS, "k2")
    sn.commit(NS, "layer2", "k2", labels={"b": "2"})
    assert sn.stat(NS, "layer2").labels == {"b": "2"}


def test_labels_update_and_timestamps(sn: OverlaySnapshotter) -> None:
    before = time.time_ns()
    sn.prepare(NS, "k", labels={"a": "1", "b": "2"})
    info = sn.stat(NS, "k")
    assert before <= info.created_at == info.updated_at <= time.time_ns()
    # one label by field path: set c, drop b, leave a
    got = sn.update(NS, SnapshotInfo("k", labels={"c": "3"}), ["labels.c", "labels.b"])
    assert got.labels == {"a": "1", "c": "3"}
    assert got.updated_at >= info.updated_at and got.created_at == info.created_at
    # no field paths: all labels replaced
    assert sn.update(NS, SnapshotInfo("k", labels={"z": "26"})).labels == {"z": "26"}
    with pytest.raises(InvalidArgument):
        sn.update(NS, SnapshotInfo("k", parent="other"), ["parent"])
    with pytest.raises(NotFound):
        sn.update(NS, SnapshotInfo("missing"), ["labels"])
    assert sn.stat(NS, "k").labels == {"z": "26"}


def test_namespaces_are_separate(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    a = sn.prepare("ns-a", "same")
    b = sn.prepare("ns-b", "same")
    assert fs_of(sn, a) != fs_of(sn, b)
    Path(fs_of(sn, a), "only-a").write_text("a")
    sn.commit("ns-a", "layer", "same")
    assert [i.name for i in sn.walk("ns-a")] == ["layer"]
    assert [i.name for i in sn.walk("ns-b")] == ["same"]
    with pytest.raises(NotFound):  # a parent from another namespace is not visible
        sn.prepare("ns-b", "child", "layer")
    assert sn.namespaces() == ["ns-a", "ns-b"]
    sn.prepare("ns-a", "child", "layer")
    everything = {i.name: i.parent for i in AllNamespaces(sn).walk()}
    assert everything == {"ns-a/child": "ns-a/layer", "ns-a/layer": "", "ns-b/same": ""}
    assert flat_name("ns-a", "overlayfs", "child") == "ns-a/child"
    AllNamespaces(sn).remove("ns-a/child")
    bound = Namespaced(sn, "ns-a")
    assert [i.name for i in bound.walk()] == ["layer"]
    assert bound.stat("layer").kind == KIND_COMMITTED


def test_state_survives_reopen_and_cleanup_removes_orphans(tmp_path: Path) -> None:
    root = str(tmp_path / "sn")
    first = OverlaySnapshotter(root)
    first.prepare(NS, "k", labels={"x": "y"})
    first.commit(NS, "layer", "k")
    first.prepare(NS, "c", "layer")
    first.close()
    orphan = os.path.join(root, "snapshots", "new-999")
    os.makedirs(os.path.join(orphan, "fs"))
    second = OverlaySnapshotter(root)
    try:
        assert {(i.name, i.parent, i.kind) for i in second.walk(NS)} == {
            ("layer", "", KIND_COMMITTED),
            ("c", "layer", KIND_ACTIVE),
        }
        assert second.stat(NS, "layer").labels == {"x": "y"}
        assert second.cleanup() == ["new-999"]
        assert not os.path.exists(orphan)
        assert len(os.listdir(os.path.join(root, "snapshots"))) == 2
    finally:
        second.close()


def test_concurrent_prepares_from_threads(sn: OverlaySnapshotter) -> None:
    sn.prepare(NS, "base")
    sn.commit(NS, "layer", "base")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                sn.prepare(NS, f"t{i}-{j}", "layer")
        except BaseException as e:  # noqa: BLE001 - collected: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(sn.walk(NS))) == 41
    assert len(os.listdir(os.path.join(sn.root, "snapshots"))) == 41
