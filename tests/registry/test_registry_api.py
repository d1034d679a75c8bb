"""The distribution API as a client sees it: blobs, uploads, manifests, tags, catalog, referrers,
deletes, read-only mode and garbage collection, against a pyregistry subprocess.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx

from tests.registry.registry_harness import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PYREGISTRY,
    Server,
    error_codes,
    push_blob,
    push_image,
    pyregistry,
    sha256,
)


def test_base_and_version_header(registry: Server) -> None:
    with registry.client() as c:
        r = c.get("/v2/")
        assert r.status_code == 200
        assert r.json() == {}
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"


def test_blob_monolithic_get_head_range_delete(registry: Server) -> None:
    data = bytes(range(256)) * 1000
    with registry.client() as c:
        digest = push_blob(c, "library/busybox", data)
        r = c.head(f"/v2/library/busybox/blobs/{digest}")
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["docker-content-digest"] == digest
        assert r.content == b""
        r = c.get(f"/v2/library/busybox/blobs/{digest}")
        assert r.status_code == 200 and r.content == data
        r = c.get(f"/v2/library/busybox/blobs/{digest}", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206
        assert r.content == data[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
        r = c.get(f"/v2/library/busybox/blobs/{digest}", headers={"Range": "bytes=-5"})
        assert r.status_code == 206 and r.content == data[-5:]
        r = c.get(f"/v2/library/busybox/blobs/{digest}", headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416
        assert r.headers["content-range"] == f"bytes */{len(data)}"
        # Another repository does not see the blob until it is pushed or mounted there.
        r = c.get(f"/v2/other/blobs/{digest}")
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UNKNOWN"]
        r = c.delete(f"/v2/library/busybox/blobs/{digest}")
        assert r.status_code == 202
        r = c.head(f"/v2/library/busybox/blobs/{digest}")
        assert r.status_code == 404
        r = c.delete(f"/v2/library/busybox/blobs/{digest}")
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UNKNOWN"]


def test_chunked_resumable_upload(registry: Server) -> None:
    data = b"x" * 100_000 + b"y" * 50_000 + b"z" * 7
    digest = sha256(data)
    with registry.client() as c:
        r = c.post("/v2/a/b/c/blobs/uploads/")
        assert r.status_code == 202
        location, uid = r.headers["location"], r.headers["docker-upload-uuid"]
        assert location.endswith(uid) and r.headers["range"] == "0-0"
        r = c.patch(location, content=data[:100_000], headers={"Content-Range": "0-99999"})
        assert r.status_code == 202 and r.headers["range"] == "0-99999"
        # Resumable: the status says how far the upload got.
        r = c.get(location)
        assert r.status_code == 204
        assert r.headers["range"] == "0-99999" and r.headers["docker-upload-uuid"] == uid
        # A chunk without Content-Range (streamed, as docker's pusher does) appends too.
        r = c.patch(location, content=data[100_000:150_000])
        assert r.status_code == 202 and r.headers["range"] == "0-149999"
        r = c.put(location, params={"digest": digest}, content=data[150_000:])
        assert r.status_code == 201
        assert r.headers["docker-content-digest"] == digest
        assert r.headers["location"] == f"/v2/a/b/c/blobs/{digest}"
        assert c.get(f"/v2/a/b/c/blobs/{digest}").content == data
        # The session is over.
        r = c.get(location)
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    assert not any(f.startswith("uploads/") for f in registry.files())


def test_upload_survives_restart(tmp_path: Path) -> None:
    """A session's staging data is on disk: after a restart the upload resumes and verifies."""
    data = b"resume me " * 10_000
    with pyregistry(tmp_path) as server, server.client() as c:
        location = c.post("/v2/r/blobs/uploads/").headers["location"]
        c.patch(location, content=data[:60_000], headers={"Content-Range": "0-59999"})
    with pyregistry(tmp_path) as server, server.client() as c:
        r = c.get(location)
        assert r.status_code == 204 and r.headers["range"] == "0-59999"
        r = c.put(location, params={"digest": sha256(data)}, content=data[60_000:])
        assert r.status_code == 201, r.text
        assert c.get(f"/v2/r/blobs/{sha256(data)}").content == data


def test_cancel_upload(registry: Server) -> None:
    with registry.client() as c:
        location = c.post("/v2/r/blobs/uploads/").headers["location"]
        c.patch(location, content=b"abc")
        r = c.delete(location)
        assert r.status_code == 204
        r = c.get(location)
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
        r = c.put(location, params={"digest": sha256(b"abc")})
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    assert not any(f.startswith("uploads/") for f in registry.files())


def test_cross_repository_mount_and_dedup(registry: Server) -> None:
    data = b"shared layer" * 1000
    with registry.client() as c:
        digest = push_blob(c, "one", data)
        r = c.post("/v2/two/blobs/uploads/", params={"mount": digest, "from": "one"})
        assert r.status_code == 201
        assert r.headers["docker-content-digest"] == digest
        assert c.get(f"/v2/two/blobs/{digest}").content == data
        # Pushing the same content into a third repository keeps one copy on disk.
        push_blob(c, "three", data)
        # A blob the source does not have: an ordinary upload session instead.
        r = c.post("/v2/two/blobs/uploads/", params={"mount": sha256(b"nope"), "from": "one"})
        assert r.status_code == 202 and "docker-upload-uuid" in r.headers
    blob_files = [f for f in registry.files() if f.startswith("blobs/")]
    assert blob_files == [f"blobs/sha256/{digest[7:9]}/{digest[7:]}"]


def test_manifest_kinds_round_trip(registry: Server) -> None:
    with registry.client() as c:
        oci, oci_digest = push_image(c, "kinds", "oci")
        docker, docker_digest = push_image(c, "kinds", "docker", media_type=DOCKER_MANIFEST)
        for ref, body, digest, media_type in (
            ("oci", oci, oci_digest, OCI_MANIFEST),
            ("docker", docker, docker_digest, DOCKER_MANIFEST),
        ):
            for by in (ref, digest):
                r = c.get(f"/v2/kinds/manifests/{by}")
                assert r.status_code == 200 and r.content == body
                assert r.headers["content-type"] == media_type
                assert r.headers["docker-content-digest"] == digest
                r = c.head(f"/v2/kinds/manifests/{by}")
                assert r.status_code == 200 and r.headers["content-length"] == str(len(body))
        platform = {"architecture": "amd64", "os": "linux"}
        for media_type, child_type, tag in (
            (OCI_INDEX, OCI_MANIFEST, "index"),
            (DOCKER_LIST, DOCKER_MANIFEST, "list"),
        ):
            child_body, child_digest = (
                (oci, oci_digest) if child_type == OCI_MANIFEST else (docker, docker_digest)
            )
            index = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": media_type,
                    "manifests": [
                        {
                            "mediaType": child_type,
                            "digest": child_digest,
                            "size": len(child_body),
                            "platform": platform,
                        }
                    ],
                }
            ).encode()
            r = c.put(f"/v2/kinds/manifests/{tag}", content=index, headers={"Content-Type": media_type})
            assert r.status_code == 201, r.text
            assert r.headers["docker-content-digest"] == sha256(index)
            r = c.get(f"/v2/kinds/manifests/{tag}")
            assert r.content == index and r.headers["content-type"] == media_type


def test_manifest_delete_by_digest_and_by_tag(registry: Server) -> None:
    with registry.client() as c:
        _, digest = push_image(c, "del", "a")
        r = c.put(
            "/v2/del/manifests/b",
            content=c.get("/v2/del/manifests/a").content,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201
        r = c.delete("/v2/del/manifests/a")
        assert r.status_code == 202
        assert c.get("/v2/del/tags/list").json()["tags"] == ["b"]
        assert c.get(f"/v2/del/manifests/{digest}").status_code == 200
        r = c.delete(f"/v2/del/manifests/{digest}")
        assert r.status_code == 202
        r = c.get("/v2/del/manifests/b")
        assert r.status_code == 404 and error_codes(r) == ["MANIFEST_UNKNOWN"]
        r = c.delete(f"/v2/del/manifests/{digest}")
        assert r.status_code == 404 and error_codes(r) == ["MANIFEST_UNKNOWN"]


def test_tags_and_catalog_pagination(registry: Server) -> None:
    with registry.client() as c:
        body, _ = push_image(c, "page/one", "t0")
        for tag in ("t1", "t2", "t3", "t4"):
            assert (
                c.put(
                    f"/v2/page/one/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
                ).status_code
                == 201
            )
        push_image(c, "page/two", "x")
        push_image(c, "alpha", "x")
        assert c.get("/v2/page/one/tags/list").json() == {
            "name": "page/one",
            "tags": ["t0", "t1", "t2", "t3", "t4"],
        }
        r = c.get("/v2/page/one/tags/list", params={"n": 2})
        assert r.json()["tags"] == ["t0", "t1"]
        assert r.headers["link"] == '</v2/page/one/tags/list?last=t1&n=2>; rel="next"'
        r = c.get(r.headers["link"].split(">")[0][1:])
        assert r.json()["tags"] == ["t2", "t3"]
        r = c.get("/v2/page/one/tags/list", params={"n": 2, "last": "t3"})
        assert r.json()["tags"] == ["t4"] and "link" not in r.headers
        r = c.get("/v2/nothing/tags/list")
        assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"]
        assert c.get("/v2/_catalog").json() == {"repositories": ["alpha", "page/one", "page/two"]}
        r = c.get("/v2/_catalog", params={"n": 1})
        assert r.json() == {"repositories": ["alpha"]}
        assert r.headers["link"] == '</v2/_catalog?last=alpha&n=1>; rel="next"'
        assert c.get("/v2/_catalog", params={"n": 5, "last": "alpha"}).json() == {
            "repositories": ["page/one", "page/two"]
        }


def test_referrers(registry: Server) -> None:
    with registry.client() as c:
        subject_body, subject = push_image(c, "ref", "app")
        subject_desc = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(subject_body)}
        empty = b"{}"
        push_blob(c, "ref", empty)
        sbom = b'{"sbom": true}'
        push_blob(c, "ref", sbom)
        artifacts = {}
        for artifact_type, blob in (("application/spdx+json", sbom), ("application/vnd.example.sig", empty)):
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {
                    "mediaType": "application/vnd.oci.empty.v1+json",
                    "digest": sha256(empty),
                    "size": 2,
                },
                "layers": [
                    {"mediaType": "application/octet-stream", "digest": sha256(blob), "size": len(blob)}
                ],
                "subject": subject_desc,
                "annotations": {"org.example.kind": artifact_type},
            }
            body = json.dumps(manifest).encode()
            r = c.put(
                f"/v2/ref/manifests/{sha256(body)}", content=body, headers={"Content-Type": OCI_MANIFEST}
            )
            assert r.status_code == 201, r.text
            assert r.headers["oci-subject"] == subject
            artifacts[artifact_type] = (sha256(body), len(body))
        r = c.get(f"/v2/ref/referrers/{subject}")
        assert r.status_code == 200
        assert r.headers["content-type"] == OCI_INDEX
        index = r.json()
        assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
        got = {
            m["artifactType"]: (m["digest"], m["size"], m["annotations"]["org.example.kind"])
            for m in index["manifests"]
        }
        assert got == {t: (d, s, t) for t, (d, s) in artifacts.items()}
        r = c.get(f"/v2/ref/referrers/{subject}", params={"artifactType": "application/spdx+json"})
        assert r.headers["oci-filters-applied"] == "artifactType"
        assert [m["digest"] for m in r.json()["manifests"]] == [artifacts["application/spdx+json"][0]]
        # Deleting a referrer removes it from the list; an unknown subject has an empty list.
        assert c.delete(f"/v2/ref/manifests/{artifacts['application/vnd.example.sig'][0]}").status_code == 202
        assert len(c.get(f"/v2/ref/referrers/{subject}").json()["manifests"]) == 1
        r = c.get(f"/v2/ref/referrers/{sha256(b'unknown')}")
        assert r.status_code == 200 and r.json()["manifests"] == []
        r = c.get("/v2/ref/referrers/sha256:abc")
        assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]


def test_read_only_mode(tmp_path: Path) -> None:
    with pyregistry(tmp_path) as server, server.client() as c:
        _, digest = push_image(c, "ro", "v1")
    with pyregistry(tmp_path, "--read-only") as server, server.client() as c:
        assert c.get("/v2/ro/manifests/v1").status_code == 200
        before = server.files()
        for method, path in (
            ("POST", "/v2/ro/blobs/uploads/"),
            ("PUT", "/v2/ro/manifests/v2"),
            ("DELETE", f"/v2/ro/manifests/{digest}"),
            ("DELETE", f"/v2/ro/blobs/{digest}"),
        ):
            r = c.request(method, path, content=b"{}")
            assert r.status_code == 405, (method, path)
            assert error_codes(r) == ["UNSUPPORTED"]
            assert r.headers["allow"] == "GET, HEAD"
        assert server.files() == before


def test_gc_removes_unreferenced_blobs(tmp_path: Path) -> None:
    with pyregistry(tmp_path) as server, server.client() as c:
        _, kept = push_image(c, "gc/keep", "v1", layers=[b"kept layer"])
        _, untagged = push_image(c, "gc/drop", "v1", layers=[b"untagged layer"])
        c.delete("/v2/gc/drop/manifests/v1")  # the tag only: the manifest stays, untagged
        orphan = push_blob(c, "gc/keep", b"orphan blob")
        _, deleted = push_image(c, "gc/gone", "v1", layers=[b"deleted layer"])
        c.delete(f"/v2/gc/gone/manifests/{deleted}")
    root = str(server.root)

    def gc(*args: str) -> str:
        proc = subprocess.run(
            [str(PYREGISTRY), "gc", "--root", root, *args], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def blobs() -> set[str]:
        return {"sha256:" + p.name for p in (server.root / "blobs").rglob("*") if p.is_file()}

    everything = blobs()
    out = gc("--dry-run")
    assert f"blob eligible for deletion: {orphan}" in out and blobs() == everything
    gc()
    left = blobs()
    assert orphan not in left and deleted not in left and sha256(b"deleted layer") not in left
    assert {kept, untagged, sha256(b"kept layer"), sha256(b"untagged layer")} <= left
    gc("--delete-untagged")
    left = blobs()
    assert untagged not in left and sha256(b"untagged layer") not in left
    assert {kept, sha256(b"kept layer")} <= left
    # The kept image is still served whole.
    with pyregistry(tmp_path) as server, server.client() as c:
        assert c.get("/v2/gc/keep/manifests/v1").status_code == 200
        assert c.get(f"/v2/gc/keep/blobs/{sha256(b'kept layer')}").content == b"kept layer"
        r = c.get(f"/v2/gc/keep/blobs/{orphan}")
        assert r.status_code == 404


def test_command_line_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(PYREGISTRY), *args], capture_output=True, text=True, timeout=60)

    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[storage]\nrootdir = '/x'\n")
    cases = [
        (["serve", "--addr", "nonsense"], 2, "invalid address 'nonsense'"),
        (["serve", "--tls-cert", "/nonexistent.pem"], 2, "TLS needs both a certificate and a key"),
        (["serve", "--config", str(bad_config)], 2, "unknown configuration key 'storage.rootdir'"),
        (["serve", "--config", str(tmp_path / "missing.toml")], 2, "cannot read configuration"),
        (
            [
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--root",
                str(tmp_path / "r"),
                "--htpasswd",
                str(tmp_path / "none"),
            ],
            1,
            "cannot read htpasswd file",
        ),
        (
            [
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--root",
                str(tmp_path / "r"),
                "--tls-cert",
                str(bad_config),
                "--tls-key",
                str(bad_config),
            ],
            1,
            "TLS: cannot load certificate",
        ),
        (["serve", "--bogus"], 2, "unrecognized arguments: --bogus"),
        (["gc"], 2, "gc needs --root"),
        ([], 2, "a command is required"),
    ]
    for args, code, message in cases:
        proc = run(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_address_in_use_is_an_error(registry: Server, tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(PYREGISTRY), "serve", "--addr", registry.host, "--root", str(tmp_path / "other")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"listen tcp {registry.host}: Address already in use" in proc.stderr
    with httpx.Client() as c:
        assert c.get(f"{registry.url}/v2/").status_code == 200
