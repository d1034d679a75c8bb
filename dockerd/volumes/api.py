"""What a `/volumes` router needs beyond the service: request bodies and query parameters as
dockerd reads them. Pure functions; the router maps EngineError to its status and message.

  GET    /volumes                 service.list_api(Filters.parse(query filters))
  POST   /volumes/create          service.create(**create_args(body)).to_api()        -> 201
  GET    /volumes/{name}          service.inspect(name)
  DELETE /volumes/{name}?force=   service.remove(name, force=truthy(force))            -> 204
  POST   /volumes/prune?filters=  service.prune(prune_filters(filters, api_version)).to_api()
  GET    /system/df               "Volumes": service.usage()
  GET    /info                    "Plugins": {"Volume": service.driver_names(), ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.validate import json_kind
from dockerd.volumes.filters import Filters

# dockerd 23+ (API 1.42) prunes only anonymous volumes unless all=true; for older clients
# it adds all=true itself, so `docker volume prune` keeps meaning what it meant to them
ANONYMOUS_PRUNE_API = (1, 42)


_STRUCT = "VolumeCreateBody"  # the Go type dockerd 20.10 decodes the body into


def _type_error(value: Any, field: str, go_type: str) -> InvalidParameter:
    return InvalidParameter(
        f"json: cannot unmarshal {json_kind(value)} into Go struct field {_STRUCT}.{field} of type {go_type}"
    )


def _string_map(body: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _type_error(value, key, "map[string]string")
    for item in value.values():
        if not isinstance(item, str):
            raise _type_error(item, key, "string")
    return {str(k): v for k, v in value.items()}


def create_args(body: Any) -> dict[str, Any]:
    """Keyword arguments of VolumeService.create from a `POST /volumes/create` body
    (`Name`, `Driver`, `DriverOpts`, `Labels`; JSON type errors as Go's decoder words them)."""
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise InvalidParameter(
            f"json: cannot unmarshal {json_kind(body)} into Go value of type volume.{_STRUCT}"
        )
    out: dict[str, Any] = {}
    for key, arg in (("Name", "name"), ("Driver", "driver")):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise _type_error(value, key, "string")
        out[arg] = value or ""
    out["options"] = _string_map(body, "DriverOpts")
    out["labels"] = _string_map(body, "Labels")
    return out


def prune_filters(raw: str | None, api_version: tuple[int, int]) -> Filters:
    """The prune filters, with all=true added for clients older than API 1.42 (as dockerd does)."""
    f = Filters.parse(raw)
    if api_version < ANONYMOUS_PRUNE_API and not f.contains("all"):
        return Filters({**f.fields, "all": frozenset({"true"})})
    return f


def truthy(value: str | None) -> bool:
    """A boolean query parameter as dockerd reads it (httputils.BoolValue)."""
    return (value or "").strip().lower() not in ("", "0", "no", "false", "none")
