"""Network routes (moby's api/server/router/network), served by the engine's networking
(dockerd/engine/network.py) over the network backend (dockerd/network/)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dockerd.engine import filters as prune_filters
from dockerd.engine.errors import InvalidParameter
from dockerd.routers.common import body_json, filters, truthy
from dockerd.routers.deps import NetworksBackend

router = APIRouter()
LIST_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


@router.get("/networks")
async def networks_list(request: Request, networks: NetworksBackend) -> list[dict[str, Any]]:
    found = filters(request.query_params)
    found.validate(LIST_FILTERS)
    for kind in found.get("type"):
        if kind not in ("custom", "builtin"):
            raise InvalidParameter(f"invalid filter: 'type'='{kind}'")
    return networks.listing(found)


@router.get("/networks/{ref}")
async def networks_inspect(ref: str, request: Request, networks: NetworksBackend) -> dict[str, Any]:
    truthy(request.query_params.get("verbose"))
    return networks.inspect(ref)


@router.post("/networks/create")
async def networks_create(request: Request, networks: NetworksBackend) -> Response:
    body = await body_json(request)
    return JSONResponse(await run_in_threadpool(networks.create, body), status_code=201)


@router.delete("/networks/{ref}")
async def networks_remove(ref: str, networks: NetworksBackend) -> Response:
    await run_in_threadpool(networks.remove, ref)
    return Response(status_code=204)


@router.post("/networks/{ref}/connect")
async def networks_connect(ref: str, request: Request, networks: NetworksBackend) -> Response:
    body = await body_json(request)
    settings = body.get("EndpointConfig") or {}
    if not isinstance(settings, dict):
        raise InvalidParameter("invalid JSON: EndpointConfig must be an object")
    await run_in_threadpool(networks.connect, ref, str(body.get("Container") or ""), settings)
    return Response(status_code=200)


@router.post("/networks/{ref}/disconnect")
async def networks_disconnect(ref: str, request: Request, networks: NetworksBackend) -> Response:
    body = await body_json(request)
    await run_in_threadpool(
        networks.disconnect, ref, str(body.get("Container") or ""), bool(body.get("Force"))
    )
    return Response(status_code=200)


@router.post("/networks/prune")
async def networks_prune(request: Request, networks: NetworksBackend) -> dict[str, Any]:
    found = filters(request.query_params)
    found.validate(prune_filters.NETWORK_PRUNE)
    prune_filters.prune_until(found)
    return {"NetworksDeleted": await run_in_threadpool(networks.prune, found) or None}
