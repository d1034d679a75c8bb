"""skopeo (the containers/image registry client) pushes every fixture image to pyregistry and
pulls it back, over plain HTTP, TLS, htpasswd Basic auth and bearer tokens; every digest must
come back unchanged and every pulled byte must hash to its digest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import USERS, make_certs, make_htpasswd
from tests.registry.registry_harness import IMAGES, Server, pyregistry, skopeo

FIXTURES = {
    "busybox-docker": f"docker-archive:{IMAGES / 'busybox.tar'}",
    "layered-docker": f"docker-archive:{IMAGES / 'layered.tar'}",
    "busybox-oci": f"oci:{IMAGES / 'busybox-oci'}:latest",
    "layered-ociarchive": f"oci-archive:{IMAGES / 'layered-oci.tar'}",
}
MODES = ["plain", "tls", "basic", "token"]


class Mode:
    """One way of reaching the registry: the server plus the skopeo flags it needs."""

    def __init__(self, name: str, server: Server, flags: dict[str, list[str]]) -> None:
        self.name = name
        self.server = server
        self.flags = flags  # "dest", "src", "inspect"

    def auth(self, client: httpx.Client, scope: str) -> dict[str, str]:
        """The Authorization header this mode needs for `scope`."""
        basic = httpx.BasicAuth("alice", USERS["alice"])
        if self.name == "basic":
            return {"Authorization": basic._auth_header}
        if self.name == "token":
            r = client.get("/token", params={"service": "pyregistry", "scope": scope}, auth=basic)
            return {"Authorization": f"Bearer {r.json()['token']}"}
        return {}


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mode]:
    tmp = tmp_path_factory.mktemp(request.param)
    creds = f"alice:{USERS['alice']}"
    if request.param == "plain":
        args: list[str] = []
        flags = {
            "dest": ["--dest-tls-verify=false"],
            "src": ["--src-tls-verify=false"],
            "inspect": ["--tls-verify=false"],
        }
    elif request.param == "tls":
        ca_dir, crt, key = make_certs(tmp)
        args = ["--tls-cert", str(crt), "--tls-key", str(key)]
        flags = {
            "dest": [f"--dest-cert-dir={ca_dir}"],
            "src": [f"--src-cert-dir={ca_dir}"],
            "inspect": [f"--cert-dir={ca_dir}"],
        }
    else:
        args = ["--htpasswd", str(make_htpasswd(tmp))] + (["--token"] if request.param == "token" else [])
        flags = {
            "dest": ["--dest-tls-verify=false", f"--dest-creds={creds}"],
            "src": ["--src-tls-verify=false", f"--src-creds={creds}"],
            "inspect": ["--tls-verify=false", f"--creds={creds}"],
        }
    verify = str(ca_dir / "ca.crt") if request.param == "tls" else False
    with pyregistry(tmp, *args, verify=verify) as server:
        yield Mode(request.param, server, flags)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_copy_in_and_out_keeps_digests(mode: Mode, fixture: str, tmp_path: Path) -> None:
    src = FIXTURES[fixture]
    ref = f"docker://{mode.server.host}/test/{fixture}:v1"
    _ok(skopeo("copy", "-q", *mode.flags["dest"], src, ref))

    raw = _ok(skopeo("inspect", "--raw", *mode.flags["inspect"], ref)).encode()
    manifest = json.loads(raw)
    digest = _sha256(raw)
    src_config = _ok(skopeo("inspect", "--config", "--raw", src)).encode()
    # The config is never rewritten; an OCI source's manifest reaches the registry byte for byte
    # (a docker-archive holds uncompressed layers, which skopeo compresses on the way).
    assert manifest["config"]["digest"] == _sha256(src_config)
    if fixture.endswith(("oci", "ociarchive")):
        assert digest == _sha256(_ok(skopeo("inspect", "--raw", src)).encode())

    # Back out to a dir: the same manifest bytes, and every blob hashes to its name.
    out = tmp_path / "out"
    _ok(skopeo("copy", "-q", *mode.flags["src"], ref, f"dir:{out}"))
    assert (out / "manifest.json").read_bytes() == raw
    blobs = {p.name: p.read_bytes() for p in out.iterdir() if p.name not in ("manifest.json", "version")}
    assert {f"sha256:{name}" for name in blobs} == {manifest["config"]["digest"]} | {
        layer["digest"] for layer in manifest["layers"]
    }
    for name, data in blobs.items():
        assert hashlib.sha256(data).hexdigest() == name
    # The layers' uncompressed content is what the image config says it is.
    config = json.loads(blobs[manifest["config"]["digest"].split(":")[1]])
    diff_ids = [
        _sha256(gzip.decompress(blobs[layer["digest"].split(":")[1]])) for layer in manifest["layers"]
    ]
    assert diff_ids == config["rootfs"]["diff_ids"]

    # And to an OCI layout: an OCI manifest comes out under the same digest.
    if fixture.endswith(("oci", "ociarchive")):
        layout = tmp_path / "layout"
        _ok(skopeo("copy", "-q", *mode.flags["src"], ref, f"oci:{layout}:out"))
        index = json.loads((layout / "index.json").read_text())
        assert index["manifests"][0]["digest"] == digest

    # What a client sees in the headers of the manifest.
    with mode.server.client() as c:
        r = c.head(
            f"/v2/test/{fixture}/manifests/v1",
            headers={"Accept": manifest["mediaType"], **mode.auth(c, f"repository:test/{fixture}:pull")},
        )
        assert r.status_code == 200
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["content-type"] == manifest["mediaType"]
        assert int(r.headers["content-length"]) == len(raw)


def test_inspect_and_list_tags(mode: Mode) -> None:
    base = f"docker://{mode.server.host}/inspect/layered"
    for tag in ("one", "two", "three"):
        _ok(skopeo("copy", "-q", *mode.flags["dest"], FIXTURES["layered-docker"], f"{base}:{tag}"))
    info = json.loads(_ok(skopeo("inspect", *mode.flags["inspect"], f"{base}:two")))
    assert info["Name"] == f"{mode.server.host}/inspect/layered"
    assert info["Labels"]["purpose"] == "whiteouts, opaque dirs, links, config"
    assert len(info["Layers"]) == 3
    assert sorted(info["RepoTags"]) == ["one", "three", "two"]
    tags = json.loads(_ok(skopeo("list-tags", *mode.flags["inspect"], base)))
    assert tags == {"Repository": f"{mode.server.host}/inspect/layered", "Tags": ["one", "three", "two"]}
