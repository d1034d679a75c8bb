"""Hostile input, one test each: the spec's error, nothing stored, the registry still serving.

"Nothing stored" is checked on disk: the files under blobs/ and uploads/ are the same before
and after the request (no blob, no partial staging file left behind).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.registry.registry_harness import (
    OCI_INDEX,
    OCI_MANIFEST,
    Server,
    error_codes,
    image_manifest,
    push_blob,
    push_image,
    pyregistry,
    raw_request,
    sha256,
)


@contextmanager
def nothing_stored(server: Server) -> Iterator[None]:
    before = server.blob_files()
    yield
    assert server.blob_files() == before
    with httpx.Client(timeout=30) as c:
        assert c.get(f"{server.url}/v2/").status_code == 200, "the registry stopped serving"


def test_blob_digest_mismatch_monolithic(registry: Server) -> None:
    with registry.client() as c, nothing_stored(registry):
        r = c.post("/v2/h/blobs/uploads/", params={"digest": sha256(b"claimed")}, content=b"actual")
        assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
        assert c.head(f"/v2/h/blobs/{sha256(b'claimed')}").status_code == 404
        assert c.head(f"/v2/h/blobs/{sha256(b'actual')}").status_code == 404


def test_blob_digest_mismatch_chunked(registry: Server) -> None:
    with registry.client() as c:
        location = c.post("/v2/h/blobs/uploads/").headers["location"]
        with nothing_stored(registry):
            pass  # the empty session itself is the baseline
        before = registry.blob_files()
        c.patch(location, content=b"part one, ")
        r = c.put(location, params={"digest": sha256(b"something else")}, content=b"part two")
        assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
        # The failed close ended the session: its staging data is gone with it.
        assert registry.blob_files() < before
        assert not any(f.startswith("blobs/") for f in registry.blob_files())
        assert c.get(location).status_code == 404


def test_manifest_digest_mismatch(registry: Server) -> None:
    with registry.client() as c:
        body, _ = push_image(c, "h", "v1")
        other = body.replace(b"layer two", b"layer two")  # same bytes, another digest claimed
        with nothing_stored(registry):
            r = c.put(
                f"/v2/h/manifests/{sha256(b'not this')}",
                content=other,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
            assert c.get(f"/v2/h/manifests/{sha256(b'not this')}").status_code == 404


def test_manifest_naming_missing_blob(registry: Server) -> None:
    with registry.client() as c:
        config = b'{"os":"linux"}'
        push_blob(c, "h", config)
        for missing in ("layer", "config and layer"):
            manifest = image_manifest(config if missing == "layer" else b"absent config", [b"never pushed"])
            body = json.dumps(manifest).encode()
            with nothing_stored(registry):
                r = c.put("/v2/h/manifests/broken", content=body, headers={"Content-Type": OCI_MANIFEST})
                assert r.status_code == 400
                # One error per missing blob, naming it.
                details = {e["detail"] for e in r.json()["errors"] if e["code"] == "MANIFEST_BLOB_UNKNOWN"}
                want = {sha256(b"never pushed")} | (
                    {sha256(b"absent config")} if missing != "layer" else set()
                )
                assert set(error_codes(r)) == {"MANIFEST_BLOB_UNKNOWN"} and details == want
            assert c.get("/v2/h/manifests/broken").status_code == 404
        # A blob pushed to another repository does not count: a manifest needs its blobs here.
        push_blob(c, "elsewhere", b"never pushed")
        with nothing_stored(registry):
            body = json.dumps(image_manifest(config, [b"never pushed"])).encode()
            r = c.put("/v2/h/manifests/broken", content=body, headers={"Content-Type": OCI_MANIFEST})
            assert r.status_code == 400 and error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


def test_index_naming_missing_child(registry: Server) -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"no such manifest"), "size": 16}],
    }
    with registry.client() as c, nothing_stored(registry):
        r = c.put(
            "/v2/h/manifests/idx", content=json.dumps(index).encode(), headers={"Content-Type": OCI_INDEX}
        )
        assert r.status_code == 400 and error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]
        assert c.get("/v2/h/manifests/idx").status_code == 404


def test_manifest_invalid_and_size_mismatch(registry: Server) -> None:
    with registry.client() as c:
        config = b'{"os":"linux"}'
        push_blob(c, "h", config)
        bad = image_manifest(config, [])
        bad["config"]["size"] = 999
        cases = [
            b"not json",
            b"[]",
            json.dumps({"schemaVersion": 1, "name": "h", "tag": "x", "fsLayers": []}).encode(),
            json.dumps({"schemaVersion": 2, "mediaType": "application/x-nonsense", "config": {}}).encode(),
            json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:xyz"}}
            ).encode(),
            json.dumps(bad).encode(),
        ]
        for body in cases:
            with nothing_stored(registry):
                r = c.put("/v2/h/manifests/bad", content=body, headers={"Content-Type": OCI_MANIFEST})
                assert r.status_code == 400 and error_codes(r) == ["MANIFEST_INVALID"], body
        r = c.get("/v2/h/tags/list")  # no manifest ever made it in
        assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"]


def test_truncated_upload(registry: Server) -> None:
    """The closing PUT names the digest of more data than was sent."""
    data = os.urandom(300_000)
    with registry.client() as c:
        location = c.post("/v2/h/blobs/uploads/").headers["location"]
        c.patch(location, content=data[:100_000])
        r = c.put(location, params={"digest": sha256(data)}, content=data[100_000:200_000])
        assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
        with nothing_stored(registry):
            r = c.post("/v2/h/blobs/uploads/", params={"digest": sha256(data)}, content=data[:150_000])
            assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
        assert c.head(f"/v2/h/blobs/{sha256(data)}").status_code == 404
    assert not any(f.startswith("blobs/") for f in registry.files())


def _send_partial(server: Server, request_line: str, length: int, sent: bytes) -> None:
    """Headers announcing `length` bytes, then only `sent`, then the connection drops."""
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            f"{request_line} HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n".encode()
            + sent
        )
        time.sleep(0.3)


def _wait_for(condition: Callable[[], object], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_dropped_connection_mid_upload(registry: Server) -> None:
    data = os.urandom(2_000_000)
    with registry.client() as c:
        # Monolithic: the session is created and removed again, no blob appears.
        with nothing_stored(registry):
            _send_partial(
                registry, f"POST /v2/h/blobs/uploads/?digest={sha256(data)}", len(data), data[:700_000]
            )
            _wait_for(lambda: not any(f.startswith("uploads/") for f in registry.files()))
        # Chunked: a chunk cut short is not kept; the upload resumes from the last whole chunk.
        location = c.post("/v2/h/blobs/uploads/").headers["location"]
        assert c.patch(location, content=data[:500_000]).headers["range"] == "0-499999"
        _send_partial(registry, f"PATCH {location}", 1_000_000, data[500_000:900_000])
        _wait_for(lambda: c.get(location).headers["range"] == "0-499999")
        staged = [
            registry.root / f for f in registry.files() if f.startswith("uploads/") and f.endswith("/data")
        ]
        assert [p.stat().st_size for p in staged] == [500_000]
        r = c.patch(location, content=data[500_000:], headers={"Content-Range": f"500000-{len(data) - 1}"})
        assert r.status_code == 202
        r = c.put(location, params={"digest": sha256(data)})
        assert r.status_code == 201
        assert c.get(f"/v2/h/blobs/{sha256(data)}").content == data


def test_crash_mid_upload_leaves_no_blob(tmp_path: Path) -> None:
    """SIGKILL while a blob streams in: after a restart the blob is unknown and not on disk."""
    data = os.urandom(4_000_000)
    with pyregistry(tmp_path) as server:
        host, port = server.host.split(":")
        s = socket.create_connection((host, int(port)), timeout=30)
        s.sendall(
            f"POST /v2/h/blobs/uploads/?digest={sha256(data)} HTTP/1.1\r\nHost: {server.host}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[:3_000_000]
        )
        _wait_for(lambda: any(f.startswith("uploads/") for f in server.files()))
        time.sleep(0.3)
        server.killed = True
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=30)
        s.close()
    assert not (tmp_path / "root" / "blobs" / "sha256" / sha256(data)[7:9]).exists()
    with pyregistry(tmp_path) as server, server.client() as c:
        r = c.head(f"/v2/h/blobs/{sha256(data)}")
        assert r.status_code == 404


def test_chunk_with_wrong_content_range(registry: Server) -> None:
    with registry.client() as c:
        location = c.post("/v2/h/blobs/uploads/").headers["location"]
        assert c.patch(location, content=b"0123456789", headers={"Content-Range": "0-9"}).status_code == 202
        for content_range, body in (
            ("20-29", b"abcdefghij"),
            ("0-9", b"abcdefghij"),
            ("10-19", b"short"),
            ("15-10", b"x"),
        ):
            with nothing_stored(registry):
                r = c.patch(location, content=body, headers={"Content-Range": content_range})
                assert r.status_code == 416, content_range
                assert error_codes(r) == ["BLOB_UPLOAD_INVALID"]
                assert r.headers["range"] == "0-9"
        assert c.get(location).headers["range"] == "0-9"
        r = c.put(location, params={"digest": sha256(b"0123456789")})
        assert r.status_code == 201


def test_oversized_manifest(registry: Server) -> None:
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"pad": "x" * (4 << 20)}}
    ).encode()
    with registry.client() as c, nothing_stored(registry):
        r = c.put("/v2/h/manifests/huge", content=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 413 and error_codes(r) == ["MANIFEST_INVALID"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for i in range(0, len(body), 1 << 20):
                yield body[i : i + (1 << 20)]

        r = c.put("/v2/h/manifests/huge", content=chunks(), headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 413 and error_codes(r) == ["MANIFEST_INVALID"]
        assert c.get("/v2/h/manifests/huge").status_code == 404


def test_invalid_repository_names(registry: Server) -> None:
    names = ["UPPER", "a//b", "-lead", "trail-", "x" * 256, "a:b", "_catalogish/_x", "a__-b", "a/-/b"]
    with registry.client() as c, nothing_stored(registry):
        for name in names:
            for method, path in (
                ("GET", f"/v2/{name}/tags/list"),
                ("GET", f"/v2/{name}/manifests/latest"),
                ("POST", f"/v2/{name}/blobs/uploads/"),
                ("PUT", f"/v2/{name}/manifests/latest"),
            ):
                r = c.request(method, path, content=b"{}")
                assert r.status_code == 400, (method, path, r.text)
                assert error_codes(r) == ["NAME_INVALID"]
        for name in ("a/../b", "a/./b", "..", "../../etc"):  # sent as is: no client normalises them away
            status, body = raw_request(registry, "PUT", f"/v2/{name}/manifests/latest", b"{}")
            assert status == 400 and json.loads(body)["errors"][0]["code"] == "NAME_INVALID", name
    assert not any((registry.root / "repositories").iterdir())


def test_invalid_digests_and_references(registry: Server) -> None:
    with registry.client() as c, nothing_stored(registry):
        for digest in ("sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "sha256" + "0" * 64):
            r = c.get(f"/v2/h/blobs/{digest}")
            assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"], digest
            r = c.post("/v2/h/blobs/uploads/", params={"digest": digest}, content=b"x")
            assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"], digest
        r = c.put("/v2/h/manifests/bad:tag:x", content=b"{}", headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]
        r = c.put("/v2/h/manifests/.hidden", content=b"{}", headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 400 and error_codes(r) == ["MANIFEST_INVALID"]
        r = c.get("/v2/h/blobs/uploads/../../../etc")
        assert r.status_code in (400, 404)
        r = c.get("/v2/h/blobs/uploads/not-a-uuid")
        assert r.status_code == 404 and error_codes(r) == ["BLOB_UPLOAD_UNKNOWN"]


def test_too_many_upload_sessions(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[uploads]\nmaxsessions = 2\n")
    with pyregistry(tmp_path, "--config", str(config)) as server, server.client() as c:
        first = c.post("/v2/h/blobs/uploads/")
        assert c.post("/v2/h/blobs/uploads/").status_code == 202
        r = c.post("/v2/h/blobs/uploads/")
        assert r.status_code == 429 and error_codes(r) == ["TOOMANYREQUESTS"]
        assert c.delete(first.headers["location"]).status_code == 204
        assert c.post("/v2/h/blobs/uploads/").status_code == 202
