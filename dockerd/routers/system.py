"""System routes (moby's api/server/router/system): /_ping, /version, /info, /events,
/system/df, served by the system backend (dockerd/engine/system.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from dockerd.routers.common import filters_query, time_query
from dockerd.routers.deps import SystemBackend

router = APIRouter()


@router.get("/_ping")
@router.head("/_ping")
async def ping() -> Response:
    return Response(
        "OK",
        media_type="text/plain",
        # Builder-Version 1: the classic builder (POST /build), which the Docker CLI then uses
        # without BuildKit's buildx.
        headers={
            "Builder-Version": "1",
            "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache",
        },
    )


@router.get("/version")
async def version(system: SystemBackend) -> dict[str, Any]:
    return await run_in_threadpool(system.version)


@router.get("/info")
async def info(system: SystemBackend) -> dict[str, Any]:
    return await run_in_threadpool(system.info)


@router.get("/events")
async def events(request: Request, system: SystemBackend) -> StreamingResponse:
    q = request.query_params
    filters = filters_query(q)
    since, until = time_query(q, "since"), time_query(q, "until")
    stream = system.events(filters, since, until)
    return StreamingResponse(iterate_in_threadpool(stream), media_type="application/json")


@router.get("/system/df")
async def system_df(system: SystemBackend) -> dict[str, Any]:
    return await run_in_threadpool(system.disk_usage)
