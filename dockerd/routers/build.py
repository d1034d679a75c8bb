"""Build routes (moby's api/server/router/build): POST /build (the classic builder's
protocol, the query decoded as dockerd's newImageBuildOptions), POST /build/prune; and POST
/commit, which moby serves from its image router but which is the builder backend's here
(dockerd/builder/backend.py)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.datastructures import QueryParams

from dockerd.builder.backend import BuildStream, CommitQuery
from dockerd.builder.options import BuildOptions
from dockerd.engine.distribution.registry_client import AuthConfig, auth_from_json
from dockerd.engine.errors import InvalidParameter
from dockerd.routers.common import filters, go_bool, spool_body
from dockerd.routers.deps import BuilderBackend

router = APIRouter()


def _int64(q: QueryParams, name: str) -> int:
    """httputils.Int64ValueOrZero: a malformed value is 0, as dockerd reads it."""
    try:
        return int(q.get(name) or 0)
    except ValueError:
        return 0


def _json_query(q: QueryParams, name: str, want: type, wrap: str) -> Any:
    raw = q.get(name) or ""
    if not raw:
        return want()
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"{wrap}{exc}") from None
    if value is None:
        return want()
    if not isinstance(value, want):
        raise InvalidParameter(f"{wrap}json: cannot unmarshal into Go value of type {want.__name__}")
    return value


def build_options(q: QueryParams) -> BuildOptions:
    """POST /build's query as dockerd decodes it (API >= 1.24: rm defaults to true, forcerm wins)."""
    version = q.get("version") or "1"
    if version == "2":
        raise InvalidParameter("buildkit is not enabled on daemon")
    if version != "1":
        raise InvalidParameter(f"invalid version {version}")
    if go_bool(q.get("squash")):
        raise InvalidParameter("squash is only supported with experimental mode")
    if q.getlist("securityopt"):
        raise InvalidParameter(
            "The daemon on this platform does not support setting security options on build"
        )
    if q.get("remote"):
        raise InvalidParameter(
            "remote build contexts are not supported by this daemon: send the context as a tar"
        )
    isolation = q.get("isolation") or ""
    if isolation not in ("", "default"):
        raise InvalidParameter(f'Unsupported isolation: "{isolation}"')
    if q.get("ulimits") not in (None, "", "null", "[]"):
        raise InvalidParameter("ulimits on build are not supported by this daemon yet")
    shm = q.get("shmsize") or ""
    try:
        shm_size = int(shm) if shm else 0
    except ValueError:
        raise InvalidParameter(f'strconv.ParseInt: parsing "{shm}": invalid syntax') from None
    build_args = _json_query(q, "buildargs", dict, "error reading build args: ")
    labels = _json_query(q, "labels", dict, "error reading labels: ")
    if any(v is not None and not isinstance(v, str) for v in build_args.values()):
        raise InvalidParameter(
            "error reading build args: json: cannot unmarshal number into Go value of type string"
        )
    force_rm = go_bool(q.get("forcerm"))
    return BuildOptions(
        dockerfile=q.get("dockerfile") or "Dockerfile",
        tags=q.getlist("t"),
        build_args=build_args,
        target=q.get("target") or "",
        labels={str(k): str(v) for k, v in labels.items()},
        no_cache=go_bool(q.get("nocache")),
        pull=go_bool(q.get("pull")),
        remove=force_rm or not q.get("rm") or go_bool(q.get("rm")),
        force_remove=force_rm,
        cache_from=[str(v) for v in _json_query(q, "cachefrom", list, "")],
        extra_hosts=[h for v in q.getlist("extrahosts") for h in v.split(",") if h],
        network_mode=q.get("networkmode") or "default",
        shm_size=shm_size,
        memory=_int64(q, "memory"),
        memory_swap=_int64(q, "memswap"),
        cpu_shares=_int64(q, "cpushares"),
        cpu_period=_int64(q, "cpuperiod"),
        cpu_quota=_int64(q, "cpuquota"),
        cpuset_cpus=q.get("cpusetcpus") or "",
        cpuset_mems=q.get("cpusetmems") or "",
        platform=q.get("platform") or "",
        quiet=go_bool(q.get("q")),
    )


def registry_configs(header: str | None) -> dict[str, AuthConfig]:
    """X-Registry-Config: base64url JSON {registry: AuthConfig}; undecodable is none (dockerd)."""
    if not header:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    found = {}
    for key, value in data.items():
        try:
            found[str(key)] = auth_from_json(value)
        except InvalidParameter:
            continue
    return found


class _BuildResponse(StreamingResponse):
    """The build's JSON stream; a client that hangs up cancels the build (at its next step)."""

    def __init__(self, job: BuildStream, body: AsyncIterator[bytes]) -> None:
        super().__init__(body, media_type="application/json")
        self.job = job

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


@router.post("/build")
async def build(request: Request, builder: BuilderBackend) -> Response:
    options = build_options(request.query_params)
    auth = registry_configs(request.headers.get("x-registry-config"))
    upload = await spool_body(request, builder.tmp_dir)
    try:
        job = await run_in_threadpool(builder.prepare, upload, options, auth)
    finally:
        upload.close()  # prepare has unpacked it
    stream = builder.stream(job)
    return _BuildResponse(stream, iterate_in_threadpool(iter(stream)))


@router.post("/build/prune")
async def build_prune(request: Request, builder: BuilderBackend) -> dict[str, Any]:
    q = request.query_params
    found = filters(q)
    raw = q.get("keep-storage") or "0"
    try:
        keep = int(raw)
    except ValueError:
        raise InvalidParameter(
            f'keep-storage is in bytes and expects an integer, got {raw}: strconv.Atoi: parsing "{raw}": invalid syntax'
        ) from None
    return await run_in_threadpool(builder.prune, found, keep, go_bool(q.get("all")))


@router.post("/commit")
async def commit(request: Request, builder: BuilderBackend) -> Response:
    q = request.query_params
    raw = await request.body()
    config: dict[str, Any] | None = None
    if raw.strip():
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"invalid JSON: {exc}") from None
        if value is not None and not isinstance(value, dict):
            raise InvalidParameter("json: cannot unmarshal into Go value of type container.Config")
        config = value or None
    query = CommitQuery(
        container=q.get("container") or "",
        repo=q.get("repo") or "",
        tag=q.get("tag") or "",
        comment=q.get("comment") or "",
        author=q.get("author") or "",
        pause=not q.get("pause") or go_bool(q.get("pause")),
        changes=q.getlist("changes"),
        config=config,
    )
    image_id = await run_in_threadpool(builder.commit, query)
    return JSONResponse({"Id": image_id}, status_code=201)
