"""The Docker Engine API over the engine, as a FastAPI app.

Paths are served both unversioned and under /vX.Y (1.24 to 1.41); errors are Docker's
`{"message": ...}` with its status codes. Streaming endpoints (logs, events, load/save)
run their blocking engine calls in threads so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import struct
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from containerd.client.errors import ContainerdError
from dockerd import accesslog
from dockerd.engine import filters as prune_filters
from dockerd.engine.errors import EngineError, InvalidParameter, NotImplementedYet, NotModified
from dockerd.engine.filters import Filters
from dockerd.engine.resources import ResourceService

if TYPE_CHECKING:
    from dockerd.daemon import Daemon

log = logging.getLogger("pydockerd.api")
MIN_API, MAX_API = (1, 24), (1, 41)
_VERSIONED = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _int_query(params: Any, name: str, default: int | None = None) -> int | None:
    """An integer query parameter; a malformed one is the client's error (400), not a server fault."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {raw!r} is not an integer") from None


def _dimension(params: Any, name: str) -> int:
    """A terminal height or width as dockerd reads it: a Go int (Atoi), passed on as a uint32."""
    raw = params.get(name) or "0"
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    value = int(raw)
    if not -(2**63) <= value < 2**63:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": value out of range')
    return value & 0xFFFFFFFF


class _ApiVersion:
    """/vX.Y prefixes (1.24-1.41), Docker's response headers, and the latency metric per route."""

    def __init__(self, app: Any, daemon: Daemon) -> None:
        self.app = app
        self.daemon = daemon

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_target = accesslog.target(scope["path"], scope.get("query_string", b""))
        accesslog.calling(scope["method"], request_target)
        status = [0]

        async def send_noting_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._versioned(scope, receive, send_noting_status, started)
        finally:
            # Once the response is over (a stream's too); 0: the client left before any answer.
            accesslog.answered(scope["method"], request_target, status[0], time.monotonic() - started)

    async def _versioned(self, scope: Any, receive: Any, send: Any, started: float) -> None:
        match = _VERSIONED.match(scope["path"])
        if match:
            version = (int(match.group(1)), int(match.group(2)))
            refusal = ""
            if version > MAX_API:
                refusal = f"client version {version[0]}.{version[1]} is too new. Maximum supported API version is 1.41"
            elif version < MIN_API:
                refusal = (
                    f"client version {version[0]}.{version[1]} is too old. Minimum supported API version is 1.24, "
                    "please upgrade your client to a newer version"
                )
            if refusal:
                await JSONResponse({"message": refusal}, status_code=400)(scope, receive, send)
                return
            scope["path"] = match.group(3)
        extra = [
            (b"api-version", b"1.41"),
            (b"server", f"Docker/{self.daemon.version} (linux)".encode()),
            (b"ostype", b"linux"),
        ]

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")  # the matched route's template keeps the label set small
            self.daemon.metrics.observe(scope["method"], time.monotonic() - started, getattr(route, "path", "") or "other")


class _JobResponse(StreamingResponse):
    """A pull's or push's JSON progress stream that cancels the work when the response ends.

    A client that hangs up ends the response (Starlette stops the stream), and the pull stops,
    as dockerd's does with its request context. This is done here rather than in the body's
    generator: a stopped stream leaves its generator suspended, not closed.
    """

    def __init__(self, job: Any, body: AsyncIterator[bytes]) -> None:
        super().__init__(body, media_type="application/json")
        self.job = job

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.cancel()


def _time_query(params: Any, name: str) -> float | None:
    """A Unix timestamp (seconds, fraction allowed, as the Docker CLI sends) or an RFC 3339 time."""
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if re.fullmatch(r"[+-]?[0-9]{1,18}(\.[0-9]{1,9})?", raw):  # Go's ParseInt parts: no "nan", "inf" or "1e9"
        return float(raw)
    from dockerd.engine.logs import parse_time

    value = parse_time(raw) if len(raw) >= 19 and raw[4] == "-" and raw[10] == "T" else 0.0
    if not value:
        raise InvalidParameter(f"invalid value for {name}: {raw!r} is neither a Unix timestamp nor an RFC 3339 time")
    return value


# pycontainerd's error kinds (containerd.client.errors, by gRPC code) as Docker's statuses (errdefs).
_CONTAINERD_STATUS = {
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 409,
    "UNAVAILABLE": 503, "UNIMPLEMENTED": 501,
}  # fmt: skip

CONTAINER_FILTERS = {
    "ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task", "label", "name", "network",
    "publish", "since", "status", "volume",
}  # fmt: skip


def _filters_query(params: Any, allowed: set[str] | None = None) -> dict[str, Any]:
    """Docker's `filters` parameter as {key: [values]}, its keys checked against ALLOWED."""
    filters = _filters(params)
    if allowed is not None:
        filters.validate(allowed)
    return filters.as_lists()


def _filters(params: Any) -> Filters:
    """Docker's `filters` parameter: JSON of {key: {value: true}} (or the older {key: [values]})."""
    return Filters.from_json(params.get("filters"))


def _registry_auth(request: Request) -> Any:
    """The X-Registry-Auth credentials of a pull or push (none when absent or malformed)."""
    from dockerd.engine.distribution.registry_client import decode_auth_header

    return decode_auth_header(request.headers.get("x-registry-auth"))


def frame(stream: str, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: stream type, 3 zero bytes, big-endian length."""
    kind = {"stdin": 0, "stdout": 1, "stderr": 2}[stream]
    return struct.pack(">BxxxL", kind, len(data)) + data


def create_app(daemon: Daemon) -> FastAPI:
    app = FastAPI(title="pydockerd", docs_url=None, redoc_url=None, openapi_url=None)
    engine = daemon.containers
    images = daemon.images
    resources = ResourceService(engine, images, daemon.client, daemon.events.publish)

    # A plain ASGI middleware, not @app.middleware("http"): Starlette's BaseHTTPMiddleware runs
    # every route in a task of its own and relays streamed bodies (logs, events, pulls) through a
    # memory stream, behind a wrapped `receive`.
    app.add_middleware(_ApiVersion, daemon=daemon)

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

    async def body_json(request: Request) -> dict[str, Any]:
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

    # Swarm mode, plugins and search: answered as a dockerd outside a swarm, with no plugins
    # and no route to an index (dockerd/routers/).
    from dockerd.engine.distribution import pull as distribution
    from dockerd.routers import plugins, search, swarm

    app.include_router(swarm.router)
    app.include_router(plugins.router)
    app.include_router(search.make_router(distribution.CONFIG.default_registry))

    # --- system ----------------------------------------------------------------------------

    @app.get("/_ping")
    @app.head("/_ping")
    async def ping() -> Response:
        return Response("OK", media_type="text/plain", headers={"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return await run_in_threadpool(daemon.version_info)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return await run_in_threadpool(daemon.info)

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        q = request.query_params
        filters = _filters_query(q)
        since, until = _time_query(q, "since"), _time_query(q, "until")
        stream = daemon.events.stream(filters, since, until)
        return StreamingResponse(iterate_in_threadpool(stream), media_type="application/json")

    @app.get("/system/df")
    async def system_df() -> dict[str, Any]:
        return await run_in_threadpool(resources.disk_usage)

    # Nothing to prune yet (no builder, user-defined networks or volumes), but the filters are
    # checked as dockerd checks them, so a client's mistake is an error here too.

    @app.post("/build/prune")
    async def build_prune(request: Request) -> dict[str, Any]:
        filters = _filters(request.query_params)
        try:
            filters.validate(prune_filters.BUILD_CACHE_PRUNE)
            prune_filters.build_cache_until(filters)
        except InvalidParameter as exc:
            raise InvalidParameter(f"failed to prune build cache: {exc}") from None
        return {"CachesDeleted": None, "SpaceReclaimed": 0}

    @app.post("/networks/prune")
    async def networks_prune(request: Request) -> dict[str, Any]:
        filters = _filters(request.query_params)
        filters.validate(prune_filters.NETWORK_PRUNE)
        prune_filters.prune_until(filters)
        return {"NetworksDeleted": None}

    @app.post("/volumes/prune")
    async def volumes_prune(request: Request) -> dict[str, Any]:
        _filters(request.query_params).validate(prune_filters.VOLUME_PRUNE)
        return {"VolumesDeleted": [], "SpaceReclaimed": 0}

    # --- images ----------------------------------------------------------------------------

    @app.get("/images/json")
    async def images_list(request: Request) -> list[dict[str, Any]]:
        from dockerd.engine.image.list import list_images

        filters = _filters_query(request.query_params)
        return await run_in_threadpool(list_images, images, filters)

    @app.post("/images/prune")
    async def images_prune(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(resources.prune_images, _filters(request.query_params))

    @app.post("/images/load")
    async def images_load(request: Request) -> StreamingResponse:
        quiet = _truthy(request.query_params.get("quiet"))
        spool = tempfile.TemporaryFile(dir=daemon.tmp_dir)
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)

        def run() -> Iterator[bytes]:
            try:
                lines = images.load(spool)
            except EngineError as exc:
                yield json.dumps({"errorDetail": {"message": str(exc)}, "error": str(exc)}).encode() + b"\r\n"
                return
            finally:
                spool.close()
            for line in lines:
                if not quiet:
                    yield json.dumps({"stream": line + "\n"}).encode() + b"\r\n"
                else:
                    yield json.dumps({"stream": line + "\n"}).encode() + b"\r\n"

        return StreamingResponse(iterate_in_threadpool(run()), media_type="application/json")

    @app.get("/images/get")
    async def images_get_many(request: Request) -> StreamingResponse:
        return await _save(list(request.query_params.getlist("names")))

    @app.get("/images/{name:path}/get")
    async def images_get(name: str) -> StreamingResponse:
        return await _save([name])

    async def _save(refs: list[str]) -> StreamingResponse:
        if not refs:
            raise InvalidParameter("no image names given")
        out = tempfile.TemporaryFile(dir=daemon.tmp_dir)
        await run_in_threadpool(images.save, refs, out)
        out.seek(0)

        def chunks() -> Iterator[bytes]:
            with out:
                while chunk := out.read(1 << 20):
                    yield chunk

        return StreamingResponse(iterate_in_threadpool(chunks()), media_type="application/x-tar")

    async def _distribution_events(job: Any, action: str) -> AsyncIterator[bytes]:
        """A pull's or push's progress, then the image events of one that succeeded."""
        async for chunk in iterate_in_threadpool(job.stream()):
            yield chunk
        for id_, name in job.events:
            daemon.events.publish("image", action, id_, {"name": name})

    @app.post("/images/create")
    async def images_create(request: Request) -> Response:
        q = request.query_params
        source = q.get("fromSrc")
        if not source and q.get("fromImage"):
            from dockerd.engine.distribution import pull as distribution

            pull = distribution.Pull(daemon.client, q["fromImage"], q.get("tag") or "", _registry_auth(request))
            await run_in_threadpool(pull.prepare)  # errors before any progress are HTTP errors, as dockerd's
            return _JobResponse(pull, _distribution_events(pull, "pull"))
        if not source:
            raise InvalidParameter("Either fromSrc or fromImage must be specified")  # nothing to pull or import
        if source != "-":
            raise NotImplementedYet("importing from a URL is not supported yet: upload the archive (`docker import FILE`)")
        from dockerd.engine.image import importer as image_import

        # Checked before the upload is read, as dockerd does.
        name = image_import.target_name(q.get("repo") or "", q.get("tag") or "")
        changes = q.getlist("changes")
        image_import.apply_changes(changes)
        spool = tempfile.TemporaryFile(dir=daemon.tmp_dir)
        try:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.seek(0)
            image_id = await run_in_threadpool(
                lambda: image_import.import_rootfs(
                    daemon.client, spool, name=name, message=q.get("message") or f"Imported from {source}",
                    changes=changes, docker_version=daemon.version, tmp_dir=daemon.tmp_dir,
                )
            )  # fmt: skip
        finally:
            spool.close()
        daemon.events.publish("image", "import", image_id, {"name": image_id})
        if name:
            daemon.events.publish("image", "tag", image_id, {"name": name})
        return Response(json.dumps({"status": image_id}, separators=(",", ":")) + "\r\n", media_type="application/json")

    @app.post("/images/{name:path}/push")
    async def images_push(name: str, request: Request) -> Response:
        from dockerd.engine.distribution import pull as distribution

        push = distribution.Push(daemon.client, name, request.query_params.get("tag") or "", _registry_auth(request))
        await run_in_threadpool(push.prepare)
        return _JobResponse(push, _distribution_events(push, "push"))

    @app.post("/auth")
    async def auth(request: Request) -> dict[str, str]:
        from dockerd.engine.distribution import pull as distribution
        from dockerd.engine.distribution import registry_client

        credentials = registry_client.auth_from_json(await body_json(request))
        return await run_in_threadpool(distribution.login, credentials)

    @app.post("/build")
    async def build() -> Response:
        raise NotImplementedYet("building images is not supported yet")

    @app.get("/images/{name:path}/json")
    async def image_inspect(name: str) -> dict[str, Any]:
        return await run_in_threadpool(lambda: images.inspect(images.resolve(name)))

    @app.get("/images/{name:path}/history")
    async def image_history(name: str) -> list[dict[str, Any]]:
        return await run_in_threadpool(lambda: images.history(images.resolve(name)))

    @app.post("/images/{name:path}/tag")
    async def image_tag(name: str, request: Request) -> Response:
        repo = request.query_params.get("repo") or ""
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        tagged = await run_in_threadpool(images.tag, name, repo, request.query_params.get("tag") or "")
        daemon.events.publish("image", "tag", name, {"name": tagged})
        return Response(status_code=201)

    @app.delete("/images/{name:path}")
    async def image_remove(name: str, request: Request) -> list[dict[str, str]]:
        force = _truthy(request.query_params.get("force"))

        def remove() -> list[dict[str, str]]:
            image = images.resolve(name)
            # Paused and restarting containers count as running, as dockerd's IsRunning.
            users = [
                (c.id, c.running() or bool(c.state.get("Paused") or c.state.get("Restarting")))
                for c in engine.all()
                if c.image_id == image.id
            ]
            result = images.remove(name, force, users)
            for entry in result:
                for action, ref in entry.items():
                    daemon.events.publish("image", {"Untagged": "untag", "Deleted": "delete"}.get(action, action.lower()), ref, {"name": ref})
            return result

        return await run_in_threadpool(remove)

    # --- containers ------------------------------------------------------------------------

    @app.post("/containers/create")
    async def container_create(request: Request) -> Response:
        body = await body_json(request)
        name = request.query_params.get("name")
        container, warnings = await run_in_threadpool(engine.create, body, name)
        return JSONResponse({"Id": container.id, "Warnings": warnings}, status_code=201)

    @app.get("/containers/json")
    async def container_list(request: Request) -> list[dict[str, Any]]:
        q = request.query_params
        show_all = _truthy(q.get("all"))
        limit = _int_query(q, "limit", -1) or -1
        filters = _filters_query(q, CONTAINER_FILTERS)
        _check_container_filters(filters)
        chosen = []
        for c in engine.all():
            if not show_all and not c.running() and limit < 0 and "status" not in filters and "exited" not in filters:
                continue
            if not _container_matches(c, filters, engine):
                continue
            chosen.append(c)
        if limit > 0:
            chosen = chosen[:limit]
        if _truthy(q.get("size")):
            return await run_in_threadpool(resources.sized_summaries, chosen)
        return [engine.summary(c) for c in chosen]

    @app.get("/containers/{ref}/json")
    async def container_inspect(ref: str, request: Request) -> dict[str, Any]:
        if _truthy(request.query_params.get("size")):
            info = await run_in_threadpool(lambda: resources.with_sizes(engine.get(ref), engine.inspect(ref)))
        else:
            info = engine.inspect(ref)
        info["ExecIDs"] = daemon.execs.live_ids(info["Id"]) or None
        return info

    @app.get("/containers/{ref}/top")
    async def container_top(ref: str, request: Request) -> dict[str, Any]:
        return await run_in_threadpool(resources.top, ref, request.query_params.get("ps_args") or "")

    @app.get("/containers/{ref}/stats")
    async def container_stats(ref: str, request: Request) -> StreamingResponse:
        q = request.query_params
        stream = q.get("stream") is None or _truthy(q.get("stream"))
        frames = resources.stats(ref, stream, _truthy(q.get("one-shot")))
        return StreamingResponse(frames, media_type="application/json")

    @app.post("/containers/{ref}/update")
    async def container_update(ref: str, request: Request) -> dict[str, Any]:
        body = await body_json(request)
        return await run_in_threadpool(resources.update, ref, body)

    @app.post("/containers/{ref}/start")
    async def container_start(ref: str) -> Response:
        await run_in_threadpool(engine.start, ref)
        return Response(status_code=204)

    @app.post("/containers/{ref}/stop")
    async def container_stop(ref: str, request: Request) -> Response:
        q = request.query_params
        timeout = _int_query(q, "t")
        sig = q.get("signal")
        from dockerd.engine.containers import signal_number

        await run_in_threadpool(engine.stop, ref, timeout, signal_number(sig) if sig else None)
        return Response(status_code=204)

    @app.post("/containers/{ref}/restart")
    async def container_restart(ref: str, request: Request) -> Response:
        q = request.query_params
        await run_in_threadpool(engine.restart, ref, _int_query(q, "t"))
        return Response(status_code=204)

    @app.post("/containers/{ref}/kill")
    async def container_kill(ref: str, request: Request) -> Response:
        from dockerd.engine.containers import signal_number

        await run_in_threadpool(engine.kill, ref, signal_number(request.query_params.get("signal") or "SIGKILL"))
        return Response(status_code=204)

    @app.post("/containers/{ref}/pause")
    async def container_pause(ref: str) -> Response:
        await run_in_threadpool(engine.pause, ref)
        return Response(status_code=204)

    @app.post("/containers/{ref}/unpause")
    async def container_unpause(ref: str) -> Response:
        await run_in_threadpool(engine.unpause, ref)
        return Response(status_code=204)

    @app.post("/containers/{ref}/wait")
    async def container_wait(ref: str, request: Request) -> Response:
        condition = request.query_params.get("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        done, answer = engine.wait_condition(ref, condition)

        # Headers go out at once, the body when the condition is met: the CLI registers its wait
        # before it starts the container and will not start it until the headers arrive. The
        # wait holds no thread (a `run -d` leaves its wait behind for the container's lifetime);
        # a client that hangs up cancels it.
        async def result() -> AsyncIterator[bytes]:
            changed = asyncio.Event()
            loop = asyncio.get_running_loop()

            def wake() -> None:
                loop.call_soon_threadsafe(changed.set)

            unwatch = engine.watch(wake)
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

    @app.post("/containers/{ref}/rename")
    async def container_rename(ref: str, request: Request) -> Response:
        await run_in_threadpool(engine.rename, ref, request.query_params.get("name") or "")
        return Response(status_code=204)

    @app.delete("/containers/{ref}")
    async def container_remove(ref: str, request: Request) -> Response:
        q = request.query_params
        await run_in_threadpool(engine.remove, ref, _truthy(q.get("force")), _truthy(q.get("v")))
        return Response(status_code=204)

    @app.get("/containers/{ref}/logs")
    async def container_logs(ref: str, request: Request) -> StreamingResponse:
        q = request.query_params
        c = engine.get(ref)
        stdout, stderr = _truthy(q.get("stdout")), _truthy(q.get("stderr"))
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tty = bool(c.config.get("Tty"))
        timestamps = _truthy(q.get("timestamps"))
        tail = q.get("tail") or "all"
        entries = engine.logs(
            ref,
            follow=_truthy(q.get("follow")),
            stdout=stdout,
            stderr=stderr,
            since=_time_query(q, "since") or 0,
            until=_time_query(q, "until") or 0,
            tail=-1 if tail == "all" else (_int_query(q, "tail") or 0),
        )

        def render() -> Iterator[bytes]:
            for stream, data, stamp in entries:
                payload = (stamp.encode() + b" " + data) if timestamps else data
                yield payload if tty else frame(stream, payload)

        media = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
        return StreamingResponse(iterate_in_threadpool(render()), media_type=media)

    @app.post("/containers/{ref}/resize")
    async def container_resize(ref: str, request: Request) -> Response:
        q = request.query_params
        await run_in_threadpool(engine.resize, ref, _dimension(q, "h"), _dimension(q, "w"))
        return Response(status_code=200)

    # --- exec (POST /exec/{id}/start is a hijacked route: dockerd/attach.py) -----------------

    @app.post("/containers/{ref}/exec")
    async def exec_create(ref: str, request: Request) -> Response:
        body = await body_json(request)
        ex = await run_in_threadpool(daemon.execs.create, ref, body)
        return JSONResponse({"Id": ex.id}, status_code=201)

    @app.get("/exec/{exec_id}/json")
    async def exec_inspect(exec_id: str) -> dict[str, Any]:
        return daemon.execs.inspect(exec_id)

    @app.post("/exec/{exec_id}/resize")
    async def exec_resize(exec_id: str, request: Request) -> Response:
        q = request.query_params
        await run_in_threadpool(daemon.execs.resize, exec_id, _dimension(q, "h"), _dimension(q, "w"))
        return Response(status_code=200)

    # --- container filesystems: cp, export, changes (dockerd/engine/filesystem.py) -----------

    from dockerd.engine.filesystem import STAT_HEADER, FilesystemService, encode_stat

    fs = FilesystemService(engine, images, daemon.tmp_dir)

    def _spooled(f: Any, media_type: str, headers: dict[str, str] | None = None) -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(1 << 20):
                    yield chunk

        return StreamingResponse(iterate_in_threadpool(chunks()), media_type=media_type, headers=headers)

    @app.head("/containers/{ref}/archive")
    async def container_archive_stat(ref: str, request: Request) -> Response:
        info = await run_in_threadpool(fs.stat, ref, request.query_params.get("path") or "")
        return Response(status_code=200, headers={STAT_HEADER: encode_stat(info)})

    @app.get("/containers/{ref}/archive")
    async def container_archive(ref: str, request: Request) -> StreamingResponse:
        info, out = await run_in_threadpool(fs.archive, ref, request.query_params.get("path") or "")
        return _spooled(out, "application/x-tar", {STAT_HEADER: encode_stat(info)})

    @app.put("/containers/{ref}/archive")
    async def container_extract(ref: str, request: Request) -> Response:
        q = request.query_params
        engine.get(ref)
        spool = tempfile.TemporaryFile(dir=daemon.tmp_dir)
        try:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.seek(0)
            await run_in_threadpool(
                lambda: fs.extract(
                    ref, q.get("path") or "", spool, no_overwrite_dir_non_dir=_truthy(q.get("noOverwriteDirNonDir")),
                    copy_uid_gid=_truthy(q.get("copyUIDGID")),
                )
            )  # fmt: skip
        finally:
            spool.close()
        return Response(status_code=200)

    @app.get("/containers/{ref}/export")
    async def container_export(ref: str) -> StreamingResponse:
        return _spooled(await run_in_threadpool(fs.export, ref), "application/octet-stream")

    @app.get("/containers/{ref}/changes")
    async def container_changes(ref: str) -> Response:
        return JSONResponse(await run_in_threadpool(fs.changes, ref))

    @app.post("/containers/prune")
    async def containers_prune(request: Request) -> dict[str, Any]:
        return await run_in_threadpool(resources.prune_containers, _filters(request.query_params))

    return app


CONTAINER_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH_STATES = ("starting", "healthy", "unhealthy", "none")


def _check_container_filters(filters: dict[str, Any]) -> None:
    """dockerd refuses a status or health no container can be in (before listing anything)."""
    for key, allowed in (("status", CONTAINER_STATES), ("health", HEALTH_STATES)):
        wanted = filters.get(key, [])
        for value in list(wanted) if isinstance(wanted, (list, dict)) else [wanted]:
            if value not in allowed:
                if key == "health":
                    raise InvalidParameter(f"Unrecognised filter value for health: {value}")
                raise InvalidParameter(f"Invalid filter '{key}={value}'")


def _container_matches(c: Any, filters: dict[str, Any], engine: Any) -> bool:
    for key, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, (list, dict)) else [wanted]
        if key == "status" and c.status() not in values:
            return False
        # A container without a healthcheck (every one, until healthchecks exist) is "none".
        if key == "health" and ((c.state.get("Health") or {}).get("Status") or "none") not in values:
            return False
        if key == "name" and not any(_regex_search(v, c.name) for v in values):
            return False
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "label":
            labels = c.config.get("Labels") or {}
            for v in values:
                k, _, val = v.partition("=")
                if k not in labels or (val and labels[k] != val):
                    return False
        if key == "exited" and (c.status() != "exited" or str(c.state.get("ExitCode")) not in values):
            return False
        if key == "ancestor" and not any(v in (c.image_ref, c.image_id, c.image_id.removeprefix("sha256:")[:12]) for v in values):
            return False
        if key in ("before", "since"):
            ref = engine.get(values[0])
            if key == "before" and not c.created < ref.created:
                return False
            if key == "since" and not c.created > ref.created:
                return False
    return True


def _regex_search(pattern: str, text: str) -> bool:
    """dockerd's filter regex match: a pattern that does not compile matches nothing."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def default_info(daemon: Daemon, containers: list[Any], image_count: int) -> dict[str, Any]:
    running = sum(1 for c in containers if c.running() and not c.state.get("Paused"))
    paused = sum(1 for c in containers if c.state.get("Paused"))
    return {
        "ID": daemon.id,
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": image_count,
        "Driver": "overlay2",
        "DriverStatus": [],
        "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": ["json-file", "none"]},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "CPUSet": True,
        "PidsLimit": True,
        "IPv4Forwarding": False,
        "Debug": daemon.debug,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": threading.active_count(),
        "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
        "LoggingDriver": daemon.containers.log_defaults.type,  # daemon.json log-driver
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "1" if not os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "2",
        "NEventsListener": daemon.events.listeners(),
        "KernelVersion": platform.release(),
        "OperatingSystem": "pydocker",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "NCPU": os.cpu_count() or 1,
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": daemon.data_root,
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": daemon.version,
        "Runtimes": daemon.containers.runtimes.info(),
        "DefaultRuntime": daemon.containers.runtimes.default,
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "docker-init",
        "SecurityOptions": daemon.containers.security.security_options(),
        "Warnings": [],
    }
