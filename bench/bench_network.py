#!/usr/bin/env python3
"""Benchmark: pydockerd's networking against Debian's dockerd 20.10, both with their default bridge.

Both engines run side by side in one invocation (the tests' harnesses): the reference in a
network namespace of its own as a stock dockerd (default bridge docker0, iptables, userland
proxy), pydockerd with its default bridge. The client is the Docker CLI 28 for both.

1. `docker run --rm busybox true`: CLI wall time, samples interleaved between the engines (each
   container gets a namespace, a veth pair and an address on the default bridge).
2. Time to first byte through a published port: a `busybox httpd` published on 127.0.0.1 (the
   userland proxy's path) and reached at the bridge's address (iptables DNAT), N requests from a
   client in the engine's network namespace (connect, GET, first byte of the answer).
3. Container-to-container TCP throughput over a user network: one TCP stream from a socket in
   one container's namespace to a socket in another's (a kernel path: the goal is to add nothing).

    .venv/bin/python bench/bench_network.py                # prints the tables
    .venv/bin/python bench/bench_network.py --write-doc    # also updates docs/BENCHMARKS.md

A script, not a test: it exits 1 when an engine fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dockerd_ref import RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import PyDockerd, pydockerd_engine  # noqa: E402

DOCKER = "/usr/local/bin/docker"
DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## Networking: pydockerd vs dockerd 20.10, both with their default bridge"
DOC_INTRO = """\
pydockerd (its network backend: pyroute2, the iptables command, a Python userland proxy per
published port, dnslib's embedded DNS) against Debian's dockerd 20.10 (libnetwork, docker-proxy),
both started by one run of the script, each with its default bridge network; the reference as a
stock dockerd (iptables, userland proxy) in a network namespace of its own. The client is the
Docker CLI 28. Targets: `run --rm busybox true` <= 0.8x Docker's; throughput >= Docker's (a
kernel path either way). The 2 cores are shared with other work (the load average is given with
the figures): the figures move a lot between runs, so compare the rows of one run only."""
REFERENCE_NETWORKING = [
    "--bridge=",
    "--iptables=true",
    "--ip-forward=true",
    "--ip-masq=true",
    "--userland-proxy=true",
]

# The client of the time-to-first-byte measure, run in the engine's network namespace.
TTFB_CLIENT = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"GET /hostname HTTP/1.0\r\n\r\n")
    s.recv(1)
    out.append(time.perf_counter() - t)
    while s.recv(65536):
        pass
    s.close()
print(" ".join(f"{x:.6f}" for x in out))
"""


class Engine:
    def __init__(self, name: str, daemon: RefDockerd) -> None:
        self.name = name
        self.daemon = daemon

    def run(self, *args: str, timeout: float = 120) -> str:
        env = dict(
            os.environ, DOCKER_CONFIG=str(self.daemon.workdir / "bench-cli"), HOME=str(self.daemon.workdir)
        )
        done = subprocess.run([DOCKER, "-H", f"unix://{self.daemon.socket}", *args], capture_output=True, text=True,
                              timeout=timeout, env=env)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def host(self, *argv: str) -> str:
        prefix = (
            [] if isinstance(self.daemon, PyDockerd) else ["nsenter", f"--net=/proc/{self.daemon.pid}/ns/net"]
        )
        return subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=300, check=True
        ).stdout


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f}"


def p90_ms(samples: list[float]) -> str:
    return f"{sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:.1f}"


def run_rm(engines: list[Engine], runs: int) -> dict[str, list[float]]:
    """Samples of `run --rm busybox true` on the default bridge and with `--network none` (what
    the network costs), interleaved between engines and modes."""
    samples: dict[str, list[float]] = {}
    for e in engines:
        e.run("run", "--rm", "busybox", "true")  # warm-up
    for _ in range(runs):
        for e in engines:
            for mode in ("bridge", "none"):
                t = time.perf_counter()
                e.run("run", "--rm", "--network", mode, "busybox", "true")
                samples.setdefault(f"{e.name}|{mode}", []).append(time.perf_counter() - t)
    return samples


def ttfb(e: Engine, requests: int) -> tuple[list[float], list[float]]:
    name = "bench-web"
    e.run(
        "run",
        "-d",
        "--name",
        name,
        "-p",
        "127.0.0.1:18400:80",
        "-p",
        "18401:80",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    )
    try:
        gateway = json.loads(e.run("inspect", name))[0]["NetworkSettings"]["Gateway"]
        time.sleep(0.5)
        loopback = [
            float(x)
            for x in e.host(sys.executable, "-c", TTFB_CLIENT, "127.0.0.1", "18400", str(requests)).split()
        ]
        dnat = [
            float(x)
            for x in e.host(sys.executable, "-c", TTFB_CLIENT, gateway, "18401", str(requests)).split()
        ]
        return loopback, dnat
    finally:
        e.run("rm", "-f", name)


def throughput(e: Engine, megabytes: int, rounds: int) -> list[float]:
    """MB/s of one TCP stream between two containers of a user network: the sockets are made
    inside the containers' namespaces (the same Python sender and receiver for both engines), so
    the path measured is the engine's: veth, bridge, its iptables rules, veth."""
    e.run("network", "create", "--subnet", "10.199.0.0/24", "bench-net")
    try:
        for name, ip in (("bench-sink", "10.199.0.10"), ("bench-source", "10.199.0.11")):
            e.run(
                "run", "-d", "--name", name, "--network", "bench-net", "--ip", ip, "busybox", "sleep", "600"
            )
        pids = {n: json.loads(e.run("inspect", n))[0]["State"]["Pid"] for n in ("bench-sink", "bench-source")}
        return [
            _stream(pids["bench-sink"], pids["bench-source"], "10.199.0.10", megabytes) for _ in range(rounds)
        ]
    finally:
        e.run("rm", "-f", "bench-sink", "bench-source")
        e.run("network", "rm", "bench-net")


def _stream(sink_pid: int, source_pid: int, sink_ip: str, megabytes: int) -> float:
    from pyroute2 import netns

    listener = netns.create_socket(f"/proc/{sink_pid}/ns/net", socket.AF_INET, socket.SOCK_STREAM, flags=0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 5000))
    listener.listen(1)
    received = [0]

    def drain() -> None:
        conn, _ = listener.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                received[0] += len(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    sender = netns.create_socket(f"/proc/{source_pid}/ns/net", socket.AF_INET, socket.SOCK_STREAM, flags=0)
    block = b"\0" * (1 << 20)
    start = time.perf_counter()
    sender.connect((sink_ip, 5000))
    for _ in range(megabytes):
        sender.sendall(block)
    sender.shutdown(socket.SHUT_WR)
    reader.join()
    elapsed = time.perf_counter() - start
    sender.close()
    listener.close()
    assert received[0] == megabytes << 20
    return megabytes / elapsed


def measure(engines: list[Engine], runs: int, requests: int, megabytes: int, rounds: int) -> str:
    rm = run_rm(engines, runs)
    lines = [f"### `docker run --rm busybox true` ({runs} runs each, interleaved)", "",
             "| engine | default bridge: median ms | p90 ms | `--network none`: median ms | p90 ms | the bridge's cost (medians) |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for e in engines:
        bridge, none = rm[f"{e.name}|bridge"], rm[f"{e.name}|none"]
        cost = (statistics.median(bridge) - statistics.median(none)) * 1000
        lines.append(
            f"| {e.name} | {median_ms(bridge)} | {p90_ms(bridge)} | {median_ms(none)} | {p90_ms(none)} | {cost:+.0f} ms |"
        )
    ratio = statistics.median(rm[f"{engines[0].name}|bridge"]) / statistics.median(
        rm[f"{engines[1].name}|bridge"]
    )
    lines += ["", f"pydockerd / dockerd on the default bridge: {ratio:.2f}x", ""]
    lines += [f"### Time to first byte through a published port ({requests} requests each)", "",
              "| engine | 127.0.0.1 (userland proxy) median ms | p90 ms | bridge address (DNAT) median ms | p90 ms |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for e in engines:
        loop, dnat = ttfb(e, requests)
        lines.append(
            f"| {e.name} | {median_ms(loop)} | {p90_ms(loop)} | {median_ms(dnat)} | {p90_ms(dnat)} |"
        )
    lines += ["", f"### Container-to-container TCP throughput over a user network ({megabytes} MB x {rounds})", "",
              "| engine | median MB/s | best MB/s |", "| --- | --- | --- |"]  # fmt: skip
    for e in engines:
        rates = throughput(e, megabytes, rounds)
        lines.append(f"| {e.name} | {statistics.median(rates):.0f} | {max(rates):.0f} |")
    lines += ["", f"Machine: {platform.node()} {platform.machine()}, kernel {platform.release()}, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[1]:.1f} (other work on the machine); "
              f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        py = stack.enter_context(pydockerd_engine())
        ref = stack.enter_context(
            reference_dockerd({}, private_network=True, extra_args=REFERENCE_NETWORKING)
        )
        try:
            body = measure([Engine("pydockerd", py), Engine("dockerd 20.10", ref)], args.runs, args.requests,
                           args.megabytes, args.rounds)  # fmt: skip
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"bench_network: {exc}", file=sys.stderr)
            return 1
    print(body)
    if args.write_doc:
        sys.path.insert(0, str(REPO / "bench"))
        from benchdoc import update_section

        update_section(
            DOC, DOC_SECTION, DOC_INTRO, ".venv/bin/python bench/bench_network.py --write-doc", body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
