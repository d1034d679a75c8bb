"""Prometheus metrics for --metrics-addr: containers by state (dockerd's metric name) and
API request latency (a histogram per method and route), in the text exposition format."""

from __future__ import annotations

import asyncio
import bisect
import socket
import threading
from collections.abc import Callable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STATES = ("paused", "running", "stopped")


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (method, route) -> per-bucket counts (last: +Inf), count, sum
        self._hist: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def observe(self, method: str, seconds: float, route: str = "") -> None:
        with self._lock:
            counts, total = self._hist.setdefault((method, route), ([0] * (len(BUCKETS) + 1), [0.0]))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            total[0] += seconds

    def render(self, states: dict[str, int], version: str = "") -> str:
        lines = [
            "# HELP engine_daemon_engine_info The information related to the engine and the OS it is running on",
            "# TYPE engine_daemon_engine_info gauge",
            f'engine_daemon_engine_info{{version="{_escape(version)}"}} 1',
            "# HELP engine_daemon_container_states_containers The count of containers in various states",
            "# TYPE engine_daemon_container_states_containers gauge",
        ]
        lines += [
            f'engine_daemon_container_states_containers{{state="{s}"}} {states.get(s, 0)}' for s in STATES
        ]
        lines += [
            "# HELP pydockerd_api_request_duration_seconds Engine API request latency",
            "# TYPE pydockerd_api_request_duration_seconds histogram",
        ]
        with self._lock:
            hist = {k: (list(c), t[0]) for k, (c, t) in self._hist.items()}
        for (method, route), (counts, total) in sorted(hist.items()):
            labels = f'method="{_escape(method)}",route="{_escape(route)}"'
            running = 0
            for bound, n in zip((*BUCKETS, "+Inf"), counts, strict=True):
                running += n
                lines.append(
                    f'pydockerd_api_request_duration_seconds_bucket{{{labels},le="{bound}"}} {running}'
                )
            lines.append(f"pydockerd_api_request_duration_seconds_sum{{{labels}}} {total:.6f}")
            lines.append(f"pydockerd_api_request_duration_seconds_count{{{labels}}} {running}")
        return "\n".join(lines) + "\n"


def container_states(statuses: list[str]) -> dict[str, int]:
    """dockerd's three states: paused, running, and stopped for everything else."""
    out = dict.fromkeys(STATES, 0)
    for status in statuses:
        key = status if status in ("paused", "running") else "stopped"
        out[key] += 1
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def bind(addr: str) -> socket.socket:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid metrics address {addr!r}: want HOST:PORT")
    host = host.strip("[]") or "127.0.0.1"
    return socket.create_server((host, int(port)), family=socket.AF_INET6 if ":" in host else socket.AF_INET)


async def serve(sock: socket.socket, render: Callable[[], str]) -> None:
    """A minimal HTTP server for GET /metrics (plain HTTP, as dockerd's)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line = head.split(b"\r\n", 1)[0].split()
            path = request_line[1].split(b"?", 1)[0] if len(request_line) > 1 else b""
            if request_line[:1] not in ([b"GET"], [b"HEAD"]) or path != b"/metrics":
                status, body, ctype = b"404 Not Found", b"404 page not found\n", b"text/plain; charset=utf-8"
            else:
                loop = asyncio.get_running_loop()
                text = await loop.run_in_executor(None, render)
                status, body, ctype = b"200 OK", text.encode(), b"text/plain; version=0.0.4; charset=utf-8"
            head_only = request_line[:1] == [b"HEAD"]
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + (b"" if head_only else body)
            )  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    async with server:
        await server.serve_forever()
