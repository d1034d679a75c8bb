"""Request decoding and response helpers shared by the routers, in dockerd's wording."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import QueryParams

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.filters import Filters
from dockerd.engine.logs import parse_time
from dockerd.engine.validate import json_kind


def truthy(value: str | None) -> bool:
    """A boolean query value as pydockerd has always read most of them: 1, true or yes."""
    return value is not None and value.lower() in ("1", "true", "yes")


def int_query(params: QueryParams, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; a malformed one is the client's error (400), not a server fault."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r} is not an integer") from None


def dimension(params: QueryParams, name: str) -> int:
    """A terminal height or width as dockerd reads it: a Go int (Atoi), passed on as a uint32."""
    raw = params.get(name) or "0"
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    value = int(raw)
    if not -(2**63) <= value < 2**63:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": value out of range')
    return value & 0xFFFFFFFF


def time_query(params: QueryParams, name: str) -> float | None:
    """A Unix timestamp (seconds, fraction allowed, as the Docker CLI sends) or an RFC 3339 time."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if re.fullmatch(r"[+-]?[0-9]{1,18}(\.[0-9]{1,9})?", raw):  # Go's ParseInt parts: no "nan", "inf" or "1e9"
        return float(raw)
    value = parse_time(raw) if len(raw) >= 19 and raw[4] == "-" and raw[10] == "T" else 0.0
    if not value:
        raise InvalidParameter(
            f"invalid value for {name}: {raw!r} is neither a Unix timestamp nor an RFC 3339 time"
        )
    return value


def filters(params: QueryParams) -> Filters:
    """Docker's `filters` parameter: JSON of {key: {value: true}} (or the older {key: [values]})."""
    return Filters.from_json(params.get("filters"))


def filters_query(params: QueryParams, allowed: set[str] | None = None) -> dict[str, Any]:
    """Docker's `filters` parameter as {key: [values]}, its keys checked against ALLOWED."""
    found = filters(params)
    if allowed is not None:
        found.validate(allowed)
    return found.as_lists()


async def body_json(request: Request) -> dict[str, Any]:
    """A JSON object body; an empty body is {} (create, update, exec create)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # (RecursionError: nesting deeper than Python's stack)
        raise InvalidParameter(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidParameter("invalid JSON: the body must be an object")
    return value


async def spool_body(request: Request, tmp_dir: str) -> IO[bytes]:
    """The request body in a temporary file under TMP_DIR (uploads: archives, images), rewound.
    The caller closes it."""
    spool = tempfile.TemporaryFile(dir=tmp_dir)
    try:
        async for chunk in request.stream():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def spooled(f: IO[bytes], media_type: str, headers: dict[str, str] | None = None) -> StreamingResponse:
    """Stream a spooled file (closed at the end) from a worker thread."""

    def chunks() -> Iterator[bytes]:
        with f:
            while chunk := f.read(1 << 20):
                yield chunk

    return StreamingResponse(iterate_in_threadpool(chunks()), media_type=media_type, headers=headers)


async def json_body(
    request: Request,
    want: type,
    go_type: str,
    prefix: str = "",
    eof: str = "got EOF while reading request body",
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
        raise InvalidParameter(
            f"{prefix}json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}"
        )
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
