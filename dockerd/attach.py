"""Hijacked endpoints: POST /containers/{id}/attach and POST /exec/{id}/start.

The client's connection becomes a raw stream: container output goes out (multiplexed
frames unless the container has a TTY), client bytes go to the container's stdin FIFO.
Docker's rules (moby container/stream/attach.go), followed here:

* the detach keys (ctrl-p ctrl-q by default) are looked for only when the container has a
  TTY; they end the attachment and leave the container running;
* when the client's stdin ends, a non-TTY container with StdinOnce gets EOF on its stdin
  (Tasks.CloseIO) and the attachment lasts until its output ends; in every other case the
  end of the client's stdin ends the attachment;
* the client may attach before the container starts (`docker run` does): its stdin waits
  (unread, so the client feels back-pressure) until the task runs and its FIFO is there.

Nothing here blocks the event loop or parks a thread per session: FIFOs are non-blocking
and waited on with the loop's reader/writer callbacks, and container output arrives
through a queue the log copier threads fill with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dockerd.engine.errors import EngineError
from dockerd.engine.events import Publish
from dockerd.hijack import RAW_STREAM, HijackHandler, HijackRequest, RawStream, StreamClosedError
from dockerd.stdcopy import frame

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container
    from dockerd.engine.execs import Exec, ExecEngine

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
CHUNK = 65536

# How a stdin pump ended.
STDIN_EOF = "eof"  # the client sent everything (half-close or disconnect)
STDIN_DETACHED = "detached"  # the client typed the detach keys


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's syntax: comma-separated `ctrl-<letter>`, `ctrl-@`, `ctrl-[`... or single characters."""
    if not text:
        return DEFAULT_DETACH_KEYS
    out = bytearray()
    for part in text.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5]
            if ch.isalpha():
                out.append(ord(ch.lower()) - ord("a") + 1)
            elif ch in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[ch])
            else:
                raise ValueError(f"Invalid detach keys ({text}) provided")
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise ValueError(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class DetachScanner:
    """Docker's escape proxy: holds back a possible prefix of the keys, reports the whole sequence."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to pass on, whether the detach sequence was completed)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes((byte,))
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += candidate
            self.held = b""
        return bytes(out), False


class OutputQueue(queue.Queue):  # type: ignore[type-arg]
    """What the engine's log copier threads put (stream, bytes | None) into, read by a coroutine."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._items: asyncio.Queue[tuple[str, bytes | None]] = asyncio.Queue()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the loop is closed: pydockerd is shutting down
            pass

    async def next(self) -> tuple[str, bytes | None]:
        return await self._items.get()


# --- FIFOs without blocking the loop ------------------------------------------------------


async def _wait_fd(fd: int, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def open_fifo_writer(path: str) -> int | None:
    """Our end of a stdin FIFO, or None when nobody reads it any more (the process is gone)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            return None
        raise


async def write_all(fd: int, data: bytes) -> bool:
    """Write everything to a non-blocking FIFO; False when its reader went away."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _wait_fd(fd, writable=True)
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                return False
            raise
    return True


async def read_fifo(fd: int) -> bytes:
    """The next bytes from a non-blocking FIFO; b"" once every writer has closed it."""
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await _wait_fd(fd, writable=False)


async def pump_stdin(
    stream: RawStream,
    open_target: Callable[[], Awaitable[int | None]],
    keys: bytes | None,
) -> str:
    """Copy the client's bytes into a stdin FIFO until its EOF or the detach keys.

    `open_target` waits for the process and opens its FIFO (None: the process is gone, and
    what the client still sends is read and dropped). The first byte is awaited before the
    FIFO is opened, so a session that never types never waits for anything.
    """
    scanner = DetachScanner(keys) if keys else None
    fd: int | None = -1
    try:
        while True:
            data = await stream.read()
            if not data:
                return STDIN_EOF
            detached = False
            if scanner is not None:
                data, detached = scanner.feed(data)
            if data and fd is not None:
                if fd < 0:
                    fd = await open_target()
                if fd is not None and not await write_all(fd, data):
                    os.close(fd)
                    fd = None
            if detached:
                return STDIN_DETACHED
    finally:
        if fd is not None and fd >= 0:
            os.close(fd)


async def finish_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- attach ---------------------------------------------------------------------------------


async def _wait_task_running(engine: Containers, c: Container, stream: RawStream) -> bool:
    """Wait until the container runs (True), or has run and stopped meanwhile, or the client left."""
    was_running = c.running()
    started = c.state.get("StartedAt")
    delay = 0.01
    while True:
        if c.running():
            if engine.stdin_fifo(c) is not None:
                return True
        elif was_running or c.state.get("StartedAt") != started or c.removal_in_progress:
            return False
        if stream.closed:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)


def make_attach_handler(engine: Containers, publish: Publish | None = None) -> HijackHandler:
    """POST /containers/{id}/attach: dockerd's checks, then the session (logs first if asked)."""

    async def attach(req: HijackRequest, stream: RawStream) -> None:
        ref = req.params["name"]
        try:
            c = engine.get(ref)
        except EngineError as exc:
            await stream.send_error(exc.status, str(exc))
            return
        if c.state.get("Paused"):
            await stream.send_error(409, f"container {ref} is paused, unpause the container before attach")
            return
        try:
            keys = parse_detach_keys(req.query_value("detachKeys"))  # checked even where unused, as dockerd
        except ValueError as exc:
            await stream.send_error(400, str(exc))
            return
        live = req.query_bool("stream")
        output = OutputQueue(asyncio.get_running_loop()) if live else None
        if output is not None:
            engine.attach_output(c.id, output)
        try:
            await stream.begin_stream(RAW_STREAM)
            if publish is not None and live:
                publish("container", "attach", c.id, {"image": c.image_ref, "name": c.name})
            await _attach_session(engine, c, req, stream, output, keys, publish)
        except StreamClosedError:
            pass
        finally:
            if output is not None:
                engine.detach_output(c.id, output)
            await stream.close()

    return attach


async def _attach_session(
    engine: Containers,
    c: Container,
    req: HijackRequest,
    stream: RawStream,
    output: OutputQueue | None,
    keys: bytes,
    publish: Publish | None,
) -> None:
    """The logs (with `logs=1`), then, with `stream=1`, output out and stdin in until one of
    Docker's ends: the output's, the client's, its stdin's (by the rules above), a detach."""
    loop = asyncio.get_running_loop()
    tty = bool(c.config.get("Tty"))
    want_stdin = req.query_bool("stdin") and bool(c.config.get("OpenStdin"))
    want = {s for s in ("stdout", "stderr") if req.query_bool(s)}

    async def send(kind: str, data: bytes) -> None:
        if kind in want:
            await stream.write(data if tty else frame(kind, data))

    async def open_stdin() -> int | None:
        if not await _wait_task_running(engine, c, stream):
            return None
        path = engine.stdin_fifo(c)
        return open_fifo_writer(path) if path else None

    if req.query_bool("logs"):
        entries = await loop.run_in_executor(None, lambda: list(engine.logs(c.id, follow=False)))
        for kind, data, _ in entries:
            await send(kind, data)
    if output is None:
        return
    tasks: list[asyncio.Task[Any]] = []
    try:
        out_task = asyncio.create_task(_pump_output(output, engine.streams_of(c), send))
        tasks.append(out_task)
        in_task = (
            asyncio.create_task(pump_stdin(stream, open_stdin, keys if tty else None)) if want_stdin else None
        )
        if in_task is not None:
            tasks.append(in_task)
        closed_task = asyncio.create_task(stream.wait_closed())
        tasks.append(closed_task)
        while True:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if out_task in done or closed_task in done:
                break
            if in_task is not None and in_task in done:
                tasks.remove(in_task)
                how = in_task.result()
                if how == STDIN_DETACHED:
                    if publish is not None:
                        publish("container", "detach", c.id, {"image": c.image_ref, "name": c.name})
                    break
                if not (c.config.get("StdinOnce") and not tty):
                    break  # Docker: the end of the client's stdin ends the attachment
                # StdinOnce: the container's stdin ends too; its output still comes.
                if await _wait_task_running(engine, c, stream):
                    await loop.run_in_executor(None, engine.close_stdin, c.id)
                in_task = None
        if out_task.done() and not out_task.cancelled():
            out_task.result()  # re-raise a failure to write to the client
    finally:
        await finish_tasks(tasks)


async def _pump_output(
    output: OutputQueue, streams: list[str], send: Callable[[str, bytes], Awaitable[None]]
) -> None:
    open_streams = set(streams)
    while open_streams:
        kind, data = await output.next()
        if data is None:
            open_streams.discard(kind)
            continue
        await send(kind, data)


# --- exec start -----------------------------------------------------------------------------


def make_exec_start_handler(execs: ExecEngine) -> HijackHandler:
    """POST /exec/{id}/start: `{"Detach": true}` answers 200 once the process runs; otherwise the
    connection carries the exec's stdio as attach does (an error after the upgrade is written
    into the stream, as dockerd does, and the client reads the exit code from inspect)."""

    async def exec_start(req: HijackRequest, stream: RawStream) -> None:
        loop = asyncio.get_running_loop()
        try:
            body = req.json() or {}
        except ValueError as exc:
            await stream.send_error(400, f"invalid JSON: {exc}")
            return
        if not isinstance(body, dict):
            await stream.send_error(400, "invalid JSON: the body must be an object")
            return
        body = {k.lower(): v for k, v in body.items()}  # Go's JSON decoding ignores the case of names
        # dockerd frames the stream by the start request's Tty, not the exec's: docker-py creates
        # an exec with a terminal and starts it without one, and then reads frames.
        raw = bool(body.get("tty"))
        try:
            ex = execs.get(req.params["id"])
            if body.get("detach"):
                execs.claim(ex.id)
                await loop.run_in_executor(None, execs.start, ex, False)
                await stream.send_response(200, b"", content_type=None)
                return
        except EngineError as exc:
            await stream.send_error(exc.status, str(exc))
            return
        await stream.begin_stream(RAW_STREAM)
        try:
            execs.claim(ex.id)
            fifos = await loop.run_in_executor(None, execs.start, ex, True)
        except EngineError as exc:
            message = str(exc).encode() + b"\r\n"
            try:
                await stream.write(message if raw else frame("stdout", message))
            except StreamClosedError:
                pass
            await stream.close()
            return
        try:
            await _exec_session(execs, ex, fifos, stream, _raw if raw else frame)
        finally:
            ex.output_done.set()
            await stream.close()

    return exec_start


async def _exec_session(
    execs: ExecEngine,
    ex: Exec,
    fifos: dict[str, str],
    stream: RawStream,
    frame: Callable[[str, bytes], bytes],
) -> None:
    """FRAME wraps each chunk of output (multiplexing frames, or nothing for a raw stream)."""
    loop = asyncio.get_running_loop()
    readers: dict[str, int] = {}
    tasks: list[asyncio.Task[Any]] = []
    try:
        for kind in ("stdout", "stderr"):
            if kind in fifos:
                # The shim holds its end open until it has delivered everything: no writer means done.
                readers[kind] = os.open(fifos[kind], os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)

        async def copy_out(kind: str, fd: int) -> None:
            while data := await read_fifo(fd):
                ex.progress()
                chunk = frame(kind, data)
                if chunk:
                    await stream.write(chunk)
                ex.progress()

        async def all_output() -> None:
            await asyncio.gather(*(copy_out(kind, fd) for kind, fd in readers.items()))
            # dockerd lets the stream go only once the exit code is recorded: clients inspect next.
            exited: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                try:
                    loop.call_soon_threadsafe(_resolve, exited)
                except RuntimeError:  # the loop is closed: pydockerd is shutting down
                    pass

            execs.on_exit(ex, wake)
            await exited

        async def open_stdin() -> int | None:
            return open_fifo_writer(fifos["stdin"])

        out_task = asyncio.create_task(all_output()) if readers else None
        keys = (ex.detach_keys or DEFAULT_DETACH_KEYS) if ex.tty else None
        in_task = asyncio.create_task(pump_stdin(stream, open_stdin, keys)) if "stdin" in fifos else None
        closed_task = asyncio.create_task(stream.wait_closed())
        tasks = [t for t in (out_task, in_task, closed_task) if t is not None]
        if out_task is None and in_task is None:
            return  # nothing to carry (dockerd ends such a session at once)
        while True:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if closed_task in done or (out_task is not None and out_task in done):
                break
            if in_task is not None and in_task in done:
                tasks.remove(in_task)
                how = in_task.result()
                in_task = None
                if how == STDIN_DETACHED:
                    await loop.run_in_executor(None, execs.detached, ex)
                    break
                if ex.tty:
                    break  # dockerd: the end of a terminal's input ends the session
                await loop.run_in_executor(None, execs.close_stdin, ex)
                if out_task is None:
                    break
        if out_task is not None and out_task.done() and not out_task.cancelled():
            out_task.result()
    except StreamClosedError:
        pass
    finally:
        await finish_tasks(tasks)
        for fd in readers.values():
            os.close(fd)


def _raw(kind: str, data: bytes) -> bytes:
    """An exec started with Tty: its output as it is; a separate stderr is dropped, as dockerd
    has nowhere to put it on an unframed stream."""
    return data if kind == "stdout" else b""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
