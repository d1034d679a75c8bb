"""Volume routes (moby's api/server/router/volume), served by the volume service
(dockerd/volumes/service.py). Each route decodes, calls the service in a worker thread (it
blocks on the file system and on plugins) and encodes; volumes/api.py has the body and query
rules dockerd applies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dockerd.engine import filters as prune_filters
from dockerd.routers.common import body_json, filters
from dockerd.routers.deps import VolumesBackend
from dockerd.volumes import api
from dockerd.volumes.filters import Filters as VolumeFilters

router = APIRouter()

# the API version pydockerd speaks (middleware.py): below 1.42, so a prune takes named volumes too
API_VERSION = (1, 41)


def _volume_filters(request: Request, accepted: frozenset[str] | None = None) -> VolumeFilters:
    """The `filters` parameter decoded as dockerd decodes it (Go's wording), as the service's type."""
    found = filters(request.query_params)
    if accepted is not None:
        found.validate(accepted)
    return VolumeFilters({key: frozenset(values) for key, values in found.as_lists().items()})


@router.get("/volumes")
async def volumes_list(request: Request, volumes: VolumesBackend) -> dict[str, Any]:
    wanted = _volume_filters(request)
    return await run_in_threadpool(volumes.list_api, wanted)


@router.post("/volumes/create", status_code=201)
async def volumes_create(request: Request, volumes: VolumesBackend) -> JSONResponse:
    args = api.create_args(await body_json(request))
    vol = await run_in_threadpool(lambda: volumes.create(**args))
    return JSONResponse(vol.to_api(), status_code=201)


@router.post("/volumes/prune")
async def volumes_prune(request: Request, volumes: VolumesBackend) -> dict[str, Any]:
    # dockerd 20.10's keys, and `all` (API 1.42's, which the issue asks for)
    wanted = _volume_filters(request, prune_filters.VOLUME_PRUNE | {"all"})
    if API_VERSION < api.ANONYMOUS_PRUNE_API and not wanted.contains("all"):
        wanted = VolumeFilters({**wanted.fields, "all": frozenset({"true"})})
    report = await run_in_threadpool(volumes.prune, wanted)
    return report.to_api()


@router.get("/volumes/{name:path}")
async def volumes_inspect(name: str, volumes: VolumesBackend) -> dict[str, Any]:
    return await run_in_threadpool(volumes.inspect, name)


@router.delete("/volumes/{name:path}")
async def volumes_remove(name: str, request: Request, volumes: VolumesBackend) -> Response:
    force = api.truthy(request.query_params.get("force"))
    await run_in_threadpool(volumes.remove, name, force)
    return Response(status_code=204)
