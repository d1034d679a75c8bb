"""htpasswd Basic auth, bearer tokens from pyregistry's own token endpoint, per-repository access.

Access used here: alice may pull and push everywhere; bob may only pull library/*; anonymous
may pull public/*.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.registry.conftest import USERS, make_htpasswd
from tests.registry.registry_harness import (
    IMAGES,
    Server,
    error_codes,
    push_image,
    pyregistry,
    sha256,
    skopeo,
)

ACCESS = """
[[access]]
account = "alice"
repository = "*"
actions = ["*"]

[[access]]
account = "bob"
repository = "library/*"
actions = ["pull"]

[[access]]
account = "anonymous"
repository = "public/*"
actions = ["pull"]
"""

ALICE = httpx.BasicAuth("alice", USERS["alice"])
BOB = httpx.BasicAuth("bob", USERS["bob"])


def _config(tmp: Path, token: bool) -> Path:
    config = tmp / "config.toml"
    text = f'[auth.htpasswd]\nrealm = "test-realm"\npath = "{make_htpasswd(tmp)}"\n'
    if token:
        text += '[auth.token]\nservice = "test-service"\nissuer = "test-issuer"\nexpiration = 120\n'
    config.write_text(text + ACCESS)
    return config


@pytest.fixture
def basic(tmp_path: Path) -> Iterator[Server]:
    tmp = tmp_path / "basic"
    tmp.mkdir()
    with pyregistry(tmp, "--config", str(_config(tmp, False))) as server:
        yield server


@pytest.fixture
def token(tmp_path: Path) -> Iterator[Server]:
    tmp = tmp_path / "token"
    tmp.mkdir()
    with pyregistry(tmp, "--config", str(_config(tmp, True))) as server:
        yield server


def _token(c: httpx.Client, scope: str | list[str], auth: httpx.Auth | None = ALICE) -> str:
    r = c.get("/token", params={"service": "test-service", "scope": scope}, auth=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] == body["token"] and body["expires_in"] == 120
    tok: str = body["token"]
    return tok


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_basic_auth_challenge_and_credentials(basic: Server) -> None:
    with basic.client() as c:
        for auth in (None, httpx.BasicAuth("alice", "wrong"), httpx.BasicAuth("mallory", "x")):
            r = c.get("/v2/", auth=auth)
            assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"]
            assert r.headers["www-authenticate"] == 'Basic realm="test-realm"'
        r = c.get("/v2/", headers={"Authorization": "Basic !!!not base64"})
        assert r.status_code == 401
        assert c.get("/v2/", auth=ALICE).status_code == 200
        assert c.get("/v2/", auth=BOB).status_code == 200


def test_basic_auth_per_repository_access(basic: Server) -> None:
    with basic.client() as c:
        push_image(c, "library/app", "v1", headers={"Authorization": ALICE._auth_header})
        push_image(c, "public/app", "v1", headers={"Authorization": ALICE._auth_header})
        assert c.get("/v2/library/app/manifests/v1", auth=BOB).status_code == 200
        before = basic.blob_files()
        r = c.post("/v2/library/app/blobs/uploads/", params={"digest": sha256(b"x")}, content=b"x", auth=BOB)
        assert r.status_code == 403 and error_codes(r) == ["DENIED"]
        r = c.get("/v2/private/app/tags/list", auth=BOB)
        assert r.status_code == 403 and error_codes(r) == ["DENIED"]
        assert basic.blob_files() == before
        # Anonymous pull where the rules allow it; anything else asks for credentials.
        assert c.get("/v2/public/app/manifests/v1").status_code == 200
        r = c.get("/v2/library/app/manifests/v1")
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="test-realm"'


def test_token_challenge_and_endpoint(token: Server) -> None:
    with token.client() as c:
        r = c.get("/v2/")
        assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"]
        assert r.headers["www-authenticate"] == f'Bearer realm="{token.url}/token",service="test-service"'
        r = c.get("/v2/library/app/manifests/v1")
        assert r.headers["www-authenticate"] == (
            f'Bearer realm="{token.url}/token",service="test-service",scope="repository:library/app:pull"'
        )
        r = c.post("/v2/library/app/blobs/uploads/")
        assert 'scope="repository:library/app:pull,push"' in r.headers["www-authenticate"]
        # Basic credentials are not accepted on the API in token mode.
        assert c.get("/v2/", auth=ALICE).status_code == 401
        # Bad credentials at the token endpoint.
        for auth in (httpx.BasicAuth("alice", "wrong"), httpx.BasicAuth("nobody", "x")):
            r = c.get("/token", params={"service": "test-service", "scope": "repository:a:pull"}, auth=auth)
            assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"]
        tok = _token(c, "repository:library/app:pull,push")
        claims = _claims(tok)
        assert claims["sub"] == "alice" and claims["aud"] == "test-service" and claims["iss"] == "test-issuer"
        assert claims["access"] == [
            {"type": "repository", "name": "library/app", "actions": ["pull", "push"]}
        ]
        assert c.get("/v2/", headers=_bearer(tok)).status_code == 200
        push_image(c, "library/app", "v1", headers=_bearer(tok))


def test_token_scopes_limited_to_access(token: Server) -> None:
    with token.client() as c:
        push_image(c, "library/app", "v1", headers=_bearer(_token(c, "repository:library/app:pull,push")))
        # bob asks for pull and push, gets pull only.
        tok = _token(c, ["repository:library/app:pull,push", "repository:private/x:pull"], auth=BOB)
        assert _claims(tok)["access"] == [{"type": "repository", "name": "library/app", "actions": ["pull"]}]
        assert c.get("/v2/library/app/manifests/v1", headers=_bearer(tok)).status_code == 200
        before = token.blob_files()
        r = c.post(
            "/v2/library/app/blobs/uploads/",
            params={"digest": sha256(b"x")},
            content=b"x",
            headers=_bearer(tok),
        )
        assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"]
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert token.blob_files() == before
        # Anonymous: a token with what anonymous may do (public/* pull), nothing more.
        anon = _token(c, ["repository:public/app:pull", "repository:library/app:pull"], auth=None)
        assert _claims(anon)["access"] == [{"type": "repository", "name": "public/app", "actions": ["pull"]}]


def test_token_for_another_repository(token: Server) -> None:
    with token.client() as c:
        tok_a = _token(c, "repository:team/a:pull,push")
        push_image(c, "team/a", "v1", headers=_bearer(tok_a))
        before = token.blob_files()
        for method, path in (
            ("GET", "/v2/team/b/tags/list"),
            ("GET", "/v2/team/a2/manifests/v1"),
            ("POST", "/v2/team/b/blobs/uploads/"),
        ):
            r = c.request(method, path, headers=_bearer(tok_a))
            assert r.status_code == 401 and error_codes(r) == ["UNAUTHORIZED"], path
            assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert token.blob_files() == before


def test_forged_and_foreign_tokens(token: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    with token.client() as c:
        tok = _token(c, "repository:team/a:pull")
        head, payload, sig = tok.split(".")
        claims = _claims(tok)
        claims["access"] = [{"type": "repository", "name": "team/b", "actions": ["pull", "push"]}]
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        for bad in (f"{head}.{forged_payload}.{sig}", f"{head}.{payload}.AAAA", "garbage", tok + "x"):
            r = c.get("/v2/team/a/tags/list", headers=_bearer(bad))
            assert r.status_code == 401, bad
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
    # A token signed by another registry's key is worthless here.
    other_tmp = tmp_path_factory.mktemp("other")
    with pyregistry(other_tmp, "--config", str(_config(other_tmp, True))) as other, other.client() as oc:
        foreign = _token(oc, "repository:team/a:pull")
    with token.client() as c:
        assert c.get("/v2/team/a/tags/list", headers=_bearer(foreign)).status_code == 401


def test_skopeo_refused_without_or_with_bad_credentials(token: Server, basic: Server) -> None:
    src = f"oci:{IMAGES / 'busybox-oci'}:latest"
    for server in (token, basic):
        before = server.blob_files()
        for creds in ([], ["--dest-creds=alice:wrong"], [f"--dest-creds=bob:{USERS['bob']}"]):
            proc = skopeo(
                "copy", "-q", "--dest-tls-verify=false", *creds, src, f"docker://{server.host}/library/bb:x"
            )
            assert proc.returncode != 0
            assert "unauthorized" in proc.stderr.lower() or "denied" in proc.stderr.lower(), proc.stderr
        assert server.blob_files() == before
        with server.client() as c:
            assert c.get("/v2/").status_code == 401  # still up, still guarded
