"""The same requests to pyregistry and to the reference registry (Debian's docker-registry,
docker/distribution 2.8): statuses, error codes and headers must agree.

Deliberate differences, where distribution 2.8 predates or departs from the OCI distribution
spec 1.1 (each is asserted below, so a change on either side shows up):

- invalid repository name: distribution's router answers a plain-text 404; pyregistry answers
  the spec's 400 NAME_INVALID.
- unknown upload session: distribution says 404 BLOB_UPLOAD_INVALID (its `_state` token); the
  spec and pyregistry say 404 BLOB_UPLOAD_UNKNOWN.
- a PATCH whose Content-Range does not start at the upload's offset: distribution ignores the
  header and appends (202); the spec requires 416, which pyregistry answers, appending nothing.
- monolithic upload (POST ?digest= with the body): distribution ignores the digest and opens a
  session (202); pyregistry completes the upload (201), as the spec describes.
- a manifest over 4 MiB: distribution 400 MANIFEST_INVALID; pyregistry 413 (the spec's
  "Payload Too Large") with the same MANIFEST_INVALID code.
- read-only mode: distribution answers writes with a plain-text 405 ("Method not allowed") and
  `Allow: GET, HEAD`; pyregistry sends the same status and Allow header with the spec's JSON
  body, code UNSUPPORTED.
- a failed closing PUT (digest mismatch) ends pyregistry's session and deletes its data (nothing
  of a refused blob is kept); distribution keeps the session open.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import USERS, make_htpasswd
from tests.registry.registry_harness import (
    OCI_MANIFEST,
    Server,
    image_manifest,
    pyregistry,
    reference_registry,
    sha256,
)

ZERO = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    ours_tmp, ref_tmp = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("ref")
    with pyregistry(ours_tmp) as ours, reference_registry(ref_tmp) as ref:
        yield ours, ref


def _outcome(r: httpx.Response) -> tuple[int, list[str] | str]:
    if r.headers.get("content-type", "").startswith("application/json") and r.content:
        body = r.json()
        if isinstance(body, dict) and "errors" in body:
            return r.status_code, [e["code"] for e in body["errors"]]
    return r.status_code, r.text.strip()[:40]


def _upload(c: httpx.Client, repo: str) -> str:
    r = c.post(f"/v2/{repo}/blobs/uploads/")
    assert r.status_code == 202
    return str(r.headers["location"])


def _put_digest_mismatch(c: httpx.Client) -> httpx.Response:
    location = _upload(c, "cmp/x")
    location = c.patch(
        location, content=b"hello", headers={"Content-Type": "application/octet-stream"}
    ).headers["location"]
    sep = "&" if "?" in location else "?"
    return c.put(f"{location}{sep}digest={ZERO}")


def _manifest_missing_blob(c: httpx.Client) -> httpx.Response:
    body = json.dumps(image_manifest(b"no config", [b"no layer"])).encode()
    return c.put("/v2/cmp/x/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST})


SAME: dict[str, Callable[[httpx.Client], httpx.Response]] = {
    "base": lambda c: c.get("/v2/"),
    "manifest unknown": lambda c: c.get("/v2/cmp/nothing/manifests/latest"),
    "manifest unknown by digest": lambda c: c.get(f"/v2/cmp/nothing/manifests/{ZERO}"),
    "tags of unknown repository": lambda c: c.get("/v2/cmp/nothing/tags/list"),
    "blob unknown": lambda c: c.get(f"/v2/cmp/x/blobs/{ZERO}"),
    "blob unknown HEAD": lambda c: c.head(f"/v2/cmp/x/blobs/{ZERO}"),
    "blob delete unknown": lambda c: c.delete(f"/v2/cmp/x/blobs/{ZERO}"),
    "malformed digest": lambda c: c.get("/v2/cmp/x/blobs/sha256:000"),
    "unknown digest algorithm": lambda c: c.get("/v2/cmp/x/blobs/md5:000"),
    "start upload": lambda c: c.post("/v2/cmp/x/blobs/uploads/"),
    "closing PUT digest mismatch": _put_digest_mismatch,
    "manifest not JSON": lambda c: c.put(
        "/v2/cmp/x/manifests/v1", content=b"notjson", headers={"Content-Type": OCI_MANIFEST}
    ),
    "manifest missing blobs": _manifest_missing_blob,
    "catalog": lambda c: c.get("/v2/_catalog"),
}


@pytest.mark.parametrize("case", list(SAME))
def test_same_answer(pair: tuple[Server, Server], case: str) -> None:
    ours, ref = pair
    with ours.client() as oc, ref.client() as rc:
        mine, theirs = SAME[case](oc), SAME[case](rc)
    assert _outcome(mine) == _outcome(theirs)
    assert (
        mine.headers["docker-distribution-api-version"] == theirs.headers["docker-distribution-api-version"]
    )
    for header in ("docker-upload-uuid", "range"):
        assert (header in mine.headers) == (header in theirs.headers), header
    if theirs.status_code == 202:
        assert mine.headers["range"] == theirs.headers["range"] == "0-0"


def test_deliberate_differences(pair: tuple[Server, Server]) -> None:
    ours, ref = pair
    with ours.client() as oc, ref.client() as rc:
        # Invalid repository name.
        assert _outcome(oc.get("/v2/INVALID/manifests/latest")) == (400, ["NAME_INVALID"])
        assert _outcome(rc.get("/v2/INVALID/manifests/latest")) == (404, "404 page not found")
        # Unknown upload session.
        uid = "5b2c3078-6c8d-43d3-8805-ca794f842f9d"
        assert _outcome(oc.get(f"/v2/cmp/x/blobs/uploads/{uid}")) == (404, ["BLOB_UPLOAD_UNKNOWN"])
        assert _outcome(rc.get(f"/v2/cmp/x/blobs/uploads/{uid}")) == (404, ["BLOB_UPLOAD_INVALID"])
        # Out-of-order chunk.
        for c, want in ((oc, 416), (rc, 202)):
            location = _upload(c, "cmp/range")
            location = c.patch(
                location, content=b"hello", headers={"Content-Type": "application/octet-stream"}
            ).headers["location"]
            r = c.patch(
                location,
                content=b"world",
                headers={"Content-Range": "10-14", "Content-Type": "application/octet-stream"},
            )
            assert r.status_code == want
        # Monolithic upload.
        digest = sha256(b"mono")
        for c, want in ((oc, 201), (rc, 202)):
            r = c.post("/v2/cmp/mono/blobs/uploads/", params={"digest": digest}, content=b"mono")
            assert r.status_code == want
        # Oversized manifest.
        big = json.dumps({"schemaVersion": 2, "pad": "x" * (5 << 20)}).encode()
        for c, want in ((oc, 413), (rc, 400)):
            r = c.put("/v2/cmp/big/manifests/v1", content=big, headers={"Content-Type": OCI_MANIFEST})
            assert _outcome(r) == (want, ["MANIFEST_INVALID"])


def test_basic_auth_and_read_only_agree(tmp_path: Path) -> None:
    passwd = make_htpasswd(tmp_path)
    config = tmp_path / "auth.toml"
    config.write_text(f'[auth.htpasswd]\nrealm = "basic-realm"\npath = "{passwd}"\n')
    extra = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {passwd}\n"
    (tmp_path / "o").mkdir()
    (tmp_path / "r").mkdir()
    with (
        pyregistry(tmp_path / "o", "--config", str(config)) as ours,
        reference_registry(tmp_path / "r", extra) as ref,
    ):
        for server in (ours, ref):
            with server.client() as c:
                for auth in (None, httpx.BasicAuth("alice", "wrong")):
                    r = c.get("/v2/", auth=auth)
                    assert _outcome(r) == (401, ["UNAUTHORIZED"])
                    assert r.headers["www-authenticate"] == 'Basic realm="basic-realm"'
                    assert r.json()["errors"][0]["message"] == "authentication required"
                assert c.get("/v2/", auth=("alice", USERS["alice"])).status_code == 200
    (tmp_path / "o2").mkdir()
    (tmp_path / "r2").mkdir()
    with (
        pyregistry(tmp_path / "o2", "--read-only") as ours,
        reference_registry(tmp_path / "r2", read_only=True) as ref,
    ):
        for server in (ours, ref):
            with server.client() as c:
                for method, path in (
                    ("POST", "/v2/cmp/x/blobs/uploads/"),
                    ("DELETE", f"/v2/cmp/x/blobs/{ZERO}"),
                ):
                    r = c.request(method, path)
                    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
                    assert _outcome(r) == (
                        (405, ["UNSUPPORTED"]) if server is ours else (405, "Method not allowed")
                    )
