"""pyregistry's HTTP API: the OCI distribution spec 1.1 (Docker Registry HTTP API V2) on FastAPI.

Repository names contain slashes, so one catch-all route per prefix dispatches on regular
expressions (the way distribution's router does), checking name, reference, read-only mode
and authorization before the handler runs. Every error is the spec's JSON body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from registry import manifests as mf
from registry.auth import Access, Htpasswd, Scope, Tokens, parse_basic, parse_bearer
from registry.blobio import FileSliceResponse, RangeNotSatisfiable, parse_range
from registry.config import Settings
from registry.errors import RegistryError
from registry.refs import check_digest, digest_of, valid_name, valid_tag
from registry.storage import Storage
from registry.uploads import Session, Uploads

log = logging.getLogger("pyregistry")

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# (route, pattern). The name is greedy: references, digests and uuids hold no slash.
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", re.compile(r"^/v2/(?P<name>.+)/tags/list$")),
    ("manifest", re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")),
    ("upload", re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]*)$")),
    ("blob", re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
    ("referrers", re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")),
]
_METHODS = {
    "base": {"GET", "HEAD"},
    "catalog": {"GET", "HEAD"},
    "tags": {"GET", "HEAD"},
    "manifest": {"GET", "HEAD", "PUT", "DELETE"},
    "upload": {"GET", "POST", "PATCH", "PUT", "DELETE"},
    "blob": {"GET", "HEAD", "DELETE"},
    "referrers": {"GET", "HEAD"},
}
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, media_type: str | None = None
) -> Response:
    h = dict(API_VERSION)
    h.update(headers or {})
    content = b"" if body is None else body if isinstance(body, bytes) else _json(body)
    if body is not None and not isinstance(body, bytes):
        media_type = media_type or "application/json"
    return Response(content=content, status_code=status, headers=h, media_type=media_type)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def error_response(e: RegistryError, head: bool = False) -> Response:
    body = _json(e.body())
    headers = dict(e.headers)
    if head:
        headers["Content-Length"] = str(len(body))
        return _response(e.status, b"", headers, "application/json")
    return _response(e.status, body, headers, "application/json")


class Registry:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.uploads = Uploads(storage, settings.max_sessions, settings.purge_age)
        self.htpasswd = Htpasswd(settings.htpasswd) if settings.htpasswd else None
        self.access = Access(settings.access)
        self.tokens: Tokens | None = None
        self.tls = settings.tls_cert is not None

    # --- authorization ------------------------------------------------------------------

    async def _basic_account(self, request: Request) -> tuple[bool, str | None]:
        """(credentials given, the account they prove or None)."""
        header = request.headers.get("authorization")
        creds = parse_basic(header)
        if creds is None:
            return header is not None, None
        assert self.htpasswd is not None
        ok = await asyncio.to_thread(self.htpasswd.check, creds[0], creds[1])
        return True, creds[0] if ok else None

    def _token_realm(self, request: Request) -> str:
        if self.settings.token_realm:
            return self.settings.token_realm
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{request.headers.get('host', f'{self.settings.host}:{self.settings.port}')}/token"

    async def authorize(self, request: Request, needs: list[tuple[str, str, str]]) -> str | None:
        """Check the request may do every (type, name, action) in `needs`; returns the account."""
        if self.tokens is not None:
            return self._authorize_token(request, needs)
        if self.htpasswd is None:
            return None
        given, account = await self._basic_account(request)
        if (given and account is None) or (account is None and not self._granted(None, needs)):
            raise RegistryError(
                "UNAUTHORIZED", None, headers={"WWW-Authenticate": f'Basic realm="{self.settings.realm}"'}
            )
        if not self._granted(account, needs):
            raise RegistryError("DENIED", _access_detail(needs))
        return account

    def _granted(self, account: str | None, needs: list[tuple[str, str, str]]) -> bool:
        if account is None and not needs:
            return False  # /v2/ itself: Basic auth wants credentials
        for kind, name, action in needs:
            if kind == "registry":
                if not self.access.catalog_allowed(account):
                    return False
            elif action not in self.access.allowed(account, name):
                return False
        return True

    def _authorize_token(self, request: Request, needs: list[tuple[str, str, str]]) -> str | None:
        assert self.tokens is not None
        token = parse_bearer(request.headers.get("authorization"))
        claims = self.tokens.verify(token) if token else None
        if claims is not None and all(self.tokens.grants(claims, *need) for need in needs):
            return str(claims.get("sub") or "") or None
        challenge = f'Bearer realm="{self._token_realm(request)}",service="{self.tokens.service}"'
        scopes: dict[tuple[str, str], list[str]] = {}
        for kind, name, action in needs:
            scopes.setdefault((kind, name), []).append(action)
        if scopes:
            challenge += ',scope="' + " ".join(f"{k}:{n}:{','.join(a)}" for (k, n), a in scopes.items()) + '"'
        if token is not None:
            challenge += ',error="invalid_token"' if claims is None else ',error="insufficient_scope"'
        raise RegistryError(
            "UNAUTHORIZED", _access_detail(needs) or None, headers={"WWW-Authenticate": challenge}
        )

    # --- dispatch -------------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        method = request.method
        head = method == "HEAD"
        try:
            return await self._dispatch(request, method)
        except RegistryError as e:
            return error_response(e, head)
        except ClientDisconnect:
            return _response(400)  # nobody is listening any more
        except Exception:
            log.exception("%s %s failed", method, request.url.path)
            return error_response(RegistryError("UNKNOWN"), head)

    async def _dispatch(self, request: Request, method: str) -> Response:
        path = request.url.path
        matched = _match(path)
        if matched is None:
            return _response(
                404, {"errors": [{"code": "NOT_FOUND", "message": "page not found", "detail": path}]}
            )
        route, params = matched
        allowed = _METHODS[route]
        if method not in allowed:
            raise RegistryError(
                "UNSUPPORTED", {"method": method}, headers={"Allow": ", ".join(sorted(allowed))}
            )
        name = params.get("name")
        if name is not None and not valid_name(name):
            raise RegistryError("NAME_INVALID", {"name": name})
        if self.settings.read_only and method in _WRITE_METHODS:
            raise RegistryError(
                "UNSUPPORTED", {"reason": "the registry is in read-only mode"}, headers={"Allow": "GET, HEAD"}
            )
        if method == "DELETE" and not self.settings.delete_enabled and route != "upload":
            raise RegistryError("UNSUPPORTED", {"reason": "deletion is disabled"})
        if route == "base":
            await self.authorize(request, [])
            return _response(200, {})
        if route == "catalog":
            await self.authorize(request, [("registry", "catalog", "*")])
            return self.catalog(request)
        assert name is not None
        needs = [("repository", name, "pull")]
        if method in ("POST", "PUT", "PATCH"):
            needs.append(("repository", name, "push"))
        elif method == "DELETE":
            needs = [("repository", name, "delete")]
        account = await self.authorize(request, needs)
        handler: Callable[..., Awaitable[Response]] = getattr(
            self, f"{route}_{method.lower()}", self._unsupported
        )
        if route == "upload" and method == "POST":
            return await self.upload_post(request, name, params["uuid"], account)
        return await handler(request, **params)

    async def _unsupported(self, request: Request, **_: str) -> Response:
        raise RegistryError("UNSUPPORTED")

    # --- catalog and tags -------------------------------------------------------------------

    def catalog(self, request: Request) -> Response:
        repos, link = _paginate(self.storage.catalog(), request, "/v2/_catalog")
        return _response(200, {"repositories": repos}, link)

    async def tags_get(self, request: Request, name: str) -> Response:
        if not self.storage.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", {"name": name})
        tags, link = _paginate(self.storage.tags(name), request, f"/v2/{name}/tags/list")
        return _response(200, {"name": name, "tags": tags}, link)

    tags_head = tags_get

    # --- blobs ------------------------------------------------------------------------------

    async def blob_get(self, request: Request, name: str, digest: str) -> Response:
        check_digest(digest)
        if self.storage.repo_blob_size(name, digest) is None:
            raise RegistryError("BLOB_UNKNOWN", digest)
        try:
            fd = os.open(self.storage.blob_path(digest), os.O_RDONLY)
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", digest) from None
        try:
            size = os.fstat(fd).st_size
            headers = {
                **API_VERSION,
                "Docker-Content-Digest": digest,
                "Etag": f'"{digest}"',
                "Accept-Ranges": "bytes",
                "Cache-Control": "max-age=31536000",
                "Content-Type": "application/octet-stream",
            }
            try:
                rng = parse_range(request.headers.get("range"), size)
            except RangeNotSatisfiable:
                raise RegistryError(
                    "BLOB_UNKNOWN",
                    {"reason": f"range not satisfiable for {size} bytes"},
                    status=416,
                    message="requested range not satisfiable",
                    headers={"Content-Range": f"bytes */{size}"},
                ) from None
            status, start, end = 200, 0, size - 1
            if rng is not None:
                status, (start, end) = 206, rng
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["Content-Length"] = str(end - start + 1)
        except BaseException:
            os.close(fd)
            raise
        return FileSliceResponse(fd, start, end, status, headers, head=request.method == "HEAD")

    blob_head = blob_get

    async def blob_delete(self, request: Request, name: str, digest: str) -> Response:
        check_digest(digest)
        if not self.storage.unlink_blob(name, digest):
            raise RegistryError("BLOB_UNKNOWN", digest)
        # The content stays in the shared store until `pyregistry gc` finds nothing using it.
        return _response(202, None, {"Content-Length": "0"})

    # --- uploads ----------------------------------------------------------------------------

    def _upload_headers(self, name: str, s: Session) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{s.uuid}",
            "Range": s.range_header(),
            "Docker-Upload-UUID": s.uuid,
            "Content-Length": "0",
        }

    def _blob_created(self, name: str, digest: str) -> Response:
        return _response(
            201,
            None,
            {
                "Location": f"/v2/{name}/blobs/{digest}",
                "Docker-Content-Digest": digest,
                "Content-Length": "0",
            },
        )

    async def upload_post(self, request: Request, name: str, uuid: str, account: str | None) -> Response:
        if uuid:
            raise RegistryError("UNSUPPORTED", {"reason": "POST starts an upload: /v2/<name>/blobs/uploads/"})
        q = request.query_params
        mount, source = q.get("mount"), q.get("from")
        if mount:
            check_digest(mount)
            if source and valid_name(source) and await self._may_pull(request, source):
                if self.storage.repo_blob_size(source, mount) is not None:
                    self.storage.link_blob(name, mount)
                    return self._blob_created(name, mount)
            # Not mountable (or not readable by the caller): an ordinary upload, as the spec says.
        digest = q.get("digest")
        if digest is not None:
            check_digest(digest)
        s = self.uploads.create(name)
        if digest is None:
            return _response(202, None, self._upload_headers(name, s))
        # Monolithic upload: the whole blob in this request, all or nothing.
        try:
            async with s.lock:
                await self.uploads.append(s, _body(request), None, None)
                await self.uploads.finish(s, digest)
        finally:
            self.uploads.cancel(s)
        self.storage.link_blob(name, digest)
        return self._blob_created(name, digest)

    async def _may_pull(self, request: Request, repository: str) -> bool:
        try:
            await self.authorize(request, [("repository", repository, "pull")])
            return True
        except RegistryError:
            return False

    async def upload_get(self, request: Request, name: str, uuid: str) -> Response:
        s = self.uploads.get(name, uuid)
        return _response(204, None, self._upload_headers(name, s))

    async def upload_patch(self, request: Request, name: str, uuid: str) -> Response:
        s = self.uploads.get(name, uuid)
        start, end = _content_range(request, s)
        async with s.lock:
            await self.uploads.append(s, _body(request), start, end)
        return _response(202, None, self._upload_headers(name, s))

    async def upload_put(self, request: Request, name: str, uuid: str) -> Response:
        s = self.uploads.get(name, uuid)
        digest = request.query_params.get("digest")
        if digest is None:
            raise RegistryError("DIGEST_INVALID", {"reason": "the closing PUT needs ?digest="})
        check_digest(digest)
        start, end = _content_range(request, s)
        try:
            async with s.lock:
                await self.uploads.append(s, _body(request), start, end)
                await self.uploads.finish(s, digest)
        finally:
            # A failed close ends the session too: nothing of a refused blob is kept.
            self.uploads.cancel(s)
        self.storage.link_blob(name, digest)
        return self._blob_created(name, digest)

    async def upload_delete(self, request: Request, name: str, uuid: str) -> Response:
        s = self.uploads.get(name, uuid)
        self.uploads.cancel(s)
        return _response(204, None, {"Content-Length": "0"})

    # --- manifests --------------------------------------------------------------------------

    def _resolve(self, name: str, ref: str) -> str:
        if ":" in ref:
            check_digest(ref)
            if self.storage.manifest_media_type(name, ref) is None:
                raise RegistryError("MANIFEST_UNKNOWN", {"Digest": ref})
            return ref
        if not valid_tag(ref):
            raise RegistryError("MANIFEST_UNKNOWN", {"Tag": ref, "reason": "invalid tag"})
        digest = self.storage.get_tag(name, ref)
        if digest is None or self.storage.manifest_media_type(name, digest) is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"Tag": ref})
        return digest

    async def manifest_get(self, request: Request, name: str, ref: str) -> Response:
        digest = self._resolve(name, ref)
        media_type = self.storage.manifest_media_type(name, digest) or mf.OCI_MANIFEST
        body = self.storage.read_blob(digest)
        if body is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"Digest": digest})
        headers = {"Docker-Content-Digest": digest, "Etag": f'"{digest}"', "Content-Type": media_type}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return _response(200, b"", headers)
        return _response(200, body, headers)

    manifest_head = manifest_get

    async def manifest_put(self, request: Request, name: str, ref: str) -> Response:
        is_digest = ":" in ref
        if is_digest:
            check_digest(ref)
        elif not valid_tag(ref):
            raise RegistryError("MANIFEST_INVALID", {"Tag": ref, "reason": "invalid tag"})
        body = await _read_limited(request, mf.MAX_MANIFEST)
        algorithm = ref.split(":", 1)[0] if is_digest else "sha256"
        digest = digest_of(body, algorithm)
        if is_digest and digest != ref:
            raise RegistryError("DIGEST_INVALID", {"digest": ref, "reason": f"content is {digest}"})
        m = mf.parse(body, request.headers.get("content-type"))
        # Every missing reference is reported (one error each, as distribution does).
        errors = []
        for d in m.blobs:
            size = self.storage.repo_blob_size(name, d["digest"])
            if size is None:
                errors.append(RegistryError("MANIFEST_BLOB_UNKNOWN", d["digest"]))
            elif size != d["size"]:
                errors.append(
                    RegistryError(
                        "MANIFEST_INVALID",
                        {"reason": f"{d['digest']} is {size} bytes, the manifest says {d['size']}"},
                    )
                )
        for d in m.children:
            if self.storage.manifest_media_type(name, d["digest"]) is None:
                errors.append(RegistryError("MANIFEST_BLOB_UNKNOWN", d["digest"]))
        if errors:
            raise RegistryError.all(errors)
        # Verified: content first, then the repository's link, then the tag.
        self.storage.put_blob_bytes(digest, body)
        self.storage.link_manifest(name, digest, m.media_type)
        if not is_digest:
            self.storage.set_tag(name, ref, digest)
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        }
        if m.subject is not None:
            self.storage.add_referrer(name, m.subject["digest"], mf.referrer_descriptor(m, digest, len(body)))
            headers["OCI-Subject"] = m.subject["digest"]
        return _response(201, None, headers)

    async def manifest_delete(self, request: Request, name: str, ref: str) -> Response:
        if ":" not in ref:
            # Spec 1.1: deleting by tag removes the tag only.
            if not valid_tag(ref) or not self.storage.delete_tag(name, ref):
                raise RegistryError("MANIFEST_UNKNOWN", {"Tag": ref})
            return _response(202, None, {"Content-Length": "0"})
        check_digest(ref)
        if self.storage.manifest_media_type(name, ref) is None:
            raise RegistryError("MANIFEST_UNKNOWN", {"Digest": ref})
        body = self.storage.read_blob(ref)
        for tag in self.storage.tags_of(name, ref):
            self.storage.delete_tag(name, tag)
        self.storage.unlink_manifest(name, ref)
        if body is not None:
            try:
                m = mf.parse(body, None)
            except RegistryError:
                m = None
            if m is not None and m.subject is not None:
                self.storage.remove_referrer(name, m.subject["digest"], ref)
        return _response(202, None, {"Content-Length": "0"})

    # --- referrers --------------------------------------------------------------------------

    async def referrers_get(self, request: Request, name: str, digest: str) -> Response:
        check_digest(digest)
        found = self.storage.referrers(name, digest)
        # Only referrers whose manifest is still in the repository.
        found = [d for d in found if self.storage.manifest_media_type(name, d["digest"]) is not None]
        headers = {}
        artifact_type = request.query_params.get("artifactType")
        if artifact_type:
            found = [d for d in found if d.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": found}
        return _response(200, _json(index), headers, mf.OCI_INDEX)

    referrers_head = referrers_get

    # --- token endpoint ---------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            return await self._token(request)
        except RegistryError as e:
            return error_response(e)

    async def _token(self, request: Request) -> Response:
        if self.tokens is None:
            raise RegistryError("UNSUPPORTED", {"reason": "token auth is not enabled"}, status=404)
        q = request.query_params
        service = q.get("service")
        if service is not None and service != self.tokens.service:
            raise RegistryError("DENIED", {"service": service}, status=400, message="invalid service")
        account: str | None = None
        if request.headers.get("authorization"):
            if self.htpasswd is None:
                raise RegistryError("UNAUTHORIZED")
            _, account = await self._basic_account(request)
            if account is None:
                raise RegistryError(
                    "UNAUTHORIZED", None, headers={"WWW-Authenticate": f'Basic realm="{self.settings.realm}"'}
                )
        granted: list[Scope] = []
        for text in " ".join(q.getlist("scope")).split():
            scope = Scope.parse(text)
            if scope is None:
                continue
            if scope.type == "repository" and valid_name(scope.name):
                may = self.access.allowed(account, scope.name)
                want = may if "*" in scope.actions else scope.actions & may
                if want:
                    granted.append(Scope(scope.type, scope.name, frozenset(want)))
            elif (
                scope.type == "registry" and scope.name == "catalog" and self.access.catalog_allowed(account)
            ):
                granted.append(Scope("registry", "catalog", frozenset({"*"})))
        token, issued = self.tokens.issue(account, granted)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": self.tokens.expiration,
            "issued_at": datetime.fromtimestamp(issued, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return _response(200, body)


def _match(path: str) -> tuple[str, dict[str, str]] | None:
    for route, pattern in _ROUTES:
        m = pattern.match(path)
        if m is not None:
            return route, m.groupdict()
    return None


def _access_detail(needs: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    return [{"Type": k, "Name": n, "Action": a} for k, n, a in needs]


def _paginate(items: list[str], request: Request, path: str) -> tuple[list[str], dict[str, str]]:
    """The spec's n/last pagination; a Link header points at the next page when there is one."""
    q = request.query_params
    last = q.get("last")
    if last:
        items = [i for i in items if i > last]
    try:
        n = int(q["n"]) if "n" in q else None
    except ValueError:
        n = None  # distribution ignores an n it cannot read
    if n is None or n < 0 or len(items) <= n:
        return items, {}
    page = items[:n]
    if not page:
        return [], {}
    query = urlencode({"last": page[-1], "n": n})
    return page, {"Link": f'<{quote(path)}?{query}>; rel="next"'}


def _content_range(request: Request, s: Session) -> tuple[int | None, int | None]:
    header = request.headers.get("content-range")
    if not header:
        return None, None
    m = _CONTENT_RANGE_RE.match(header.strip())
    if not m or int(m.group(2)) < int(m.group(1)):
        raise RegistryError(
            "BLOB_UPLOAD_INVALID",
            {"reason": f"invalid Content-Range {header!r}"},
            status=416,
            headers={"Range": s.range_header(), "Docker-Upload-UUID": s.uuid},
        )
    start, end = int(m.group(1)), int(m.group(2))
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) != end - start + 1:
        raise RegistryError(
            "BLOB_UPLOAD_INVALID",
            {"reason": f"Content-Range {start}-{end} does not match Content-Length {length}"},
            status=416,
            headers={"Range": s.range_header(), "Docker-Upload-UUID": s.uuid},
        )
    return start, end


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


async def _read_limited(request: Request, limit: int) -> bytes:
    too_big = RegistryError(
        "MANIFEST_INVALID",
        {"reason": f"manifest larger than {limit} bytes"},
        status=413,
        message="manifest invalid",
    )
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_big
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


def create_app(settings: Settings, storage: Storage, tokens: Tokens | None = None) -> FastAPI:
    registry = Registry(settings, storage)
    registry.tokens = tokens
    app = FastAPI(title="pyregistry", docs_url=None, redoc_url=None, openapi_url=None)
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app.add_api_route("/v2/", registry.dispatch, methods=methods, include_in_schema=False)
    app.add_api_route("/v2", registry.dispatch, methods=methods, include_in_schema=False)
    app.add_api_route("/v2/{path:path}", registry.dispatch, methods=methods, include_in_schema=False)
    app.add_api_route("/token", registry.token, methods=["GET"], include_in_schema=False)
    app.state.registry = registry
    return app
