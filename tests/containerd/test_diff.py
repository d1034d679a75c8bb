"""Layers applied onto real snapshots and compared back out: Docker-made images, crafted hostile tars."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib
import io
import json
import os
import stat
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zstandard

from containerd.content import ContentStore
from containerd.diff import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    compare,
    compare_to_content,
)
from containerd.diff import apply as diff_apply
from containerd.diff.streams import Source
from containerd.errors import InvalidArgument, Unimplemented
from containerd.snapshots import Mount, OverlaySnapshotter
from tests.containerd.conftest import mounted
from tests.tarread import member

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO.parent / "shared" / "images"
NS = "default"


# --- helpers ---------------------------------------------------------------------------

# Every test runs twice: once with the layer as a stream (what a client sends), once as a
# verified blob file in a content store (what Diff.Apply hands over: an uncompressed one takes
# the seek-and-copy_file_range path), so both paths meet the same layers, good and hostile.
_blob_store: list[ContentStore] = []


@pytest.fixture(autouse=True, params=["stream", "blob-file"])
def layer_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "blob-file":
        _blob_store.append(ContentStore(str(tmp_path / "blobs")))
    yield request.param
    _blob_store.clear()


def apply(mounts: list[Mount], layer: Source, media_type: str) -> Descriptor:
    """containerd.diff.apply, handed the layer as the current `layer_source` says."""
    if not _blob_store or not isinstance(layer, io.BytesIO):
        return diff_apply(mounts, layer, media_type)
    store = _blob_store[0]
    data = layer.getvalue()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if not store.exists(digest):
        writer = store.writer(f"ref-{digest}", len(data))
        writer.write(data)
        writer.commit(len(data), digest)
    with open(store.blob_path(digest), "rb") as blob:
        return diff_apply(mounts, blob, media_type, verified=digest)


def write_dir(mounts: list[Mount]) -> str:
    m = mounts[0]
    if m.type == "bind":
        return m.source
    return next(o.split("=", 1)[1] for o in m.options if o.startswith("upperdir="))


def docker_save_layers(path: Path) -> tuple[list[bytes], list[str]]:
    """The layer tars of a docker-save archive and the config's diff ids."""
    with tarfile.open(path) as arc:
        manifest = json.load(member(arc, "manifest.json"))[0]
        config = json.load(member(arc, manifest["Config"]))
        layers = [member(arc, name).read() for name in manifest["Layers"]]
    return layers, config["rootfs"]["diff_ids"]


def unpack_chain(
    sn: OverlaySnapshotter, layers: list[bytes], media_type: str, prefix: str = "layer"
) -> list[str]:
    """Unpack LAYERS as containerd's unpacker does: prepare on the previous, apply, commit."""
    parent = ""
    digests = []
    for i, blob in enumerate(layers):
        key = f"extract-{prefix}-{i}"
        desc = apply(sn.prepare(NS, key, parent), io.BytesIO(blob), media_type)
        digests.append(desc.digest)
        assert desc.size > 0 and desc.media_type == OCI_LAYER
        parent = f"{prefix}-{i}"
        sn.commit(NS, parent, key)
    return digests


def run_in(root: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chroot", str(root), "/bin/sh", "-c", script], capture_output=True, text=True, timeout=30
    )


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes | None = None, link: str = "", **attrs: object
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_600_000_000
    for k, v in attrs.items():
        setattr(info, k, v)
    if kind == tarfile.REGTYPE and data is None:
        data = b""
    return info, data


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything observable about a tree except the root itself and access times."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            xattrs = {}
            with contextlib.suppress(OSError):
                for x in os.listxattr(p, follow_symlinks=False):
                    xattrs[x] = os.getxattr(p, x, follow_symlinks=False)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            out[rel] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                int(st.st_mtime),
                content,
                tuple(sorted(xattrs.items())),
            )
    for paths in inodes.values():
        if len(paths) > 1:
            for p in paths:
                out[p] = out[p] + (tuple(sorted(paths)),)
    return out


# --- Docker's images ---------------------------------------------------------------------


def test_layered_image_on_an_overlay_chain(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layers, diff_ids = docker_save_layers(IMAGES / "layered.tar")
    assert len(layers) == 3
    assert unpack_chain(sn, layers, DOCKER_LAYER) == diff_ids

    view = sn.view(NS, "v", "layer-2")
    assert view[0].type == "overlay"
    lowers = next(o for o in view[0].options if o.startswith("lowerdir=")).split("=", 1)[1].split(":")
    top, middle, _base = lowers
    # the whiteout and the opaque directory are overlayfs' own, in the layers' directories
    vi = os.lstat(os.path.join(middle, "bin", "vi"))
    assert stat.S_ISCHR(vi.st_mode) and vi.st_rdev == 0
    assert os.getxattr(os.path.join(top, "data", "drop"), "trusted.overlay.opaque") == b"y"
    k = os.lstat(os.path.join(top, "data", "keep", "k"))
    assert os.lstat(os.path.join(top, "data", "keep", "k-hard")).st_ino == k.st_ino
    assert os.readlink(os.path.join(top, "data", "drop", "k-sym")) == "../keep/k"

    with mounted(view, tmp_path / "merged") as root:
        assert sorted(os.listdir(root / "data" / "drop")) == ["b", "k-sym"]
        assert not os.path.lexists(root / "bin" / "vi")
        assert (root / "data" / "drop" / "k-sym").read_text() == (root / "data" / "keep" / "k").read_text()
        # what `docker run --rm layered 'ls /data/drop; ls /bin/vi'` prints
        done = run_in(root, "ls /data/drop; ls /bin/vi")
        assert done.stdout == "b\nk-sym\n"
        assert done.stderr == "ls: /bin/vi: No such file or directory\n"


def test_layered_image_into_one_bind_snapshot_really_deletes(sn: OverlaySnapshotter) -> None:
    layers, diff_ids = docker_save_layers(IMAGES / "layered.tar")
    mounts = sn.prepare(NS, "flat")
    assert mounts[0].type == "bind"
    digests = [apply(mounts, io.BytesIO(layer), DOCKER_LAYER).digest for layer in layers]
    assert digests == diff_ids
    fs = Path(mounts[0].source)
    assert sorted(os.listdir(fs / "data" / "drop")) == ["b", "k-sym"]
    assert not os.path.lexists(fs / "bin" / "vi")
    assert (fs / "bin" / "busybox").is_file()
    for dirpath, dirnames, filenames in os.walk(fs):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            assert not stat.S_ISCHR(os.lstat(p).st_mode), p
            assert not [x for x in os.listxattr(p, follow_symlinks=False) if x.startswith("trusted.overlay.")]


def oci_layout_layers(layout: Path) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(media type, blob) of each layer of an OCI layout's first image, and the config's diff ids."""

    def blob(digest: str) -> bytes:
        return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    diff_ids = json.loads(blob(manifest["config"]["digest"]))["rootfs"]["diff_ids"]
    return [(layer["mediaType"], blob(layer["digest"])) for layer in manifest["layers"]], diff_ids


def test_busybox_oci_gzip_layers(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layers, diff_ids = oci_layout_layers(IMAGES / "busybox-oci")
    assert layers and all(mt.endswith("gzip") for mt, _ in layers)
    parent = ""
    for i, (media_type, blob) in enumerate(layers):
        mounts = sn.prepare(NS, f"x{i}", parent)
        # chunks, as the content store's read() yields them
        chunks = (blob[o : o + 65536] for o in range(0, len(blob), 65536))
        assert apply(mounts, chunks, media_type).digest == diff_ids[i]
        sn.commit(NS, f"l{i}", f"x{i}")
        parent = f"l{i}"
    # one layer: the view is a read-only bind of it; a container's is an overlay on it
    container = sn.prepare(NS, "ctr", parent)
    with mounted(container, tmp_path / "rootfs") as root:
        done = run_in(root, "echo hi > /tmp/out; cat /tmp/out; id -u nobody")
        assert (done.returncode, done.stdout) == (0, "hi\n65534\n")
    assert Path(write_dir(container), "tmp", "out").read_text() == "hi\n"


def test_zstd_and_docker_gzip_layers(sn: OverlaySnapshotter) -> None:
    layers, diff_ids = docker_save_layers(IMAGES / "layered.tar")
    zstd_blobs = [zstandard.ZstdCompressor().compress(layer) for layer in layers]
    assert unpack_chain(sn, zstd_blobs, OCI_LAYER_ZSTD, "z") == diff_ids
    gzip_blobs = [gzip.compress(layer) for layer in layers]
    assert unpack_chain(sn, gzip_blobs, DOCKER_LAYER_GZIP, "g") == diff_ids


def test_bad_streams_and_targets(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layers, _ = docker_save_layers(IMAGES / "busybox.tar")
    mounts = sn.prepare(NS, "k")
    with pytest.raises(InvalidArgument):
        apply(mounts, io.BytesIO(gzip.compress(layers[0])[:5000]), OCI_LAYER_GZIP)
    with pytest.raises(InvalidArgument):
        apply(mounts, io.BytesIO(layers[0][:700]), OCI_LAYER)  # cut inside the first file
    with pytest.raises(InvalidArgument):
        apply(mounts, io.BytesIO(b"\x28\xb5\x2f\xfd" + os.urandom(600)), OCI_LAYER_ZSTD)
    with pytest.raises(Unimplemented):
        apply(mounts, io.BytesIO(layers[0]), "application/vnd.oci.image.layer.v1.tar+encrypted")
    with pytest.raises(InvalidArgument):
        apply([], io.BytesIO(layers[0]), OCI_LAYER)
    sn.commit(NS, "c", "k")
    with pytest.raises(InvalidArgument):  # a view is read-only
        apply(sn.view(NS, "v", "c"), io.BytesIO(layers[0]), OCI_LAYER)


# --- what a layer may carry --------------------------------------------------------------


def test_layer_features_on_an_overlay(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    base = make_tar(
        [
            entry("sneaky", tarfile.DIRTYPE),
            entry("sneaky/old", data=b"old"),
            entry("evil", tarfile.SYMTYPE, link=str(outside)),
            entry("lib", tarfile.DIRTYPE, mode=0o750, uid=7, gid=8),
            entry("lib/deep", tarfile.DIRTYPE),
            entry("lib/deep/f", data=b"f"),
        ]
    )
    unpack_chain(sn, [base], OCI_LAYER, "base")
    long_dir = "usr/" + "d" * 120
    long_file = long_dir + "/" + "f" * 200
    binary = b"\xff\x00\x01bin"
    layer = make_tar(
        [
            entry("usr", tarfile.DIRTYPE),
            entry("usr/bin", tarfile.DIRTYPE),
            entry("usr/bin/su", data=b"#!su", mode=0o4755),
            entry("usr/bin/su-link", tarfile.LNKTYPE, link="usr/bin/su"),
            entry("usr/lib64", tarfile.SYMTYPE, link="lib"),
            entry(long_dir, tarfile.DIRTYPE),
            entry(long_file, data=b"long"),
            entry("home", tarfile.DIRTYPE),
            entry("home/user", tarfile.DIRTYPE, uid=1234, gid=5678, mode=0o750, mtime=1_000_000_000),
            entry("home/user/file", data=b"mine", uid=1234, gid=5678, mode=0o640, mtime=1_234_567_890),
            entry(
                "home/user/x",
                data=b"x",
                pax_headers={
                    "SCHILY.xattr.user.comment": "hello",
                    "SCHILY.xattr.user.bin": binary.decode("utf-8", "surrogateescape"),
                },
            ),
            entry("etc", tarfile.DIRTYPE),
            entry("etc/mtab", tarfile.SYMTYPE, link="/proc/mounts"),
            # tries to make a directory opaque by xattr: dropped, only whiteouts do that
            entry("sneaky", tarfile.DIRTYPE, pax_headers={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
            entry("sneaky/new", data=b"new"),
            # replaces the lower layer's symlink: a file now, and nothing written outside
            entry("evil", data=b"not a link any more"),
            # a parent that exists only below: made in the upper with the lower's owner and mode
            entry("lib/deep/g", data=b"g"),
        ]
    )
    mounts = sn.prepare(NS, "top", "base-0")
    apply(mounts, io.BytesIO(layer), OCI_LAYER)
    upper = Path(write_dir(mounts))
    assert os.listdir(outside) == []
    su = os.lstat(upper / "usr/bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_nlink == 2
    assert os.lstat(upper / "usr/bin/su-link").st_ino == su.st_ino
    assert os.readlink(upper / "usr/lib64") == "lib"
    assert os.readlink(upper / "etc/mtab") == "/proc/mounts"
    assert (upper / long_file).read_bytes() == b"long"
    user = os.lstat(upper / "home/user")
    assert (user.st_uid, user.st_gid, stat.S_IMODE(user.st_mode), user.st_mtime) == (
        1234,
        5678,
        0o750,
        1_000_000_000,
    )
    f = os.lstat(upper / "home/user/file")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode), f.st_mtime) == (1234, 5678, 0o640, 1_234_567_890)
    assert os.getxattr(upper / "home/user/x", "user.comment") == b"hello"
    assert os.getxattr(upper / "home/user/x", "user.bin") == binary
    with pytest.raises(OSError):
        os.getxattr(upper / "sneaky", "trusted.overlay.opaque")
    lib = os.lstat(upper / "lib")
    assert (lib.st_uid, lib.st_gid, stat.S_IMODE(lib.st_mode)) == (7, 8, 0o750)
    with mounted(mounts, tmp_path / "m") as root:
        assert sorted(os.listdir(root / "sneaky")) == ["new", "old"]
        assert (root / "evil").read_bytes() == b"not a link any more"
        assert sorted(os.listdir(root / "lib/deep")) == ["f", "g"]


@pytest.mark.parametrize("mode", ["bind", "overlay"])
def test_whiteout_and_opaque_rules(sn: OverlaySnapshotter, tmp_path: Path, mode: str) -> None:
    base = [
        entry("d", tarfile.DIRTYPE),
        entry("d/a", data=b"a"),
        entry("d/sub", tarfile.DIRTYPE),
        entry("d/sub/x", data=b"x"),
        entry("gone", tarfile.DIRTYPE),
        entry("gone/old", data=b"old"),
    ]
    # the opaque marker comes after entries of its own directory, which it must keep
    second = [
        entry("d", tarfile.DIRTYPE),
        entry("d/b", data=b"b"),
        entry("d/sub/y", data=b"y"),  # no entry for d/sub itself
        entry("d/.wh..wh..opq"),
        entry("e", data=b"e"),
        entry(".wh.e"),  # a whiteout never hides its own layer's files
        entry(".wh.gone"),
    ]
    # then, in the same snapshot, a directory re-made where the whiteout is
    third = [entry("gone", tarfile.DIRTYPE), entry("gone/new", data=b"new")]
    if mode == "bind":
        mounts = sn.prepare(NS, "one")
        apply(mounts, io.BytesIO(make_tar(base)), OCI_LAYER)
    else:
        unpack_chain(sn, [make_tar(base)], OCI_LAYER, "base")
        mounts = sn.prepare(NS, "one", "base-0")
    apply(mounts, io.BytesIO(make_tar(second)), OCI_LAYER)
    with mounted(mounts, tmp_path / "m") as root:
        assert sorted(os.listdir(root / "d")) == ["b", "sub"]
        assert os.listdir(root / "d" / "sub") == ["y"]
        assert (root / "e").read_bytes() == b"e"
        assert not os.path.lexists(root / "gone")
    apply(mounts, io.BytesIO(make_tar(third)), OCI_LAYER)
    with mounted(mounts, tmp_path / "m") as root:
        assert os.listdir(root / "gone") == ["new"]
    if mode == "overlay":
        upper = Path(write_dir(mounts))
        assert os.getxattr(upper / "gone", "trusted.overlay.opaque") == b"y"
        assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"


# --- hostile layers --------------------------------------------------------------------

Builder = Callable[[Path, Path], list[tuple[tarfile.TarInfo, bytes | None]]]

HOSTILE: dict[str, Builder] = {
    "dotdot-path": lambda fs, out: [entry(os.path.relpath(out / "sentinel", fs), data=b"pwned")],
    "dotdot-inside-name": lambda fs, out: [entry("a/../../x", data=b"pwned")],
    "absolute-path": lambda fs, out: [entry(str(out / "sentinel"), data=b"pwned")],
    "absolute-symlink-then-write": lambda fs, out: [
        entry("evil", tarfile.SYMTYPE, link=str(out)),
        entry("evil/sentinel", data=b"pwned"),
    ],
    "relative-symlink-then-write": lambda fs, out: [
        entry("evil", tarfile.SYMTYPE, link=os.path.relpath(out, fs)),
        entry("evil/new", data=b"pwned"),
    ],
    "nested-relative-symlink-then-dir": lambda fs, out: [
        entry("d", tarfile.DIRTYPE),
        entry("d/evil", tarfile.SYMTYPE, link=os.path.relpath(out, fs / "d")),
        entry("d/evil/sub", tarfile.DIRTYPE),
    ],
    "hardlink-to-etc-passwd": lambda fs, out: [entry("pw", tarfile.LNKTYPE, link="/etc/passwd")],
    "hardlink-dotdot": lambda fs, out: [
        entry("s", tarfile.LNKTYPE, link=os.path.relpath(out / "sentinel", fs))
    ],
    "hardlink-through-symlink": lambda fs, out: [
        entry("evil", tarfile.SYMTYPE, link=str(out)),
        entry("s", tarfile.LNKTYPE, link="evil/sentinel"),
    ],
    "whiteout-through-symlink": lambda fs, out: [
        entry("evil", tarfile.SYMTYPE, link=str(out)),
        entry("evil/.wh.sentinel"),
    ],
    "opaque-through-symlink": lambda fs, out: [
        entry("evil", tarfile.SYMTYPE, link=str(out)),
        entry("evil/.wh..wh..opq"),
    ],
    "char-device": lambda fs, out: [entry("cdev", tarfile.CHRTYPE, devmajor=1, devminor=3)],
    "char-0-0-named-like-a-file": lambda fs, out: [entry("cdev", tarfile.CHRTYPE, devmajor=0, devminor=0)],
    "block-device": lambda fs, out: [entry("bdev", tarfile.BLKTYPE, devmajor=8, devminor=0)],
    "fifo": lambda fs, out: [entry("fifo", tarfile.FIFOTYPE)],
}

# the symlink is in a layer below: the hostile layer only writes through it
HOSTILE_BELOW: dict[str, tuple[Builder, Builder]] = {
    "lower-absolute-symlink": (
        lambda fs, out: [entry("evil", tarfile.SYMTYPE, link=str(out))],
        lambda fs, out: [entry("evil/sentinel", data=b"pwned")],
    ),
    "lower-relative-symlink": (
        lambda fs, out: [entry("evil", tarfile.SYMTYPE, link=os.path.relpath(out, fs))],
        lambda fs, out: [entry("evil/new", data=b"pwned")],
    ),
    "lower-symlink-whiteout": (
        lambda fs, out: [entry("evil", tarfile.SYMTYPE, link=str(out))],
        lambda fs, out: [entry("evil/.wh.sentinel")],
    ),
    "lower-symlink-hardlink": (
        lambda fs, out: [entry("evil", tarfile.SYMTYPE, link=str(out))],
        lambda fs, out: [entry("s", tarfile.LNKTYPE, link="evil/sentinel")],
    ),
}


def host_state(outside: Path) -> tuple[list[str], bytes, int, int, int]:
    pw = os.stat("/etc/passwd")
    listing = sorted(os.listdir(outside))
    return listing, (outside / "sentinel").read_bytes(), pw.st_nlink, pw.st_mtime_ns, pw.st_size


def assert_refused(mounts: list[Mount], layer: bytes, outside: Path) -> None:
    before = host_state(outside)
    with pytest.raises(InvalidArgument):
        apply(mounts, io.BytesIO(layer), OCI_LAYER)
    assert host_state(outside) == before
    fs = Path(write_dir(mounts))
    for name in ("cdev", "bdev", "fifo", "pw", "s"):
        assert not os.path.lexists(fs / name)
    assert not os.path.lexists(fs / "d" / "evil" / "sub")


@pytest.mark.parametrize("mode", ["bind", "overlay"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused(sn: OverlaySnapshotter, tmp_path: Path, case: str, mode: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"original")
    parent = ""
    if mode == "overlay":
        unpack_chain(sn, [make_tar([entry("base", data=b"b")])], OCI_LAYER, "base")
        parent = "base-0"
    mounts = sn.prepare(NS, "target", parent)
    assert mounts[0].type == mode
    fs = Path(write_dir(mounts))
    assert_refused(mounts, make_tar(HOSTILE[case](fs, outside)), outside)


@pytest.mark.parametrize("case", sorted(HOSTILE_BELOW))
def test_hostile_layer_through_a_lower_symlink_is_refused(
    sn: OverlaySnapshotter, tmp_path: Path, case: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"original")
    first, second = HOSTILE_BELOW[case]
    base = sn.prepare(NS, "base")
    apply(base, io.BytesIO(make_tar(first(Path(write_dir(base)), outside))), OCI_LAYER)
    sn.commit(NS, "base-layer", "base")
    mounts = sn.prepare(NS, "target", "base-layer")
    assert_refused(mounts, make_tar(second(Path(write_dir(mounts)), outside)), outside)


# --- compare -----------------------------------------------------------------------------


def change_things(root: Path) -> None:
    (root / "data" / "new.txt").write_text("new\n")
    os.setxattr(root / "data" / "new.txt", "user.note", b"\x00\xffnote")
    with open(root / "etc" / "passwd", "a") as f:
        f.write("extra:x:1000:1000::/home/extra:/bin/sh\n")
    os.unlink(root / "bin" / "ls")
    subprocess.run(["rm", "-rf", str(root / "data" / "keep")], check=True)
    os.chmod(root / "tmp", 0o1770)
    os.chown(root / "root", 1000, 1000)
    os.symlink("/etc/passwd", root / "data" / "link")
    (root / "data" / "h1").write_text("hard")
    os.link(root / "data" / "h1", root / "data" / "h2")
    subprocess.run(["rm", "-rf", str(root / "data" / "drop")], check=True)
    (root / "data" / "drop").write_text("a file where a directory was")
    os.unlink(root / "etc" / "group")
    (root / "etc" / "group").mkdir()
    (root / "etc" / "group" / "inner").write_text("dir where a file was")
    deep = root / "opt" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "tool").write_text("#!/bin/sh\n")
    os.chmod(deep / "tool", 0o4755)
    (root / "opt" / ("n" * 200)).write_text("long name")


def test_compare_round_trips_through_apply(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layers, _ = docker_save_layers(IMAGES / "layered.tar")
    unpack_chain(sn, layers, DOCKER_LAYER)
    lower = sn.view(NS, "lower", "layer-2")
    child = sn.prepare(NS, "child", "layer-2")
    with mounted(child, tmp_path / "child") as root:
        change_things(root)
        # compared while the container's rootfs is still mounted, as for a `docker commit`
        blob = io.BytesIO()
        result = compare(lower, child, blob, OCI_LAYER_GZIP)
    again = io.BytesIO()
    assert compare(lower, child, again, OCI_LAYER_GZIP) == result
    assert again.getvalue() == blob.getvalue()  # deterministic, to the byte
    # the child is an overlay on exactly the lower's layers: only directories its upperdir has
    # were walked; walking every directory of both trees gives the same layer, to the byte
    compare_module = importlib.import_module("containerd.diff.compare")  # (the package exports the function)
    assert compare_module._changes_root(lower, child) is not None
    full = io.BytesIO()
    with compare_module._view(lower, None) as lower_root, compare_module._view(child, None) as upper_root:
        compare_module.write_diff(lower_root, upper_root, full, OCI_LAYER_GZIP)
    assert full.getvalue() == blob.getvalue()
    data = blob.getvalue()
    assert result.descriptor.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.descriptor.size == len(data)
    plain = gzip.decompress(data)
    assert result.uncompressed_digest == "sha256:" + hashlib.sha256(plain).hexdigest()

    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert len(names) == len(set(names))
    for wh in ("bin/.wh.ls", "data/.wh.keep"):
        assert wh in names
    assert not [n for n in names if n.startswith("data/keep/")]  # only the top of a deleted tree
    assert "bin/busybox" not in names  # unchanged files stay out
    for i, name in enumerate(names):  # every parent comes first
        parent = os.path.dirname(name)
        assert not parent or parent in names[:i], name
    kinds = {m.name: m for m in members}
    assert kinds["data/h2"].islnk() and kinds["data/h2"].linkname == "data/h1"
    assert kinds["data/link"].issym() and kinds["data/drop"].isreg() and kinds["etc/group"].isdir()
    assert kinds["opt/a/b/c/tool"].mode == 0o4755 and kinds["root"].uid == 1000

    fresh = sn.prepare(NS, "fresh", "layer-2")
    assert apply(fresh, io.BytesIO(data), OCI_LAYER_GZIP).digest == result.uncompressed_digest
    sn.commit(NS, "child-layer", "child")
    sn.commit(NS, "fresh-layer", "fresh")
    with (
        mounted(sn.view(NS, "cv", "child-layer"), tmp_path / "cv") as a,
        mounted(sn.view(NS, "fv", "fresh-layer"), tmp_path / "fv") as b,
    ):
        want, got = tree(a), tree(b)
        assert "data/keep" not in got and "bin/ls" not in got
        assert got == want


def test_compare_of_identical_trees_is_empty(sn: OverlaySnapshotter) -> None:
    layers, _ = docker_save_layers(IMAGES / "layered.tar")
    unpack_chain(sn, layers, DOCKER_LAYER)
    out = io.BytesIO()
    compare(sn.view(NS, "a", "layer-2"), sn.prepare(NS, "b", "layer-2"), out, OCI_LAYER)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert tar.getmembers() == []


def test_compare_of_a_first_layer_and_into_the_content_store(sn: OverlaySnapshotter, tmp_path: Path) -> None:
    layers, diff_ids = docker_save_layers(IMAGES / "busybox.tar")
    first = sn.prepare(NS, "first")
    apply(first, io.BytesIO(layers[0]), DOCKER_LAYER)
    store = ContentStore(tmp_path / "content")
    # no parent: the lower side is no mounts at all, an empty directory
    result = compare_to_content(store, [], first, OCI_LAYER_ZSTD)
    blob = store.read_all(result.descriptor.digest)
    assert len(blob) == result.descriptor.size
    plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == result.uncompressed_digest
    # the same tree again: the blob is already there, which is fine
    assert compare_to_content(store, [], first, OCI_LAYER_ZSTD) == result
    assert store.list_statuses() == []
    # the re-made layer unpacks to the same files as Docker's
    copy = sn.prepare(NS, "copy")
    apply(copy, io.BytesIO(blob), OCI_LAYER_ZSTD)
    assert tree(Path(write_dir(copy))) == tree(Path(write_dir(first)))
    assert diff_ids  # Docker's digest differs (its tar has other headers); the files do not
