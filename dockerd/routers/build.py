"""Build routes (moby's api/server/router/build): POST /build (the classic builder's
protocol) and POST /build/prune; the builder backend is dockerd/builder/ (not wired yet:
a build is refused as not supported, prune checks dockerd's filters and finds nothing)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from dockerd.engine import filters as prune_filters
from dockerd.engine.errors import InvalidParameter, NotImplementedYet
from dockerd.routers.common import filters

router = APIRouter()


@router.post("/build")
async def build() -> Response:
    raise NotImplementedYet("building images is not supported yet")


@router.post("/build/prune")
async def build_prune(request: Request) -> dict[str, Any]:
    # Nothing to prune yet, but the filters are checked as dockerd checks them, so a
    # client's mistake is an error here too.
    found = filters(request.query_params)
    try:
        found.validate(prune_filters.BUILD_CACHE_PRUNE)
        prune_filters.build_cache_until(found)
    except InvalidParameter as exc:
        raise InvalidParameter(f"failed to prune build cache: {exc}") from None
    return {"CachesDeleted": None, "SpaceReclaimed": 0}
