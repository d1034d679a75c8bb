"""Hijacked endpoints: POST /containers/{id}/attach (and, later, exec start).

The client's connection becomes a raw stream: container output goes out (multiplexed
frames unless the container has a TTY), client bytes go to the container's stdin FIFO,
and the detach sequence (ctrl-p ctrl-q by default) ends the attachment without touching
the container.
"""

from __future__ import annotations

import asyncio
import os
import queue
from typing import TYPE_CHECKING

from dockerd.engine.errors import EngineError
from dockerd.hijack import RAW_STREAM, HijackRequest, RawStream, StreamClosedError

if TYPE_CHECKING:
    from dockerd.engine.containers import ContainerEngine

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


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
                raise ValueError(f"invalid detach key {part!r}")
        elif len(part) == 1:
            out.append(ord(part))
        else:
            raise ValueError(f"invalid detach key {part!r}")
    return bytes(out)


def make_attach_handler(engine: ContainerEngine):  # type: ignore[no-untyped-def]
    from dockerd.app import frame

    async def attach(req: HijackRequest, stream: RawStream) -> None:
        ref = req.params["name"]
        try:
            c = engine.get(ref)
        except EngineError as exc:
            await stream.send_error(exc.status, str(exc))
            return
        try:
            keys = parse_detach_keys(req.query_value("detachKeys"))
        except ValueError as exc:
            await stream.send_error(400, str(exc))
            return
        tty = bool(c.config.get("Tty"))
        want_stdin = req.query_bool("stdin")
        want = {s for s in ("stdout", "stderr") if req.query_bool(s)}
        live = req.query_bool("stream")
        output = engine.attach_output(c.id) if live else None
        await stream.begin_stream(RAW_STREAM)
        loop = asyncio.get_running_loop()

        async def send(kind: str, data: bytes) -> None:
            if kind in want:
                await stream.write(data if tty else frame(kind, data))

        try:
            if req.query_bool("logs"):
                entries = await loop.run_in_executor(None, lambda: list(engine.logs(c.id, follow=False)))
                for kind, data, _ in entries:
                    await send(kind, data)
            tasks = []
            if output is not None:
                tasks.append(asyncio.create_task(_pump_output(output, engine.streams_of(c), send, loop)))
            detached = asyncio.Event()
            if want_stdin and c.config.get("OpenStdin"):
                tasks.append(asyncio.create_task(_pump_stdin(engine, c, stream, keys, detached, loop)))
            if not tasks:
                return
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if detached.is_set() or (output is not None and tasks[0] in done):
                for t in pending:
                    t.cancel()
            else:
                await asyncio.gather(*pending, return_exceptions=True)
        except StreamClosedError:
            pass
        finally:
            if output is not None:
                engine.detach_output(c.id, output)
            await stream.close()

    return attach


async def _pump_output(output: queue.Queue, streams: list[str], send, loop) -> None:  # type: ignore[no-untyped-def,type-arg]
    open_streams = set(streams)
    while open_streams:
        kind, data = await loop.run_in_executor(None, output.get)
        if data is None:
            open_streams.discard(kind)
            continue
        await send(kind, data)


async def _pump_stdin(engine, c, stream: RawStream, keys: bytes, detached: asyncio.Event, loop) -> None:  # type: ignore[no-untyped-def]
    path = engine.stdin_fifo(c)
    if path is None:
        return
    fd = await loop.run_in_executor(None, lambda: os.open(path, os.O_WRONLY))
    matched = b""
    try:
        while True:
            data = await stream.read()
            if not data:
                break
            out = bytearray()
            for byte in data:
                candidate = matched + bytes([byte])
                if keys.startswith(candidate):
                    matched = candidate
                    if matched == keys:
                        detached.set()
                        return
                    continue
                out += matched + bytes([byte])
                matched = b""
            if out:
                await loop.run_in_executor(None, os.write, fd, bytes(out))
        if c.config.get("StdinOnce"):
            # The shim holds the FIFO open itself: EOF reaches the container through CloseIO.
            await loop.run_in_executor(None, engine.close_stdin, c.id)
    finally:
        if fd >= 0:
            os.close(fd)
