"""The managed-plugin API (`/plugins`), answered as a dockerd with no plugin installed.

pydockerd has no plugin system: the list is empty (after dockerd's filter checks), every
named plugin is dockerd's 404 `plugin "NAME" not found` (after the checks dockerd makes
first on the query and body), and installing one (privileges, pull, create) is refused as not
supported.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from dockerd.engine.errors import InvalidParameter, NotFound, NotImplementedYet
from dockerd.routers.common import json_body

router = APIRouter()
FILTERS = {"enabled", "capability"}


def plugin_not_found(name: str) -> NotFound:
    return NotFound(f"plugin {json.dumps(name)} not found")  # Go's %q of the name


def no_plugins() -> NotImplementedYet:
    return NotImplementedYet("plugins are not supported: pydockerd cannot install a plugin")


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


def _check_filters(raw: str) -> None:
    try:
        filters = json.loads(raw or "{}")
    except ValueError:
        raise InvalidParameter(f"invalid filters: {raw!r} is not JSON") from None
    if not isinstance(filters, dict):
        raise InvalidParameter("invalid filters: want a JSON object")
    for key, wanted in filters.items():
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
        values = [str(v) for v in (wanted if isinstance(wanted, (list, dict)) else [wanted])]
        # dockerd reads `enabled` as one boolean; anything else names the filter and its values.
        if key == "enabled" and (len(values) != 1 or values[0].lower() not in ("true", "false", "1", "0")):
            raise InvalidParameter(f"Invalid filter 'enabled={_go_list(values)}'")


@router.get("/plugins")
async def plugins_list(request: Request) -> list[Any]:
    _check_filters(request.query_params.get("filters") or "")
    return []


@router.get("/plugins/privileges")
@router.post("/plugins/pull")
@router.post("/plugins/create")
async def plugin_install() -> None:
    raise no_plugins()


@router.get("/plugins/{name:path}/json")
@router.delete("/plugins/{name:path}")
@router.post("/plugins/{name:path}/disable")
@router.post("/plugins/{name:path}/push")
async def plugin_named(name: str) -> None:
    raise plugin_not_found(name)


@router.post("/plugins/{name:path}/enable")
async def plugin_enable(name: str, request: Request) -> None:
    raw = request.query_params.get("timeout") or ""
    try:
        int(raw)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None
    raise plugin_not_found(name)


@router.post("/plugins/{name:path}/set")
async def plugin_set(name: str, request: Request) -> None:
    await json_body(request, list, "[]string")
    raise plugin_not_found(name)


@router.post("/plugins/{name:path}/upgrade")
async def plugin_upgrade(name: str, request: Request) -> None:
    await json_body(request, list, "types.PluginPrivileges", prefix="failed to parse privileges: ", eof="EOF")
    if not request.query_params.get("remote"):
        raise InvalidParameter("invalid reference format")  # the image to upgrade to
    raise plugin_not_found(name)
