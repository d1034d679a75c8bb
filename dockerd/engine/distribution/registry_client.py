"""A client of the registry HTTP API V2 (OCI distribution), as dockerd's distribution code uses it.

One `Session` talks to one registry for one repository: it picks the scheme (https, then
plain http for an insecure registry: loopback or daemon.json `insecure-registries`),
answers the `WWW-Authenticate` challenge of `GET /v2/` (a Bearer token from the realm, with
the X-Registry-Auth credentials when there are some, or Basic), and maps the registry's
JSON errors to `RegistryError`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import ipaddress
import json
import logging
import re
import ssl
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from containerd.client.names import Reference
from dockerd.engine.errors import EngineError, InvalidParameter
from dockerd.engine.validate import json_kind

if TYPE_CHECKING:
    import httpx  # imported where a session starts: an idle daemon does not hold it (5 MiB with its imports)

# One INFO line per registry request would drown the daemon's log.
logging.getLogger("httpx").setLevel(logging.WARNING)

DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"
MANIFEST_LIMIT = 4 << 20
BLOB_CHUNK = 1 << 20
MAX_REDIRECTS = 5


class Unauthorized(EngineError):
    status = 401


class RegistryError(EngineError):
    """The registry's answer was an error (`code` from its JSON errors, "" if none)."""

    def __init__(self, message: str, status: int = 500, code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass
class AuthConfig:
    username: str = ""
    password: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.identitytoken or self.registrytoken)


def decode_auth_header(value: str | None) -> AuthConfig:
    """X-Registry-Auth: base64url JSON (padding optional, as the Docker CLI omits it); a bad one
    is no credentials, as dockerd treats it."""
    if not value:
        return AuthConfig()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
        return auth_from_json(data)
    except (binascii.Error, ValueError, RecursionError, InvalidParameter):
        return AuthConfig()


def auth_from_json(data: Any) -> AuthConfig:
    if not isinstance(data, dict):
        return AuthConfig()

    def text(key: str) -> str:
        value = data.get(key) or data.get(key.capitalize()) or ""
        if not isinstance(value, str):  # dockerd decodes into its AuthConfig struct: a 400 before any request
            raise InvalidParameter(
                f"json: cannot unmarshal {json_kind(value)} into Go struct field AuthConfig.{key} of type string"
            )
        return value

    return AuthConfig(
        text("username"),
        text("password"),
        text("serveraddress"),
        text("identitytoken"),
        text("registrytoken"),
    )


@dataclass
class RegistryConfig:
    """daemon.json `insecure-registries`, `registry-mirrors` and `default-registry`."""

    insecure: list[str] = field(default_factory=list)
    mirrors: list[str] = field(default_factory=list)
    default_registry: str = DOCKER_HUB

    def is_insecure(self, host: str) -> bool:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        if name == "localhost":
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            address = None
        if address is not None and address.is_loopback:
            return True
        for entry in self.insecure:
            entry = re.sub(r"^https?://", "", entry).rstrip("/")
            if entry in (host, name):
                return True
            if address is not None and "/" in entry:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False

    def service_config(self) -> dict[str, Any]:
        """`docker info`'s RegistryConfig, as dockerd's registry service reports its settings:
        the CIDRs among the insecure registries, then loopback, as InsecureRegistryCIDRs, the
        other insecure registries as non-secure index configs, the mirrors on docker.io."""
        cidrs: list[str] = []
        indexes: dict[str, Any] = {}
        for entry in self.insecure:
            entry = re.sub(r"^https?://", "", entry).rstrip("/")
            try:
                network = str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else None
            except ValueError:
                network = None
            if network is not None:
                if network not in cidrs:
                    cidrs.append(network)
            else:
                indexes[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
        if "127.0.0.0/8" not in cidrs:
            cidrs.append("127.0.0.0/8")  # loopback always, after the configured ones (as dockerd)
        mirrors = [m.rstrip("/") + "/" for m in self.mirrors]
        indexes[DOCKER_HUB] = {"Name": DOCKER_HUB, "Mirrors": mirrors, "Secure": True, "Official": True}
        return {
            "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": dict(sorted(indexes.items())), "Mirrors": mirrors,
        }  # fmt: skip

    def endpoints(self, domain: str, *, push: bool = False) -> list[str]:
        """Base URLs to try, in order, for a reference's domain."""
        out: list[str] = []
        if domain == DOCKER_HUB:
            if not push:
                out.extend(m.rstrip("/") for m in self.mirrors)
            host = DOCKER_HUB_ENDPOINT if self.default_registry in ("", DOCKER_HUB) else self.default_registry
        else:
            host = domain
        if re.match(r"^https?://", host):
            out.append(host.rstrip("/"))
            return out
        out.append(f"https://{host}")
        if self.is_insecure(host):
            out.append(f"http://{host}")
        return out


_CHALLENGE = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _CHALLENGE.finditer(rest)
    }


class Session:
    """One registry, one repository, the actions wanted on it (`pull` or `pull,push`)."""

    def __init__(
        self, base: str, repo: str, actions: str, auth: AuthConfig, *, timeout: float = 60.0
    ) -> None:
        self.base = base
        self.repo = repo
        self.actions = actions
        self.auth = auth
        import httpx

        self.http = httpx.Client(base_url=base, verify=tls_context(), timeout=timeout, follow_redirects=True)
        self.raw = RawHTTP(timeout)
        self._header: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    @property
    def host(self) -> str:
        return self.base.split("://", 1)[1]

    # --- authentication ----------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ and answer its challenge; Unauthorized when the credentials are refused."""
        r = self.http.get("/v2/")
        if r.status_code == 401:
            self._answer(r.headers.get("www-authenticate", ""), login=False)
        elif r.status_code >= 500 or r.status_code == 404:
            raise RegistryError(f"error pinging registry {self.host}: status {r.status_code}", 500)

    def login(self) -> None:
        """Check the credentials as dockerd's /auth does."""
        r = self.http.get("/v2/")
        if r.status_code != 401:
            return
        self._answer(r.headers.get("www-authenticate", ""), login=True)
        r = self.http.get("/v2/", headers=self._header)
        if r.status_code == 401:
            raise Unauthorized(f"login attempt to {self.base}/v2/ failed with status: 401 Unauthorized")

    def _answer(self, header: str, *, login: bool) -> None:
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if self.auth.username:
                token = base64.b64encode(f"{self.auth.username}:{self.auth.password}".encode()).decode()
                self._header = {"Authorization": f"Basic {token}"}
            return
        if scheme != "bearer" or not params.get("realm"):
            return
        query: dict[str, str] = {}
        if params.get("service"):
            query["service"] = params["service"]
        if not login:
            query["scope"] = f"repository:{self.repo}:{self.actions}"
        basic = None
        if self.auth.registrytoken:
            self._header = {"Authorization": f"Bearer {self.auth.registrytoken}"}
            return
        if self.auth.username:
            basic = (self.auth.username, self.auth.password)
        r = (
            self.http.get(params["realm"], params=query, auth=basic)
            if basic
            else self.http.get(params["realm"], params=query)
        )
        if r.status_code in (401, 403):
            if login:
                raise Unauthorized(
                    f'Get "{params["realm"]}": unauthorized: {_error_text(r) or "authentication required"}'
                )
            return  # anonymous or refused: the request that needs it gets the registry's error
        if r.status_code != 200:
            raise RegistryError(f"token endpoint {params['realm']} answered {r.status_code}", 500)
        try:
            body = r.json()
        except ValueError:
            raise RegistryError(f"token endpoint {params['realm']} answered no JSON", 500) from None
        found: Any = (body.get("token") or body.get("access_token")) if isinstance(body, dict) else None
        if isinstance(found, str) and found:
            token = found
            self._header = {"Authorization": f"Bearer {token}"}

    # --- requests ----------------------------------------------------------------------------

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**self._header, **kw.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **kw)

    def stream(self, method: str, url: str, **kw: Any) -> Any:
        headers = {**self._header, **kw.pop("headers", {})}
        return self.http.stream(method, url, headers=headers, **kw)

    def manifest(self, ref: str, accept: list[str]) -> tuple[bytes, str, str]:
        """(bytes, media type, Docker-Content-Digest header) of a manifest by tag or digest."""
        with self.stream(
            "GET", f"/v2/{self.repo}/manifests/{ref}", headers={"Accept": ", ".join(accept)}
        ) as r:
            if r.status_code != 200:
                r.read()
                raise error_of(r)
            data = b""
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MANIFEST_LIMIT:
                    raise RegistryError(f"manifest {ref} is larger than {MANIFEST_LIMIT} bytes", 500)
            media_type = r.headers.get("content-type", "").split(";")[0].strip()
            return data, media_type, r.headers.get("docker-content-digest", "")

    def blob_chunks(self, digest: str, size: int, on_bytes: Any, retries: int = 3) -> Iterator[bytes]:
        """A blob's bytes; a connection broken mid-way resumes with a Range request."""
        offset = 0
        attempts = 0
        while offset < size or size == 0:
            headers = {**self._header, **({"Range": f"bytes={offset}-"} if offset else {})}
            try:
                with self.raw.get(f"{self.base}/v2/{self.repo}/blobs/{digest}", headers) as r:
                    if r.status not in (200, 206):
                        raise _error_from(r.status, r.reason, r.read(64 << 10))
                    if offset and r.status == 200:
                        raise RegistryError(f"registry does not resume blob {digest}", 500)
                    while chunk := r.read(BLOB_CHUNK):
                        offset += len(chunk)
                        on_bytes(offset)
                        yield chunk
                    if size and offset < size:
                        raise http.client.IncompleteRead(b"", size - offset)
                return
            except (OSError, http.client.HTTPException) as exc:
                attempts += 1
                if attempts > retries:
                    raise RegistryError(f"downloading {digest}: {exc or type(exc).__name__}", 500) from None

    def has_blob(self, digest: str) -> bool:
        r = self.request("HEAD", f"/v2/{self.repo}/blobs/{digest}")
        if r.status_code == 200:
            return True
        if r.status_code == 404:
            return False
        raise error_of(r)

    def upload(self, digest: str, size: int, chunks: Iterator[bytes], mount_from: str = "") -> bool:
        """Upload a blob (POST then PUT ?digest=); True when a cross-repository mount did it."""
        params = {"mount": digest, "from": mount_from} if mount_from else {}
        r = self.request("POST", f"/v2/{self.repo}/blobs/uploads/", params=params)
        if r.status_code == 201 and mount_from:
            for _ in chunks:  # nothing to send; let the reader finish
                break
            return True
        if r.status_code != 202:
            raise error_of(r)
        location = urljoin(self.base + "/", r.headers.get("location", ""))
        sep = "&" if "?" in location else "?"
        headers = {**self._header, "Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            with self.raw.put(f"{location}{sep}digest={digest}", headers, chunks) as resp:
                body = resp.read(64 << 10)
                if resp.status not in (201, 204):
                    raise _error_from(resp.status, resp.reason, body)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"uploading {digest}: {exc or type(exc).__name__}", 500) from None
        return False

    def put_manifest(self, ref: str, data: bytes, media_type: str) -> str:
        r = self.request(
            "PUT", f"/v2/{self.repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type}
        )
        if r.status_code not in (200, 201):
            raise error_of(r)
        return str(r.headers.get("docker-content-digest", ""))


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            first = errors[0]
            return f"{first.get('code', '').lower().replace('_', ' ')}: {first.get('message', '')}"
        if isinstance(body, dict) and body.get("details"):
            return str(body["details"])
    except ValueError:
        pass
    return r.text.strip()[:200]


def error_of(r: httpx.Response) -> RegistryError:
    return _error_from(r.status_code, r.reason_phrase, r.content)


def _error_from(status: int, reason: str, body: bytes) -> RegistryError:
    code, message = "", ""
    try:
        data = json.loads(body)
        errors = data.get("errors") if isinstance(data, dict) else None
        if errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code", ""))
            message = str(errors[0].get("message", ""))
    except ValueError:
        pass
    text = (
        f"{code.lower().replace('_', ' ')}: {message}"
        if code
        else (body.decode(errors="replace").strip()[:200] or reason)
    )
    return RegistryError(text, {401: 401, 403: 403, 404: 404}.get(status, 500), code, message)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's trust store, loaded once: loading it costs tens of ms, paid per session before."""
    return ssl.create_default_context()


class RawHTTP:
    """Blob bodies over the standard library's http.client.

    httpx parses a body in 64 KiB pieces through h11, which costs about 4 ms of CPU per MiB
    here: most of a pull's CPU. http.client reads a Content-Length body straight off the socket
    (about 0.3 ms per MiB). Redirects (a registry sending blobs to a storage backend) are
    followed for GET, dropping the Authorization header on another host as httpx does.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @contextmanager
    def get(self, url: str, headers: dict[str, str]) -> Iterator[http.client.HTTPResponse]:
        origin = urlsplit(url).netloc
        for _ in range(MAX_REDIRECTS):
            conn, resp = self._send("GET", url, headers, None)
            try:
                if resp.status in (301, 302, 303, 307, 308) and resp.getheader("location"):
                    url = urljoin(url, resp.getheader("location", ""))
                    if urlsplit(url).netloc != origin:
                        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                    continue
                yield resp
                return
            finally:
                resp.close()  # the socket stays open while the response's file on it does
                conn.close()
        raise RegistryError(f"too many redirects fetching {url}", 500)

    @contextmanager
    def put(
        self, url: str, headers: dict[str, str], body: Iterable[bytes]
    ) -> Iterator[http.client.HTTPResponse]:
        conn, resp = self._send("PUT", url, headers, body)
        try:
            yield resp
        finally:
            resp.close()
            conn.close()

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Iterable[bytes] | None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        parts = urlsplit(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.netloc, timeout=self.timeout, context=tls_context())
        else:
            conn = http.client.HTTPConnection(parts.netloc, timeout=self.timeout)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, path, body=body, headers=headers)
            return conn, conn.getresponse()
        except BaseException:
            conn.close()
            raise


def connect(
    config: RegistryConfig, ref: Reference, actions: str, auth: AuthConfig, *, push: bool = False
) -> Session:
    """A session on the first endpoint that answers (mirrors first for a pull from docker.io)."""
    import httpx

    errors: list[EngineError] = []
    for base in config.endpoints(ref.domain, push=push):
        session = Session(base, ref.path, actions, auth)
        try:
            session.ping()
            return session
        except httpx.HTTPError as exc:
            session.close()
            errors.append(RegistryError(f'Get "{base}/v2/": {transport_text(exc, base)}', 500))
        except EngineError as exc:
            session.close()
            errors.append(exc)
    raise errors[-1] if errors else RegistryError(f"no endpoint for {ref.domain}", 500)


def transport_text(exc: Exception, base: str = "") -> str:
    """A transport failure as Go's net package words it; with the endpoint BASE, a refused
    connection names the address dialled, as dockerd's "dial tcp 127.0.0.1:9: connect: ..."."""
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        if base:
            return f"dial tcp {dial_address(base)}: connect: connection refused"
        # Go's net error names the address it dialled (known here when the host is an IP)
        return f"{_dialled(exc)}connect: connection refused"
    return text


def dial_address(base: str) -> str:
    """host:port of an endpoint URL, the scheme's port when it names none."""
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dialled(exc: Exception) -> str:
    import httpx

    try:
        url = exc.request.url if isinstance(exc, httpx.RequestError) else None
    except RuntimeError:  # no request attached
        url = None
    if url is None:
        return ""
    try:
        ipaddress.ip_address(url.host)
    except ValueError:
        return ""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"dial tcp {host}:{port}: "
