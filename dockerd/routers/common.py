"""Request decoding shared by the routers, in dockerd's wording."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.validate import json_kind


async def json_body(
    request: Request, want: type, go_type: str, prefix: str = "", eof: str = "got EOF while reading request body"
) -> Any:
    """The request's JSON body, as dockerd decodes it: an empty body is an EOF (400), and a
    document of the wrong JSON type is refused naming the Go type it was decoded into.
    `prefix` and `eof` are for the endpoints whose errors dockerd words differently."""
    raw = await request.body()
    if not raw.strip():
        raise InvalidParameter(prefix + eof)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"{prefix}invalid JSON: {exc}") from None
    if not isinstance(value, want):
        raise InvalidParameter(f"{prefix}json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}")
    return value


def parse_uint(raw: str) -> int:
    """Go's strconv.ParseUint(raw, 10, 64), raising ValueError with Go's wording."""
    if not raw.isascii() or not raw.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    value = int(raw)
    if value >= 1 << 64:
        raise ValueError(f'strconv.ParseUint: parsing "{raw}": value out of range')
    return value


def wants_a_stream(request: Request) -> None:
    """Logs endpoints: at least one of stdout and stderr (dockerd's check, before anything else)."""
    q = request.query_params
    if not any(go_bool(q.get(name)) for name in ("stdout", "stderr")):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")


def go_bool(value: str | None) -> bool:
    """dockerd's httputils.BoolValue: anything but absent, "", "0", "no", "false" and "none" is true."""
    return (value or "").strip().lower() not in ("", "0", "no", "false", "none")
