"""Container routes (moby's api/server/router/container): create, list, inspect, the
lifecycle verbs, wait, logs, resize, top, stats, update, prune, and the filesystem routes
(archive for `docker cp`, export, changes). Attach is a hijacked connection
(dockerd/attach.py), registered here too (`register_hijacked`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from dockerd.attach import make_attach_handler
from dockerd.backends import Backends
from dockerd.engine.container import list as listing
from dockerd.engine.container.copy import STAT_HEADER, encode_stat
from dockerd.engine.container.stop import signal_number
from dockerd.engine.errors import InvalidParameter
from dockerd.hijack import HijackRouter
from dockerd.routers.common import (
    body_json,
    dimension,
    filters,
    filters_query,
    int_query,
    spool_body,
    spooled,
    time_query,
    truthy,
)
from dockerd.routers.deps import ContainersBackend, ExecsBackend
from dockerd.stdcopy import frame

router = APIRouter()


def register_hijacked(hijack: HijackRouter, backends: Backends) -> None:
    """POST /containers/{id}/attach: served on the raw connection (dockerd/attach.py)."""
    containers = backends.containers
    hijack.add(
        "POST", r"/containers/(?P<name>[^/]+)/attach", make_attach_handler(containers, containers.publish)
    )


@router.post("/containers/create")
async def container_create(request: Request, containers: ContainersBackend) -> Response:
    body = await body_json(request)
    name = request.query_params.get("name")
    container, warnings = await run_in_threadpool(containers.create, body, name)
    return JSONResponse({"Id": container.id, "Warnings": warnings}, status_code=201)


@router.get("/containers/json")
async def container_list(request: Request, containers: ContainersBackend) -> list[dict[str, Any]]:
    q = request.query_params
    show_all = truthy(q.get("all"))
    limit = int_query(q, "limit", -1) or -1
    wanted = filters_query(q, listing.FILTERS)
    return await run_in_threadpool(containers.list_containers, show_all, limit, wanted, truthy(q.get("size")))


@router.get("/containers/{ref}/json")
async def container_inspect(
    ref: str, request: Request, containers: ContainersBackend, execs: ExecsBackend
) -> dict[str, Any]:
    if truthy(request.query_params.get("size")):
        info = await run_in_threadpool(containers.inspect, ref, True)
    else:
        info = containers.inspect(ref)
    info["ExecIDs"] = execs.live_ids(info["Id"]) or None  # the exec backend's
    return info


@router.get("/containers/{ref}/top")
async def container_top(ref: str, request: Request, containers: ContainersBackend) -> dict[str, Any]:
    return await run_in_threadpool(containers.top, ref, request.query_params.get("ps_args") or "")


@router.get("/containers/{ref}/stats")
async def container_stats(ref: str, request: Request, containers: ContainersBackend) -> StreamingResponse:
    q = request.query_params
    stream = q.get("stream") is None or truthy(q.get("stream"))
    frames = containers.stats(ref, stream, truthy(q.get("one-shot")))
    return StreamingResponse(frames, media_type="application/json")


@router.post("/containers/{ref}/update")
async def container_update(ref: str, request: Request, containers: ContainersBackend) -> dict[str, Any]:
    body = await body_json(request)
    return await run_in_threadpool(containers.update, ref, body)


@router.post("/containers/{ref}/start")
async def container_start(ref: str, containers: ContainersBackend) -> Response:
    await run_in_threadpool(containers.start, ref)
    return Response(status_code=204)


@router.post("/containers/{ref}/stop")
async def container_stop(ref: str, request: Request, containers: ContainersBackend) -> Response:
    q = request.query_params
    timeout = int_query(q, "t")
    sig = q.get("signal")
    await run_in_threadpool(containers.stop, ref, timeout, signal_number(sig) if sig else None)
    return Response(status_code=204)


@router.post("/containers/{ref}/restart")
async def container_restart(ref: str, request: Request, containers: ContainersBackend) -> Response:
    await run_in_threadpool(containers.restart, ref, int_query(request.query_params, "t"))
    return Response(status_code=204)


@router.post("/containers/{ref}/kill")
async def container_kill(ref: str, request: Request, containers: ContainersBackend) -> Response:
    await run_in_threadpool(
        containers.kill, ref, signal_number(request.query_params.get("signal") or "SIGKILL")
    )
    return Response(status_code=204)


@router.post("/containers/{ref}/pause")
async def container_pause(ref: str, containers: ContainersBackend) -> Response:
    await run_in_threadpool(containers.pause, ref)
    return Response(status_code=204)


@router.post("/containers/{ref}/unpause")
async def container_unpause(ref: str, containers: ContainersBackend) -> Response:
    await run_in_threadpool(containers.unpause, ref)
    return Response(status_code=204)


@router.post("/containers/{ref}/wait")
async def container_wait(ref: str, request: Request, containers: ContainersBackend) -> Response:
    condition = request.query_params.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidParameter(f"invalid condition: {condition!r}")
    done, answer = containers.wait_condition(ref, condition)

    # Headers go out at once, the body when the condition is met: the CLI registers its wait
    # before it starts the container and will not start it until the headers arrive. The
    # wait holds no thread (a `run -d` leaves its wait behind for the container's lifetime);
    # a client that hangs up cancels it.
    async def result() -> AsyncIterator[bytes]:
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(changed.set)

        unwatch = containers.watch(wake)
        try:
            while not done():
                changed.clear()
                if done():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 1.0)
        finally:
            unwatch()
        yield json.dumps(answer(), separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(result(), media_type="application/json")


@router.post("/containers/{ref}/rename")
async def container_rename(ref: str, request: Request, containers: ContainersBackend) -> Response:
    await run_in_threadpool(containers.rename, ref, request.query_params.get("name") or "")
    return Response(status_code=204)


@router.delete("/containers/{ref}")
async def container_remove(ref: str, request: Request, containers: ContainersBackend) -> Response:
    q = request.query_params
    await run_in_threadpool(containers.remove, ref, truthy(q.get("force")), truthy(q.get("v")))
    return Response(status_code=204)


@router.get("/containers/{ref}/logs")
async def container_logs(ref: str, request: Request, containers: ContainersBackend) -> StreamingResponse:
    q = request.query_params
    c = containers.get(ref)
    stdout, stderr = truthy(q.get("stdout")), truthy(q.get("stderr"))
    if not stdout and not stderr:
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tty = bool(c.config.get("Tty"))
    timestamps = truthy(q.get("timestamps"))
    tail = q.get("tail") or "all"
    entries = containers.logs(
        ref,
        follow=truthy(q.get("follow")),
        stdout=stdout,
        stderr=stderr,
        since=time_query(q, "since") or 0,
        until=time_query(q, "until") or 0,
        tail=-1 if tail == "all" else (int_query(q, "tail") or 0),
    )

    def render() -> Iterator[bytes]:
        for stream, data, stamp in entries:
            payload = (stamp.encode() + b" " + data) if timestamps else data
            yield payload if tty else frame(stream, payload)

    media = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    return StreamingResponse(iterate_in_threadpool(render()), media_type=media)


@router.post("/containers/{ref}/resize")
async def container_resize(ref: str, request: Request, containers: ContainersBackend) -> Response:
    q = request.query_params
    await run_in_threadpool(containers.resize, ref, dimension(q, "h"), dimension(q, "w"))
    return Response(status_code=200)


# --- the container's filesystem: cp, export, changes ------------------------------------------


@router.head("/containers/{ref}/archive")
async def container_archive_stat(ref: str, request: Request, containers: ContainersBackend) -> Response:
    info = await run_in_threadpool(containers.stat_path, ref, request.query_params.get("path") or "")
    return Response(status_code=200, headers={STAT_HEADER: encode_stat(info)})


@router.get("/containers/{ref}/archive")
async def container_archive(ref: str, request: Request, containers: ContainersBackend) -> StreamingResponse:
    info, out = await run_in_threadpool(containers.archive, ref, request.query_params.get("path") or "")
    return spooled(out, "application/x-tar", {STAT_HEADER: encode_stat(info)})


@router.put("/containers/{ref}/archive")
async def container_extract(ref: str, request: Request, containers: ContainersBackend) -> Response:
    q = request.query_params
    containers.get(ref)  # a missing container is refused before the upload is read
    upload = await spool_body(request, containers.tmp_dir)
    try:
        await run_in_threadpool(
            lambda: containers.extract(
                ref, q.get("path") or "", upload, no_overwrite_dir_non_dir=truthy(q.get("noOverwriteDirNonDir")),
                copy_uid_gid=truthy(q.get("copyUIDGID")),
            )
        )  # fmt: skip
    finally:
        upload.close()
    return Response(status_code=200)


@router.get("/containers/{ref}/export")
async def container_export(ref: str, containers: ContainersBackend) -> StreamingResponse:
    return spooled(await run_in_threadpool(containers.export, ref), "application/octet-stream")


@router.get("/containers/{ref}/changes")
async def container_changes(ref: str, containers: ContainersBackend) -> Response:
    return JSONResponse(await run_in_threadpool(containers.changes, ref))


@router.post("/containers/prune")
async def containers_prune(request: Request, containers: ContainersBackend) -> dict[str, Any]:
    return await run_in_threadpool(containers.prune, filters(request.query_params))
