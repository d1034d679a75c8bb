"""containerd/client against a real pycontainerd: import, unpack, export, and what real tools make of it.

Fixtures made by the reference tools are in ../shared/images (see its README): docker-save
archives (busybox.tar, layered.tar), an OCI layout directory (busybox-oci/) and an OCI
archive (layered-oci.tar); the project's own default image is images/busybox-oci.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from containerd.client import (
    ArchiveError,
    Client,
    DigestMismatch,
    delete_image,
    export_archive,
    familiar_name,
    get_image,
    image_manifest,
    import_archive,
    is_unpacked,
    list_images,
    normalize_name,
    unpack,
)
from containerd.client.errors import AlreadyExists, InvalidArgument, NotFound
from protos.gen.containerd_api.services.namespaces.v1 import namespace_pb2
from tests.daemon.conftest import RunningDaemon, start_real_containerd, stop_daemon
from tests.tarread import member

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "images"
BUSYBOX_TAR = SHARED / "busybox.tar"
LAYERED_TAR = SHARED / "layered.tar"
BUSYBOX_OCI = SHARED / "busybox-oci"
LAYERED_OCI_TAR = SHARED / "layered-oci.tar"
OWN_BUSYBOX_OCI = REPO / "images" / "busybox-oci"

BUSYBOX_CONFIG = "sha256:80cbd88a5f7ef9f87fe0d5a3bd512e7bcb1e27f31a79208585f0f78cf4ab5824"
LAYERED_CONFIG = "sha256:17e3dc93a3aac88064162a794f72b60e3d47f77c7a84819f0fa85bc639735d42"
# the busybox layer's diff id: the bottom of every chain built on busybox
BUSYBOX_DIFF_ID = "sha256:e593956bf0f9fafa5f045a6ef5bc314b342e761c7c1f629300d1a447414240f0"
LAYERED_TOP_CHAIN = "sha256:ad83000920aa95d0a466440b7d36d3c5f00c51672b6ef430e1759bc844da1ac0"
# what `ctr images import layered.tar` (containerd 1.6) makes of layered.tar's manifest.json
LAYERED_CTR_MANIFEST = "sha256:00a6089323927e11c95c283de10df44d32bc6c7f26e0b1c77cdd31a369595205"


@pytest.fixture
def client(daemon: RunningDaemon) -> Iterator[Client]:
    with Client(str(daemon.address), "default") as c:
        yield c


def _ctr_ok(daemon: RunningDaemon, *args: str, namespace: str = "default") -> str:
    out = daemon.ctr(*args, namespace=namespace)
    assert out.returncode == 0, f"ctr {' '.join(args)}: {out.stderr}"
    return out.stdout


def _check_rows(daemon: RunningDaemon, namespace: str = "default") -> dict[str, list[str]]:
    """`ctr images check`: REF -> [TYPE, DIGEST, STATUS..., UNPACKED]."""
    rows = {}
    for line in _ctr_ok(daemon, "images", "check", namespace=namespace).splitlines()[1:]:
        fields = line.split()
        rows[fields[0]] = fields[1:]
    return rows


def _snapshot_rows(daemon: RunningDaemon, namespace: str = "default") -> dict[str, tuple[str, str]]:
    """`ctr snapshots ls`: KEY -> (PARENT or "", KIND)."""
    rows = {}
    for line in _ctr_ok(daemon, "snapshots", "ls", namespace=namespace).splitlines()[1:]:
        fields = line.split()
        rows[fields[0]] = (fields[1], fields[2]) if len(fields) == 3 else ("", fields[1])
    return rows


def _assert_nothing_left(client: Client, daemon: RunningDaemon) -> None:
    assert list_images(client) == []
    assert client.content.list() == [], "the failed import's content outlived its lease"
    assert client.snapshots().list() == []
    assert _ctr_ok(daemon, "leases", "ls").splitlines()[1:] == []
    assert _ctr_ok(daemon, "content", "active").splitlines()[1:] == []


# --- import of every fixture -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "base_name", "name", "config", "top_chain"),
    [
        (BUSYBOX_TAR, None, "docker.io/library/busybox:latest", BUSYBOX_CONFIG, BUSYBOX_DIFF_ID),
        (LAYERED_TAR, None, "docker.io/library/layered:latest", LAYERED_CONFIG, LAYERED_TOP_CHAIN),
        # skopeo's layouts name the manifest "latest" only: the repository comes from base_name
        (BUSYBOX_OCI, "busybox", "docker.io/library/busybox:latest", None, BUSYBOX_DIFF_ID),
        (LAYERED_OCI_TAR, "layered", "docker.io/library/layered:latest", None, LAYERED_TOP_CHAIN),
        # ours carries io.containerd.image.name
        (OWN_BUSYBOX_OCI, None, "docker.io/library/busybox:latest", None, None),
    ],
    ids=["busybox.tar", "layered.tar", "busybox-oci", "layered-oci.tar", "own-busybox-oci"],
)
def test_import_fixture_and_unpack(
    client: Client,
    daemon: RunningDaemon,
    source: Path,
    base_name: str | None,
    name: str,
    config: str | None,
    top_chain: str | None,
) -> None:
    images = import_archive(client, source, base_name=base_name)
    assert [i.name for i in images] == [name]
    assert get_image(client, name).target == images[0].target

    desc, manifest, image_config = image_manifest(client, images[0])
    if config is not None:  # the docker-save archives keep docker's config, byte for byte
        assert manifest.config.digest == config
        assert desc.media_type == "application/vnd.docker.distribution.manifest.v2+json"
        assert images[0].target.annotations["org.opencontainers.image.ref.name"] == "latest"
    chain = _chain(image_config.diff_ids)
    if top_chain is not None:
        assert chain[-1] == top_chain

    # containerd's gc labels: the manifest keeps its config and layers, the config its chain
    manifest_labels = client.content.info(desc.digest).labels
    assert manifest_labels["containerd.io/gc.ref.content.config"] == manifest.config.digest
    for i, layer in enumerate(manifest.layers):
        assert manifest_labels[f"containerd.io/gc.ref.content.l.{i}"] == layer.digest
        assert (
            client.content.info(layer.digest).labels["containerd.io/uncompressed"] == image_config.diff_ids[i]
        )
    assert (
        client.content.info(manifest.config.digest).labels["containerd.io/gc.ref.snapshot.overlayfs"]
        == chain[-1]
    )

    # containerd's own ctr agrees that the image is complete and unpacked
    row = _check_rows(daemon)[name]
    assert row[0] == desc.media_type and row[1] == desc.digest
    assert row[2] == "complete" and row[-1] == "true", row
    snapshots = _snapshot_rows(daemon)
    for i, key in enumerate(chain):
        assert snapshots[key] == (chain[i - 1] if i else "", "Committed")
    assert len(snapshots) == len(chain)  # no extract-* snapshot left behind
    assert is_unpacked(client, images[0])
    assert _ctr_ok(daemon, "leases", "ls").splitlines()[1:] == []  # the import's lease is gone


def _chain(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def test_docker_manifest_is_the_one_ctr_builds(client: Client, daemon: RunningDaemon) -> None:
    ours = import_archive(client, LAYERED_TAR)[0]
    assert ours.target.digest == LAYERED_CTR_MANIFEST
    _ctr_ok(daemon, "images", "import", str(LAYERED_TAR), namespace="viactr")
    theirs = get_image(client.with_namespace("viactr"), "docker.io/library/layered:latest")
    assert theirs.target.digest == ours.target.digest
    assert _snapshot_rows(daemon, "viactr").keys() == _snapshot_rows(daemon).keys()


def test_shared_base_layer_is_unpacked_once(client: Client, daemon: RunningDaemon) -> None:
    busybox = import_archive(client, BUSYBOX_TAR)[0]
    layered = import_archive(client, LAYERED_TAR, unpack=False)[0]
    assert not is_unpacked(client, layered)
    result = unpack(client, layered)
    assert result.applied == 2  # busybox's layer was there already: only layered's own two
    assert result.chain_ids[0] == BUSYBOX_DIFF_ID == unpack(client, busybox).top
    assert unpack(client, layered).applied == 0
    # the OCI copy of busybox has the same layer (gzip-compressed): the same snapshot serves
    oci = import_archive(client, BUSYBOX_OCI, base_name="busybox-oci")[0]
    assert unpack(client, oci).top == BUSYBOX_DIFF_ID
    snapshots = _snapshot_rows(daemon)
    assert sorted(snapshots) == sorted(result.chain_ids)
    assert [k for k, (parent, _) in snapshots.items() if parent == ""] == [BUSYBOX_DIFF_ID]


@contextmanager
def _mounted_view(client: Client, parent: str, where: Path) -> Iterator[Path]:
    from containerd.snapshots.mount import Mount, mount_all, unmount

    key = f"test-view-{os.getpid()}-{os.urandom(4).hex()}"
    snapshots = client.snapshots()
    mounts = snapshots.view(key, parent)
    try:
        for m in mounts:  # a view is read-only: a ro bind, or an overlay without an upper layer
            assert (
                "ro" in m.options
                if m.type == "bind"
                else not any(o.startswith("upperdir=") for o in m.options)
            )
        where.mkdir()
        mount_all([Mount(m.type, m.source, m.target, list(m.options)) for m in mounts], str(where))
        try:
            yield where
        finally:
            for _ in mounts:
                unmount(str(where))
            where.rmdir()
    finally:
        snapshots.remove(key)


def test_layered_merged_view(client: Client, tmp_path: Path) -> None:
    image = import_archive(client, LAYERED_TAR)[0]
    top = unpack(client, image).top
    with _mounted_view(client, top, tmp_path / "view") as root:
        assert sorted(os.listdir(root / "data" / "drop")) == ["b", "k-sym"]  # opaque dir: "a" is gone
        assert os.readlink(root / "data" / "drop" / "k-sym") == "../keep/k"
        assert not os.path.lexists(root / "bin" / "vi")  # whiteout
        assert os.path.islink(root / "bin" / "ls")  # busybox's applets, from the base layer
        keep = root / "data" / "keep"
        assert os.stat(keep / "k").st_ino == os.stat(keep / "k-hard").st_ino
        with pytest.raises(OSError):
            (root / "data" / "new").write_text("read-only")
    assert not (tmp_path / "view").exists()


# --- export ------------------------------------------------------------------------------------


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: (member(tar, m).read() if m.isfile() else b"") for m in tar.getmembers()}


def test_export_docker_archive_loads_into_reference_docker(client: Client, tmp_path: Path) -> None:
    from tests.dockerd_ref import reference_dockerd

    import_archive(client, BUSYBOX_TAR)
    import_archive(client, LAYERED_OCI_TAR, base_name="layered")  # gzip layers: exported decompressed
    out = tmp_path / "saved.tar"
    export_archive(client, ["busybox", "layered:latest"], out, format="docker")
    again = tmp_path / "again.tar"
    export_archive(client, ["busybox", "layered:latest"], again, format="docker")
    assert out.read_bytes() == again.read_bytes()  # deterministic

    members = _members(out)
    manifest = json.loads(members["manifest.json"])
    assert [e["RepoTags"] for e in manifest] == [["busybox:latest"], ["layered:latest"]]
    assert manifest[0]["Config"] == BUSYBOX_CONFIG.split(":")[1] + ".json"
    assert (
        manifest[1]["Layers"][0] == manifest[0]["Layers"][0] == BUSYBOX_DIFF_ID.split(":")[1] + "/layer.tar"
    )
    for layer in manifest[1]["Layers"]:
        assert not members[layer].startswith(b"\x1f\x8b")  # plain tars, as docker load wants
    repositories = json.loads(members["repositories"])
    assert set(repositories) == {"busybox", "layered"}

    with reference_dockerd(runtimes={}, images=()) as docker:
        loaded = docker.docker_ok("load", "-i", str(out), timeout=120)
        assert "Loaded image: busybox:latest" in loaded and "Loaded image: layered:latest" in loaded
        assert (
            docker.docker_ok("image", "inspect", "--format", "{{.Id}}", "busybox").strip() == BUSYBOX_CONFIG
        )
        assert docker.docker_ok("run", "--rm", "busybox", "echo", "hi") == "hi\n"
        assert docker.docker_ok("run", "--rm", "layered") == "hello from layered\n65534\n/data\n"


def test_export_oci_and_reimport_into_another_namespace(
    client: Client, daemon: RunningDaemon, tmp_path: Path
) -> None:
    originals = import_archive(client, BUSYBOX_TAR) + import_archive(client, LAYERED_TAR)
    out = tmp_path / "oci.tar"
    export_archive(client, [i.name for i in originals], out, format="oci")
    again = tmp_path / "again.tar"
    export_archive(client, [i.name for i in originals], again, format="oci")
    assert out.read_bytes() == again.read_bytes()

    members = _members(out)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == [
        i.name for i in originals
    ]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        "latest",
        "latest",
    ]
    for name, data in members.items():
        if name.startswith("blobs/sha256/") and data:
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]

    second = client.with_namespace("second")
    reimported = import_archive(second, out)
    assert [(i.name, i.target.digest) for i in reimported] == [(i.name, i.target.digest) for i in originals]
    for image in reimported:
        assert image_manifest(second, image)[1].config.digest in (BUSYBOX_CONFIG, LAYERED_CONFIG)
    rows = _check_rows(daemon, "second")
    assert all(row[2] == "complete" and row[-1] == "true" for row in rows.values()), rows


def test_ctr_export_reads_back(client: Client, daemon: RunningDaemon, tmp_path: Path) -> None:
    original = import_archive(client, BUSYBOX_TAR)[0]
    out = tmp_path / "ctr-export.tar"
    _ctr_ok(daemon, "images", "export", str(out), original.name)
    back = import_archive(client.with_namespace("back"), out)
    assert [(i.name, i.target.digest) for i in back] == [(original.name, original.target.digest)]
    assert _check_rows(daemon, "back")[original.name][-1] == "true"


# --- sources: streams, compression -------------------------------------------------------------


def test_import_from_a_pipe_and_compressed(client: Client, tmp_path: Path) -> None:
    with subprocess.Popen(["cat", str(BUSYBOX_TAR)], stdout=subprocess.PIPE) as cat:
        assert cat.stdout is not None
        images = import_archive(client, cat.stdout)  # not seekable: spooled
    assert [i.name for i in images] == ["docker.io/library/busybox:latest"]
    compressed = tmp_path / "layered.tar.gz"
    compressed.write_bytes(gzip.compress(LAYERED_TAR.read_bytes()))
    assert import_archive(client, compressed)[0].target.digest == LAYERED_CTR_MANIFEST


# --- hostile archives --------------------------------------------------------------------------


def _tar(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _config(diff_ids: list[str]) -> bytes:
    return json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()


def _snapshot_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else b"" for p in directory.rglob("*")
    }


def test_docker_manifest_pointing_outside_is_refused(
    client: Client, daemon: RunningDaemon, tmp_path: Path
) -> None:
    passwd = Path("/etc/passwd").read_bytes()
    config = _config(["sha256:" + hashlib.sha256(passwd).hexdigest()])
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["evil:latest"], "Layers": ["../../etc/passwd"]}]
    ).encode()
    work = tmp_path / "work" / "deeper"
    work.mkdir(parents=True)
    archive = work / "evil.tar"
    archive.write_bytes(_tar([(config_name, config), ("manifest.json", manifest)]))
    before = _snapshot_of(tmp_path / "work"), sorted(os.listdir(tmp_path))
    with pytest.raises(ArchiveError, match=r"'../../etc/passwd' escapes the archive"):
        import_archive(client, archive)
    assert (_snapshot_of(tmp_path / "work"), sorted(os.listdir(tmp_path))) == before
    assert Path("/etc/passwd").read_bytes() == passwd
    _assert_nothing_left(client, daemon)

    # the same trick as a member name inside the tar
    archive.write_bytes(_tar([("../escape", b"x"), ("manifest.json", b"[]")]))
    with pytest.raises(ArchiveError, match="escapes the archive"):
        import_archive(client, archive)
    assert not (work.parent / "escape").exists() and not (tmp_path / "escape").exists()
    _assert_nothing_left(client, daemon)


@pytest.mark.parametrize("victim", ["layer", "config", "manifest"])
def test_oci_blob_not_matching_its_digest_is_refused(
    client: Client, daemon: RunningDaemon, tmp_path: Path, victim: str
) -> None:
    layout = tmp_path / "layout"
    shutil.copytree(BUSYBOX_OCI, layout)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest.split(":")[1]).read_bytes())
    digest = {
        "layer": manifest["layers"][0]["digest"],
        "config": manifest["config"]["digest"],
        "manifest": manifest_digest,
    }[victim]
    blob = layout / "blobs/sha256" / digest.split(":")[1]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=f"{digest}.*does not match|does not match its digest {digest}"):
        import_archive(client, layout, base_name="busybox")
    _assert_nothing_left(client, daemon)
    # an OCI archive made of the same layout fails the same way
    archive = tmp_path / "layout.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(layout, arcname=".")
    with pytest.raises(ArchiveError):
        import_archive(client, archive, base_name="busybox")
    _assert_nothing_left(client, daemon)


def test_hostile_layer_content_creates_no_image(
    client: Client, daemon: RunningDaemon, tmp_path: Path
) -> None:
    layer = _tar([("../../escaped-by-layer", b"owned")])
    config = _config(["sha256:" + hashlib.sha256(layer).hexdigest()])
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["evil:latest"], "Layers": ["l/layer.tar"]}]
    ).encode()
    archive = tmp_path / "evil-layer.tar"
    archive.write_bytes(_tar([("l/layer.tar", layer), (config_name, config), ("manifest.json", manifest)]))
    with pytest.raises(InvalidArgument, match="escaped-by-layer"):
        import_archive(client, archive)
    assert not list(Path("/").glob("escaped-by-layer")) and not list(daemon.root.rglob("escaped-by-layer"))
    _assert_nothing_left(client, daemon)


def test_layer_not_matching_its_diff_id_is_refused(
    client: Client, daemon: RunningDaemon, tmp_path: Path
) -> None:
    layer = _tar([("hello", b"hi")])
    config = _config(["sha256:" + "0" * 64])
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["liar:latest"], "Layers": ["l/layer.tar"]}]
    ).encode()
    archive = tmp_path / "liar.tar"
    archive.write_bytes(_tar([("l/layer.tar", layer), (config_name, config), ("manifest.json", manifest)]))
    with pytest.raises(ArchiveError, match="diff id"):
        import_archive(client, archive)
    _assert_nothing_left(client, daemon)


# --- the lower-level helpers -------------------------------------------------------------------


def test_content_write_read_labels_and_lease(client: Client, daemon: RunningDaemon) -> None:
    data = os.urandom(3 << 20)  # several chunks
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with client.lease() as lease:
        assert client.current_lease == lease
        assert client.content.write(data, size=len(data), expected=digest, labels={"a": "1"}) == (
            digest,
            True,
        )
        assert client.content.write(data, size=len(data), expected=digest) == (digest, False)
        assert b"".join(client.content.read(digest)) == data
        assert b"".join(client.content.read(digest, offset=10, size=5)) == data[10:15]
        info = client.content.update_labels(digest, {"b": "2"})
        assert info.labels == {"a": "1", "b": "2"} and info.size == len(data)
        assert client.content.update_labels(digest, {"a": ""}).labels == {"b": "2"}
        with pytest.raises(DigestMismatch):
            client.content.write(b"other bytes", size=11, expected="sha256:" + "1" * 64)
        with pytest.raises(DigestMismatch):
            client.content.write(b"short", size=10)
        assert _ctr_ok(daemon, "content", "active").splitlines()[1:] == []  # refused writes leave no ingest
    assert client.current_lease == ""
    # the lease was all that held the blob: it went with the lease
    assert not client.content.exists(digest)
    with pytest.raises(NotFound):
        client.content.info(digest)


def test_images_get_list_delete_and_gc(client: Client, daemon: RunningDaemon) -> None:
    busybox = import_archive(client, BUSYBOX_TAR)[0]
    layered = import_archive(client, LAYERED_TAR)[0]
    assert [i.name for i in list_images(client)] == [busybox.name, layered.name]
    assert [i.name for i in list_images(client, "name~=layered")] == [layered.name]
    again = import_archive(client, BUSYBOX_TAR)[0]  # re-import: same record, updated
    assert again.target == busybox.target and again.created_at == busybox.created_at
    delete_image(client, layered.name, sync=True)
    with pytest.raises(NotFound):
        get_image(client, layered.name)
    with pytest.raises(NotFound):
        delete_image(client, layered.name)
    assert sorted(_snapshot_rows(daemon)) == [BUSYBOX_DIFF_ID]  # layered's own layers were collected
    assert not client.content.exists(LAYERED_CONFIG) and client.content.exists(BUSYBOX_CONFIG)
    delete_image(client, busybox.name, sync=True)
    _assert_nothing_left(client, daemon)
    with pytest.raises(AlreadyExists):
        client.call(client.api.namespaces.Create, _namespace_request("default"))


def _namespace_request(name: str) -> namespace_pb2.CreateNamespaceRequest:
    return namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name=name))


def test_reference_names() -> None:
    assert normalize_name("busybox") == "docker.io/library/busybox:latest"
    assert normalize_name("busybox:1.35") == "docker.io/library/busybox:1.35"
    assert normalize_name("user/app") == "docker.io/user/app:latest"
    assert normalize_name("index.docker.io/library/busybox:latest") == "docker.io/library/busybox:latest"
    assert normalize_name("localhost:5000/app:v1") == "localhost:5000/app:v1"
    assert normalize_name("ghcr.io/o/app@sha256:" + "a" * 64) == "ghcr.io/o/app@sha256:" + "a" * 64
    assert familiar_name("docker.io/library/busybox:latest") == "busybox:latest"
    assert familiar_name("docker.io/user/app:1") == "user/app:1"
    assert familiar_name("ghcr.io/o/app:1") == "ghcr.io/o/app:1"
    for bad in ("Busybox", "busybox:", "a//b", "busybox:la test", ""):
        with pytest.raises(InvalidArgument):
            normalize_name(bad)


def test_index_with_other_platforms_and_unnamed_images(
    client: Client, daemon: RunningDaemon, tmp_path: Path
) -> None:
    from containerd.client import Platform

    layout = tmp_path / "multi"
    shutil.copytree(BUSYBOX_OCI, layout)
    for p in layout.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    amd64 = dict(json.loads((layout / "index.json").read_text())["manifests"][0])
    amd64.pop("annotations")
    amd64["platform"] = {"architecture": "amd64", "os": "linux"}
    arm64 = {  # a manifest the layout does not ship, as a single-platform save leaves it
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "ab" * 32,
        "size": 123,
        "platform": {"architecture": "arm64", "os": "linux"},
    }
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [arm64, amd64],
        }
    ).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    (layout / "blobs/sha256" / index_digest.split(":")[1]).write_bytes(index)
    top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": len(index)}
    (layout / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [{**top, "annotations": {"org.opencontainers.image.ref.name": "multi"}}, amd64],
            }
        )
    )

    images = import_archive(client, layout, base_name="example.com/busybox")
    assert [i.name for i in images] == ["example.com/busybox:multi", f"import@{amd64['digest']}"]
    labels = client.content.info(index_digest).labels
    assert labels["containerd.io/gc.ref.content.m.0"] == arm64["digest"]
    assert labels["containerd.io/gc.ref.content.m.1"] == amd64["digest"]
    assert unpack(client, images[0]).top == BUSYBOX_DIFF_ID
    assert all(row[-1] == "true" for row in _check_rows(daemon).values())
    with pytest.raises(NotFound, match="linux/arm64"):
        unpack(client, images[0], platform=Platform("linux", "arm64"))
    with pytest.raises(InvalidArgument, match="is for linux/amd64"):
        unpack(client, images[1], platform=Platform("linux", "arm64"))

    out = tmp_path / "multi.tar"
    export_archive(client, ["example.com/busybox:multi"], out, format="oci")
    blobs = {
        n.rsplit("/", 1)[1] for n in _members(out) if n.startswith("blobs/sha256/") and not n.endswith("/")
    }
    assert arm64["digest"].split(":")[1] not in blobs and index_digest.split(":")[1] in blobs
    reimported = import_archive(client.with_namespace("again"), out)
    assert [(i.name, i.target.digest) for i in reimported] == [("example.com/busybox:multi", index_digest)]


def test_same_client_against_real_containerd(tmp_path: Path) -> None:
    """The library speaks containerd's API, not pycontainerd's quirks: the reference accepts it all."""
    # containerd's sockets must fit in sun_path: a short directory of our own, not tmp_path
    base = Path(tempfile.mkdtemp(prefix=f"ctrd-{os.getpid()}-", dir="/tmp"))
    try:
        real = start_real_containerd(base)
        try:
            _exercise_real_containerd(real, tmp_path)
        finally:
            stop_daemon(real)
    finally:
        leftovers = [
            line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(base))
        ]
        shutil.rmtree(base)
    assert not leftovers, f"mounts left behind: {leftovers}"


def _exercise_real_containerd(real: RunningDaemon, tmp_path: Path) -> None:
    with Client(str(real.address), "default") as client:
        busybox = import_archive(client, BUSYBOX_TAR)[0]
        layered = import_archive(client, LAYERED_OCI_TAR, base_name="layered")[0]
        assert image_manifest(client, busybox)[1].config.digest == BUSYBOX_CONFIG
        assert unpack(client, layered).top == LAYERED_TOP_CHAIN and unpack(client, layered).applied == 0
        rows = _check_rows(real)
        assert {name: (row[2], row[-1]) for name, row in rows.items()} == {
            busybox.name: ("complete", "true"),
            layered.name: ("complete", "true"),
        }
        assert len(_snapshot_rows(real)) == 3  # busybox's layer shared by both
        with _mounted_view(client, LAYERED_TOP_CHAIN, tmp_path / "view") as root:
            assert sorted(os.listdir(root / "data" / "drop")) == ["b", "k-sym"]
        out = tmp_path / "real.tar"
        export_archive(client, [busybox.name, layered.name], out, format="oci")
        back = import_archive(client.with_namespace("back"), out)
        assert [i.target.digest for i in back] == [busybox.target.digest, layered.target.digest]
        assert _ctr_ok(real, "leases", "ls").splitlines()[1:] == []
