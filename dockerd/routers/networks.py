"""Network routes (moby's api/server/router/network). The network backend is
dockerd/network/ (not wired yet): only prune is answered, its filters checked as dockerd
checks them, with nothing to prune; every other /networks path is dockerd's 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dockerd.engine import filters as prune_filters
from dockerd.routers.common import filters

router = APIRouter()


@router.post("/networks/prune")
async def networks_prune(request: Request) -> dict[str, Any]:
    found = filters(request.query_params)
    found.validate(prune_filters.NETWORK_PRUNE)
    prune_filters.prune_until(found)
    return {"NetworksDeleted": None}
