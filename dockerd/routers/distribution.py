"""Distribution routes (moby's api/server/router/distribution and the image router's
create): POST /images/create (pull with fromImage, import with fromSrc), POST
/images/{name}/push, POST /auth. Pull, push and login are the distribution backend's
(dockerd/engine/distribution/backend.py); import is the images backend's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from dockerd.engine.distribution.progress import Streamed
from dockerd.engine.distribution.registry_client import AuthConfig, auth_from_json, decode_auth_header
from dockerd.engine.errors import InvalidParameter, NotImplementedYet
from dockerd.routers.common import body_json, spool_body
from dockerd.routers.deps import DistributionBackend, ImagesBackend

router = APIRouter()


class _JobResponse(StreamingResponse):
    """A pull's or push's JSON progress stream that cancels the work when the response ends.

    A client that hangs up ends the response (Starlette stops the stream), and the pull stops,
    as dockerd's does with its request context. This is done here rather than in the body's
    generator: a stopped stream leaves its generator suspended, not closed.
    """

    def __init__(self, job: Streamed, body: AsyncIterator[bytes]) -> None:
        super().__init__(body, media_type="application/json")
        self.job = job

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


def _registry_auth(request: Request) -> AuthConfig:
    """The X-Registry-Auth credentials of a pull or push (none when absent or malformed)."""
    return decode_auth_header(request.headers.get("x-registry-auth"))


async def _progress(job: Streamed, action: str, distribution: DistributionBackend) -> AsyncIterator[bytes]:
    """A pull's or push's progress, then the image events of one that succeeded."""
    async for chunk in iterate_in_threadpool(job.stream()):
        yield chunk
    distribution.announce(job, action)


@router.post("/images/create")
async def images_create(
    request: Request, distribution: DistributionBackend, images: ImagesBackend
) -> Response:
    q = request.query_params
    source = q.get("fromSrc")
    if not source and q.get("fromImage"):
        # Errors before any progress are HTTP errors, as dockerd's.
        pull = await run_in_threadpool(
            distribution.pull, q["fromImage"], q.get("tag") or "", _registry_auth(request)
        )
        return _JobResponse(pull, _progress(pull, "pull", distribution))
    if not source:
        raise InvalidParameter("Either fromSrc or fromImage must be specified")  # nothing to pull or import
    if source != "-":
        raise NotImplementedYet(
            "importing from a URL is not supported yet: upload the archive (`docker import FILE`)"
        )
    # Checked before the upload is read, as dockerd does.
    changes = q.getlist("changes")
    name = images.import_target(q.get("repo") or "", q.get("tag") or "", changes)
    upload = await spool_body(request, images.tmp_dir)
    try:
        message = q.get("message") or f"Imported from {source}"
        image_id = await run_in_threadpool(images.import_image, upload, name, message, changes)
    finally:
        upload.close()
    return Response(
        json.dumps({"status": image_id}, separators=(",", ":")) + "\r\n", media_type="application/json"
    )


@router.post("/images/{name:path}/push")
async def images_push(name: str, request: Request, distribution: DistributionBackend) -> Response:
    push = await run_in_threadpool(
        distribution.push, name, request.query_params.get("tag") or "", _registry_auth(request)
    )
    return _JobResponse(push, _progress(push, "push", distribution))


@router.post("/auth")
async def auth(request: Request, distribution: DistributionBackend) -> dict[str, str]:
    credentials = auth_from_json(await body_json(request))
    return await run_in_threadpool(distribution.login, credentials)
