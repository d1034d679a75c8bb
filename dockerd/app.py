"""The Docker Engine API as a FastAPI app: this module only assembles it.

The routes are dockerd/routers/, one module per resource (moby's api/server/router/*), each
a thin HTTP layer over its backend (dockerd/backends.py, in the app's state); paths are
served both unversioned and under /vX.Y (1.24 to 1.41, dockerd/middleware.py); errors are
Docker's `{"message": ...}` with its status codes. Blocking backend calls run in threads
so the event loop keeps serving.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from containerd.client.errors import ContainerdError
from dockerd.backends import Backends
from dockerd.engine.errors import EngineError, NotModified
from dockerd.metrics import Metrics
from dockerd.middleware import ApiVersion
from dockerd.routers import (
    build,
    containers,
    distribution,
    exec,
    images,
    networks,
    plugins,
    search,
    swarm,
    system,
    volumes,
)

log = logging.getLogger("pydockerd.api")

# Every router; no two serve one path and method, so their order does not matter.
ROUTERS = (system, containers, exec, images, distribution, build, networks, volumes, swarm, plugins, search)

# pycontainerd's error kinds (containerd.client.errors, by gRPC code) as Docker's statuses (errdefs).
_CONTAINERD_STATUS = {
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 409,
    "UNAVAILABLE": 503, "UNIMPLEMENTED": 501,
}  # fmt: skip


def create_app(backends: Backends, metrics: Metrics) -> FastAPI:
    app = FastAPI(title="pydockerd", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backends = backends
    app.add_middleware(ApiVersion, version=backends.system.identity.version, metrics=metrics)
    _add_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def engine_error(request: Request, exc: EngineError) -> Response:
        if isinstance(exc, NotModified):
            return Response(status_code=304)
        return JSONResponse({"message": str(exc)}, status_code=exc.status)

    @app.exception_handler(ContainerdError)
    async def containerd_error(request: Request, exc: ContainerdError) -> Response:
        # pycontainerd's answer to what a client asked for (a reference that does not parse, an
        # object that is gone): its kind says whose fault it is. Only unknown kinds are ours (500).
        status = _CONTAINERD_STATUS.get(exc.code, 500)
        if status == 500:
            log.error("%s %s failed in pycontainerd: %s", request.method, request.url.path, exc)
        return JSONResponse({"message": str(exc)}, status_code=status)

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(request: Request, exc: json.JSONDecodeError) -> Response:
        return JSONResponse({"message": f"invalid JSON: {exc}"}, status_code=400)

    @app.exception_handler(404)
    @app.exception_handler(405)
    async def not_found(request: Request, exc: Any) -> Response:
        # dockerd answers a known path asked with another method as it answers an unknown path.
        return JSONResponse({"message": "page not found"}, status_code=404)

    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception) -> Response:
        # A real fault of ours: the client still gets Docker's JSON error, the log the traceback.
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"message": f"internal error: {exc}"}, status_code=500)
