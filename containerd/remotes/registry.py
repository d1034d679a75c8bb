"""One registry repository over the distribution API (HTTP): ping, auth challenges, manifests, blobs.

Hosts are resolved as containerd's CRI plugin does with its `registry.mirrors`: each mirror
endpoint of the reference's domain in order, then the domain itself (https, and plain http for
loopback or a host configured insecure). Authentication answers the registry's challenge:
Basic with the credentials, or a Bearer token from the realm (anonymous or with credentials).
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

MANIFEST_LIMIT = 4 << 20
BLOB_CHUNK = 1 << 20
DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"


class RegistryError(Exception):
    """The registry refused or failed; `status` is its HTTP status (0: not reached)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unauthorized(RegistryError):
    pass


@dataclass(frozen=True)
class Credentials:
    """What a client sends for a registry: user and password, or an identity/registry token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @classmethod
    def from_auth(cls, auth: str = "", username: str = "", password: str = "", **tokens: str) -> Credentials:
        """`auth` is base64("user:password"), as Docker's config and the CRI's AuthConfig carry it."""
        if auth and not username:
            try:
                username, _, password = base64.b64decode(auth).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError("invalid auth: not base64 of user:password") from None
        return cls(username, password, tokens.get("identity_token", ""), tokens.get("registry_token", ""))


@dataclass
class RegistryHosts:
    """Where a domain's repositories are fetched from: mirrors first, then the domain itself."""

    mirrors: Mapping[str, Sequence[str]] = field(default_factory=dict)
    insecure: Sequence[str] = ()
    credentials: Mapping[str, Credentials] = field(default_factory=dict)

    def is_insecure(self, host: str) -> bool:
        name = host.rsplit(":", 1)[0].strip("[]") if not host.endswith("]") else host.strip("[]")
        if name == "localhost" or host in self.insecure or name in self.insecure:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def endpoints(self, domain: str) -> list[str]:
        out = [m.rstrip("/") for m in self.mirrors.get(domain, ())]
        out += [m.rstrip("/") for m in self.mirrors.get("*", ())]
        host = DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain
        if re.match(r"^https?://", host):
            out.append(host)
        else:
            out.append(f"https://{host}")
            if self.is_insecure(host):
                out.append(f"http://{host}")
        return out

    def credentials_for(self, domain: str, endpoint: str) -> Credentials:
        host = endpoint.split("://", 1)[-1]
        return self.credentials.get(host) or self.credentials.get(domain) or Credentials()


_CHALLENGE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE.finditer(rest)
    }
    return scheme.lower(), params


class Repository:
    """One repository on one endpoint, for pulling."""

    def __init__(self, base: str, path: str, creds: Credentials, *, timeout: float = 60.0) -> None:
        self.base = base
        self.path = path
        self.creds = creds
        self.http = httpx.Client(base_url=base, timeout=timeout, follow_redirects=True)
        self._auth: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """GET /v2/ and answer its challenge; RegistryError when the endpoint is no registry."""
        try:
            r = self.http.get("/v2/")
        except httpx.HTTPError as exc:
            raise RegistryError(f"failed to do request: {exc}") from None
        if r.status_code == 401:
            self._answer(r.headers.get("www-authenticate", ""))
        elif r.status_code >= 400:
            raise RegistryError(
                f"unexpected status from GET request to {self.base}/v2/: {r.status_code}", r.status_code
            )

    def _answer(self, header: str) -> None:
        scheme, params = parse_challenge(header)
        c = self.creds
        if scheme == "basic":
            if c.username:
                token = base64.b64encode(f"{c.username}:{c.password}".encode()).decode()
                self._auth = {"Authorization": f"Basic {token}"}
            return
        if scheme != "bearer" or not params.get("realm"):
            return
        if c.registry_token:
            self._auth = {"Authorization": f"Bearer {c.registry_token}"}
            return
        query = {"scope": f"repository:{self.path}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        basic = (c.username, c.password) if c.username else None
        try:
            r = (
                self.http.get(params["realm"], params=query, auth=basic)
                if basic
                else self.http.get(params["realm"], params=query)
            )
        except httpx.HTTPError as exc:
            raise RegistryError(f"failed to fetch token from {params['realm']}: {exc}") from None
        if r.status_code in (401, 403):
            raise Unauthorized(
                f"failed to fetch anonymous token: unexpected status: {r.status_code}", r.status_code
            )
        if r.status_code != 200:
            raise RegistryError(f"token endpoint {params['realm']} answered {r.status_code}", r.status_code)
        body: Any = r.json()
        found: Any = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if isinstance(found, str) and found:
            self._auth = {"Authorization": f"Bearer {found}"}

    def manifest(self, ref: str, accept: Sequence[str]) -> tuple[bytes, str, str]:
        """(bytes, media type, Docker-Content-Digest) of a manifest by tag or digest."""
        headers = {**self._auth, "Accept": ", ".join(accept)}
        try:
            with self.http.stream("GET", f"/v2/{self.path}/manifests/{ref}", headers=headers) as r:
                if r.status_code != 200:
                    r.read()
                    raise _error(r, f"{self.path}:{ref}")
                data = b""
                for chunk in r.iter_bytes():
                    data += chunk
                    if len(data) > MANIFEST_LIMIT:
                        raise RegistryError(f"manifest {ref} is larger than {MANIFEST_LIMIT} bytes")
                media_type = r.headers.get("content-type", "").split(";")[0].strip()
                return data, media_type, r.headers.get("docker-content-digest", "")
        except httpx.HTTPError as exc:
            raise RegistryError(f"failed to fetch manifest {ref}: {exc}") from None

    def blob(self, digest: str) -> Iterator[bytes]:
        """A blob's bytes as the registry sends them (the content store verifies the digest)."""
        try:
            with self.http.stream("GET", f"/v2/{self.path}/blobs/{digest}", headers=self._auth) as r:
                if r.status_code != 200:
                    r.read()
                    raise _error(r, digest)
                yield from r.iter_bytes(BLOB_CHUNK)
        except httpx.HTTPError as exc:
            raise RegistryError(f"failed to fetch blob {digest}: {exc}") from None


def _error(r: httpx.Response, what: str) -> RegistryError:
    code, detail = "", ""
    try:
        body = r.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", ""))
            detail = str(errors[0].get("message", ""))
    except ValueError:
        pass
    if r.status_code == 404:
        return RegistryError(f"{what}: not found", 404, code or "NOT_FOUND")
    if r.status_code in (401, 403):
        return Unauthorized(f"{what}: {detail or 'unauthorized'}", r.status_code, code)
    return RegistryError(f"{what}: unexpected status {r.status_code} {detail}".rstrip(), r.status_code, code)
