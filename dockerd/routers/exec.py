"""Exec routes (moby's exec routes of api/server/router/container): create, inspect, resize,
served by the exec backend (dockerd/engine/execs.py). POST /exec/{id}/start is a hijacked
connection (dockerd/attach.py), registered here too (`register_hijacked`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dockerd.attach import make_exec_start_handler
from dockerd.backends import Backends
from dockerd.hijack import HijackRouter
from dockerd.routers.common import body_json, dimension
from dockerd.routers.deps import ExecsBackend

router = APIRouter()


def register_hijacked(hijack: HijackRouter, backends: Backends) -> None:
    """POST /exec/{id}/start: served on the raw connection (dockerd/attach.py)."""
    hijack.add("POST", r"/exec/(?P<id>[^/]+)/start", make_exec_start_handler(backends.execs))


@router.post("/containers/{ref}/exec")
async def exec_create(ref: str, request: Request, execs: ExecsBackend) -> Response:
    body = await body_json(request)
    ex = await run_in_threadpool(execs.create, ref, body)
    return JSONResponse({"Id": ex.id}, status_code=201)


@router.get("/exec/{exec_id}/json")
async def exec_inspect(exec_id: str, execs: ExecsBackend) -> dict[str, Any]:
    return execs.inspect(exec_id)


@router.post("/exec/{exec_id}/resize")
async def exec_resize(exec_id: str, request: Request, execs: ExecsBackend) -> Response:
    q = request.query_params
    await run_in_threadpool(execs.resize, exec_id, dimension(q, "h"), dimension(q, "w"))
    return Response(status_code=200)
