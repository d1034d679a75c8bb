"""Swarm mode's API (`/swarm`, `/services`, `/nodes`, `/tasks`, `/secrets`, `/configs`),
answered as a Docker node outside any swarm answers it.

pydockerd never joins a swarm, so every request a manager would serve gets dockerd's 503
"This node is not a swarm manager...", after the checks dockerd makes first (the JSON body,
the `version` of an update, the streams of a log request), and leaving is "not part of a
swarm". Creating or joining a swarm, which dockerd would do, is refused as not supported.
The routes and methods are dockerd's: any other method on these paths is its 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from dockerd.engine.errors import InvalidParameter, NotImplementedYet, Unavailable
from dockerd.routers.common import json_body, parse_uint, wants_a_stream

NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node '
    "to swarm and try again."
)

router = APIRouter()


def not_a_manager() -> Unavailable:
    return Unavailable(NOT_A_MANAGER)


def no_swarm_mode() -> NotImplementedYet:
    return NotImplementedYet("swarm mode is not supported: pydockerd cannot create or join a swarm")


def _version(request: Request, what: str, detailed: bool = True) -> None:
    """An update's `version` query parameter (the object's version it applies to), as dockerd checks it."""
    raw = request.query_params.get("version") or ""
    try:
        parse_uint(raw)
    except ValueError as exc:
        raise InvalidParameter(
            f"invalid {what} version '{raw}': {exc}" if detailed else f"invalid {what} version"
        ) from None


# --- the swarm itself --------------------------------------------------------------------------


@router.get("/swarm")
@router.get("/swarm/unlockkey")
async def swarm_inspect() -> None:
    raise not_a_manager()


@router.post("/swarm/init")
async def swarm_init(request: Request) -> None:
    await json_body(request, dict, "swarm.InitRequest")
    raise no_swarm_mode()


@router.post("/swarm/join")
async def swarm_join(request: Request) -> None:
    await json_body(request, dict, "swarm.JoinRequest")
    raise no_swarm_mode()


@router.post("/swarm/leave")
async def swarm_leave() -> None:
    raise Unavailable("This node is not part of a swarm")


@router.post("/swarm/update")
async def swarm_update(request: Request) -> None:
    await json_body(request, dict, "swarm.Spec")
    _version(request, "swarm")
    raise not_a_manager()


@router.post("/swarm/unlock")
async def swarm_unlock(request: Request) -> None:
    await json_body(request, dict, "swarm.UnlockRequest")
    raise not_a_manager()


# --- services, nodes, tasks ----------------------------------------------------------------------


@router.get("/services")
@router.get("/services/{ref}")
@router.delete("/services/{ref}")
@router.get("/nodes")
@router.get("/nodes/{ref}")
@router.delete("/nodes/{ref}")
@router.get("/tasks")
@router.get("/tasks/{ref}")
async def cluster_object() -> None:
    raise not_a_manager()


@router.post("/services/create")
async def service_create(request: Request) -> None:
    await json_body(request, dict, "swarm.ServiceSpec")
    raise not_a_manager()


@router.post("/services/{ref}/update")
async def service_update(ref: str, request: Request) -> None:
    await json_body(request, dict, "swarm.ServiceSpec")
    _version(request, "service")
    raise not_a_manager()


@router.post("/nodes/{ref}/update")
async def node_update(ref: str, request: Request) -> None:
    await json_body(request, dict, "swarm.NodeSpec")
    _version(request, "node")
    raise not_a_manager()


@router.get("/services/{ref}/logs")
@router.get("/tasks/{ref}/logs")
async def cluster_logs(ref: str, request: Request) -> None:
    wants_a_stream(request)
    raise not_a_manager()


# --- secrets and configs -----------------------------------------------------------------------


@router.get("/secrets")
@router.get("/secrets/{ref}")
@router.delete("/secrets/{ref}")
@router.get("/configs")
@router.get("/configs/{ref}")
@router.delete("/configs/{ref}")
async def stored_object() -> None:
    raise not_a_manager()


@router.post("/secrets/create")
async def secret_create(request: Request) -> None:
    await json_body(request, dict, "swarm.SecretSpec")
    raise not_a_manager()


@router.post("/configs/create")
async def config_create(request: Request) -> None:
    await json_body(request, dict, "swarm.ConfigSpec")
    raise not_a_manager()


@router.post("/secrets/{ref}/update")
async def secret_update(ref: str, request: Request) -> None:
    await json_body(request, dict, "swarm.SecretSpec")
    _version(request, "secret", detailed=False)
    raise not_a_manager()


@router.post("/configs/{ref}/update")
async def config_update(ref: str, request: Request) -> None:
    await json_body(request, dict, "swarm.ConfigSpec")
    _version(request, "config", detailed=False)
    raise not_a_manager()
