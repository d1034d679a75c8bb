"""The repository's foundation: console scripts, the default spec, the default image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from runtime.spec_default import default_spec

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BUILDER = REPO / "scripts" / "build_default_image.py"

CONSOLE_SCRIPTS = ["pydocker", "pydockerd", "pycontainerd", "pycontainerd-shim", "pyrunc", "pyregistry"]


@pytest.mark.parametrize("name", CONSOLE_SCRIPTS)
def test_console_script_installed(name: str) -> None:
    script = VENV_BIN / name
    assert script.is_file(), f"{script} missing: run scripts/setup"
    assert os.access(script, os.X_OK)


def _runc_spec(tmp_path: Path, rootless: bool) -> dict[str, Any]:
    cmd = ["runc", "spec"] + (["--rootless"] if rootless else [])
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    spec: dict[str, Any] = json.loads((tmp_path / "config.json").read_text())
    return spec


def _key_paths(obj: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON document, list elements addressed by index."""
    paths: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            paths.add(f"{prefix}/{k}")
            paths |= _key_paths(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            paths |= _key_paths(v, f"{prefix}[{i}]")
    return paths


@pytest.mark.parametrize("rootless", [False, True], ids=["rootful", "rootless"])
def test_default_spec_matches_runc_spec(tmp_path: Path, rootless: bool) -> None:
    theirs = _runc_spec(tmp_path, rootless)
    ours = default_spec(rootless, host_uid=os.geteuid(), host_gid=os.getegid())
    assert _key_paths(ours) == _key_paths(theirs)
    assert ours["hostname"] == "pyrunc"
    theirs["hostname"] = ours["hostname"]
    assert ours == theirs


def test_default_spec_returns_independent_copies() -> None:
    a = default_spec()
    a["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    a["mounts"].clear()
    b = default_spec()
    assert "CAP_SYS_ADMIN" not in b["process"]["capabilities"]["bounding"]
    assert len(b["mounts"]) == 7


def _build(out: Path, *extra: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(BUILDER), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _manifest_digest(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    digest: str = entry["digest"]
    return digest


def _blob(layout: Path, digest: str) -> bytes:
    algo, hexdigest = digest.split(":", 1)
    return (layout / "blobs" / algo / hexdigest).read_bytes()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("image")
    _build(out)
    return out


def test_image_build_is_deterministic(built: Path, tmp_path: Path) -> None:
    _build(tmp_path)
    first, second = built / "busybox-oci", tmp_path / "busybox-oci"
    assert _manifest_digest(first) == _manifest_digest(second)
    blobs_first = sorted(p.name for p in (first / "blobs" / "sha256").iterdir())
    blobs_second = sorted(p.name for p in (second / "blobs" / "sha256").iterdir())
    assert blobs_first == blobs_second and len(blobs_first) == 3


def test_image_build_skips_when_up_to_date_and_rebuilds_on_force(tmp_path: Path) -> None:
    assert "built" in _build(tmp_path)
    digest = _manifest_digest(tmp_path / "busybox-oci")
    marker = tmp_path / "busybox-bundle" / "rootfs" / "tmp" / "marker"
    marker.write_text("kept while up to date")
    assert "up to date" in _build(tmp_path)
    assert marker.exists()
    assert "built" in _build(tmp_path, "--force")
    assert not marker.exists()
    assert _manifest_digest(tmp_path / "busybox-oci") == digest


def test_rootfs_layout(built: Path) -> None:
    rootfs = built / "busybox-bundle" / "rootfs"
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert (rootfs / "bin" / "sh").resolve() == (rootfs / "bin" / "busybox").resolve()
    assert os.readlink(rootfs / "usr" / "bin" / "env") == "../../bin/busybox"
    assert "root:x:0:0:" in (rootfs / "etc" / "passwd").read_text()
    assert "nobody:x:65534:65534:" in (rootfs / "etc" / "passwd").read_text()
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    for d in ("dev", "proc", "sys", "root", "home", "var", "etc"):
        assert (rootfs / d).is_dir(), d
    applets = subprocess.run(
        [str(rootfs / "bin" / "busybox"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    in_bin = {p.name for p in (rootfs / "bin").iterdir() if p.is_symlink()}
    assert set(applets) - {"linuxrc", "busybox"} == in_bin
    assert all(os.readlink(rootfs / "bin" / name) == "busybox" for name in in_bin)
    assert os.readlink(rootfs / "sbin" / "ip") == "../bin/busybox"


def test_bundle_config(built: Path) -> None:
    config = json.loads((built / "busybox-bundle" / "config.json").read_text())
    assert config["process"]["terminal"] is False
    assert config["process"]["args"] == ["sh"]
    assert config["root"] == {"path": "rootfs", "readonly": True}


def test_oci_layout_contents_match_rootfs(built: Path) -> None:
    layout = built / "busybox-oci"
    index = json.loads((layout / "index.json").read_text())
    annotations = index["manifests"][0]["annotations"]
    assert annotations["org.opencontainers.image.ref.name"] == "latest"
    assert annotations["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    manifest = json.loads(_blob(layout, index["manifests"][0]["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    assert config["config"]["Cmd"] == ["sh"]
    assert config["os"] == "linux" and config["architecture"] == "amd64"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"

    rootfs = built / "busybox-bundle" / "rootfs"
    layer_path = layout / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
    with tarfile.open(layer_path, "r:gz") as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    on_disk = {str(p.relative_to(rootfs)) for p in rootfs.rglob("*")}
    assert names == on_disk
    for m in members:
        st = os.lstat(rootfs / m.name)
        assert (m.uid, m.gid) == (0, 0)
        if m.issym():
            assert os.readlink(rootfs / m.name) == m.linkname
        else:
            assert m.mode == st.st_mode & 0o7777, m.name


def test_skopeo_accepts_layout(built: Path, tmp_path: Path) -> None:
    # skopeo checks every blob against its digest while copying.
    dest = tmp_path / "copy"
    proc = subprocess.run(
        ["skopeo", "copy", f"oci:{built / 'busybox-oci'}:latest", f"dir:{dest}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (dest / "manifest.json").is_file()


def test_default_bundle_runs_under_runc(built: Path, tmp_path: Path) -> None:
    """The reference runtime accepts our bundle: a check of the image, not of pyrunc."""
    config = json.loads((built / "busybox-bundle" / "config.json").read_text())
    config["root"]["path"] = str(built / "busybox-bundle" / "rootfs")
    config["process"]["args"] = ["sh", "-c", "echo hello; cat /etc/hostname"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    cid = f"foundation-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    root = str(tmp_path / "runc-root")  # never the machine's /run/runc
    try:
        proc = subprocess.run(
            ["runc", "--root", root, "run", "--bundle", str(tmp_path), cid],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["hello", "pyrunc"]
