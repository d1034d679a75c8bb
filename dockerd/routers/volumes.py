"""Volume routes (moby's api/server/router/volume). The volume backend is dockerd/volumes/
(its service, not wired yet; volumes/api.py decodes these routes' bodies): only prune is
answered, its filters checked as dockerd checks them, with nothing to prune; every other
/volumes path is dockerd's 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from dockerd.engine import filters as prune_filters
from dockerd.routers.common import filters

router = APIRouter()


@router.post("/volumes/prune")
async def volumes_prune(request: Request) -> dict[str, Any]:
    filters(request.query_params).validate(prune_filters.VOLUME_PRUNE)
    return {"VolumesDeleted": [], "SpaceReclaimed": 0}
