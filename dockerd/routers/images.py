"""Image routes (moby's api/server/router/image): list, prune, load and save, inspect,
history, tag, remove, served by the images backend (dockerd/engine/image/backend.py).
Pull, push and import share POST /images/create and live in distribution.py; search is
search.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from dockerd.engine.errors import InvalidParameter
from dockerd.routers.common import filters, filters_query, spool_body, spooled, truthy
from dockerd.routers.deps import ImagesBackend

router = APIRouter()


@router.get("/images/json")
async def images_list(request: Request, images: ImagesBackend) -> list[dict[str, Any]]:
    return await run_in_threadpool(images.list, filters_query(request.query_params))


@router.post("/images/prune")
async def images_prune(request: Request, images: ImagesBackend) -> dict[str, Any]:
    return await run_in_threadpool(images.prune, filters(request.query_params))


@router.post("/images/load")
async def images_load(request: Request, images: ImagesBackend) -> StreamingResponse:
    upload = await spool_body(request, images.tmp_dir)
    return StreamingResponse(iterate_in_threadpool(images.load(upload)), media_type="application/json")


@router.get("/images/get")
async def images_get_many(request: Request, images: ImagesBackend) -> StreamingResponse:
    return await _save(images, list(request.query_params.getlist("names")))


@router.get("/images/{name:path}/get")
async def images_get(name: str, images: ImagesBackend) -> StreamingResponse:
    return await _save(images, [name])


async def _save(images: ImagesBackend, refs: list[str]) -> StreamingResponse:
    if not refs:
        raise InvalidParameter("no image names given")
    return spooled(await run_in_threadpool(images.save, refs), "application/x-tar")


@router.get("/images/{name:path}/json")
async def image_inspect(name: str, images: ImagesBackend) -> dict[str, Any]:
    return await run_in_threadpool(images.inspect, name)


@router.get("/images/{name:path}/history")
async def image_history(name: str, images: ImagesBackend) -> list[dict[str, Any]]:
    return await run_in_threadpool(images.history, name)


@router.post("/images/{name:path}/tag")
async def image_tag(name: str, request: Request, images: ImagesBackend) -> Response:
    repo = request.query_params.get("repo") or ""
    if not repo:
        raise InvalidParameter("repository name must have at least one component")
    await run_in_threadpool(images.tag, name, repo, request.query_params.get("tag") or "")
    return Response(status_code=201)


@router.delete("/images/{name:path}")
async def image_remove(name: str, request: Request, images: ImagesBackend) -> list[dict[str, str]]:
    return await run_in_threadpool(images.remove, name, truthy(request.query_params.get("force")))
