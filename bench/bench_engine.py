#!/usr/bin/env python3
"""Benchmark: pydockerd + pycontainerd against Debian's dockerd 20.10 + containerd 1.6.

Both engines run side by side in one invocation, each on its own temporary roots and socket
(the same harnesses the tests use: tests/pydockerd_harness.py and tests/dockerd_ref.py, the
reference in a private mount namespace, --bridge=none), with Docker's busybox archive
loaded. The client is the same for both: the Docker CLI 28 at /usr/local/bin/docker. The
pydocker CLI against pydockerd is shown as a third row where the client matters.

1. `docker run --rm busybox true`: wall time of the CLI, samples interleaved between engines.
2. `docker exec C true` into a running container.
3. 50 concurrent `docker run -d busybox sleep 1000`: wall time until every CLI returned.
4. `docker ps` with 100 running containers.
5. Memory of the daemons (/proc/PID/smaps_rollup RSS): pydockerd + pycontainerd against
   dockerd + containerd, idle (image loaded, no container) and with 100 containers running.

    .venv/bin/python bench/bench_engine.py                # prints the tables
    .venv/bin/python bench/bench_engine.py --write-doc    # also updates docs/BENCHMARKS.md

A script, not a test: it exits 1 when an engine fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import PyDockerd, pydockerd_engine  # noqa: E402

DOCKER = "/usr/local/bin/docker"
PYDOCKER = REPO / ".venv" / "bin" / "pydocker"
DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## pydockerd vs dockerd 20.10"
DOC_INTRO = """\
pydockerd (with its own pycontainerd, pycontainerd-shim and pyrunc) against Debian's
dockerd 20.10 with containerd 1.6 and runc 1.1.5, both started by one run of the script on
temporary roots (the reference with `--bridge=none`, in a private mount namespace) with
Docker's busybox archive loaded. The client is the Docker CLI 28 for both engines; the
pydocker CLI against pydockerd is an extra row. Targets: `run --rm busybox true` median
<= Docker's; idle RSS of pydockerd + pycontainerd <= dockerd + containerd.

Where the time and memory go: of a `run --rm`, pycontainerd's Tasks.Create (a Python shim
started per container, then `pyrunc create`) takes 120-170 ms and Tasks.Delete (`pyrunc
delete`, shim shutdown) about 60 ms, against containerd's Go shim and runc; pydockerd's own
work is about 30 ms. Importing FastAPI, uvicorn and grpcio costs pydockerd 55 MiB before it
serves anything; per container the Python daemons grow less than Docker's."""
MIB = 1024.0  # smaps_rollup counts KiB


class Engine:
    def __init__(self, name: str, daemon: RefDockerd) -> None:
        self.name = name
        self.daemon = daemon

    def argv(self, *args: str, client: str = DOCKER) -> list[str]:
        return [client, "-H", f"unix://{self.daemon.socket}", *args]

    def run(self, *args: str, client: str = DOCKER, timeout: float = 120) -> str:
        env = dict(
            os.environ, DOCKER_CONFIG=str(self.daemon.workdir / "bench-cli"), HOME=str(self.daemon.workdir)
        )
        done = subprocess.run(
            self.argv(*args, client=client), capture_output=True, text=True, timeout=timeout, env=env
        )
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done.stdout

    def daemon_pids(self) -> dict[str, int]:
        if isinstance(self.daemon, PyDockerd):
            return {"pydockerd": self.daemon.pid, "pycontainerd": self.daemon.containerd_pid or 0}
        pids = {"dockerd": self.daemon.pid}
        for child in _children(self.daemon.pid):
            if os.path.basename(os.readlink(f"/proc/{child}/exe")) == "containerd":
                pids["containerd"] = child
        return pids


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(p) for p in open(f"/proc/{pid}/task/{task}/children").read().split()]
        except OSError:
            pass
    return out


def rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Rss:"):
            return int(line.split()[1]) / MIB
    raise SystemExit(f"no Rss for pid {pid}")


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms"


def p90_ms(samples: list[float]) -> str:
    return f"{sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:.0f} ms" if samples else "-"


def measure(engines: list[Engine], runs: int, concurrent: int, total: int) -> str:
    rows: list[str] = []
    memory: dict[str, dict[str, float]] = {}
    for e in engines:
        memory[e.name] = {"idle": sum(rss_mib(p) for p in e.daemon_pids().values())}
        memory[e.name]["parts"] = 0.0
        memory[e.name]["idle_parts"] = 0.0
        memory[e.name].update({f"idle:{k}": rss_mib(p) for k, p in e.daemon_pids().items()})

    # 1. run --rm true, interleaved; one untimed warm-up each.
    samples: dict[str, list[float]] = {e.name: [] for e in engines}
    samples["pydocker CLI -> pydockerd"] = []
    py = next(e for e in engines if isinstance(e.daemon, PyDockerd))
    for e in engines:
        e.run("run", "--rm", "busybox", "true")
    for i in range(runs):
        order = engines if i % 2 == 0 else list(reversed(engines))
        for e in order:
            samples[e.name].append(timed(partial(e.run, "run", "--rm", "busybox", "true")))
        samples["pydocker CLI -> pydockerd"].append(
            timed(lambda: py.run("run", "--rm", "busybox", "true", client=str(PYDOCKER)))
        )
    rows += [
        "### `docker run --rm busybox true` (CLI wall time)",
        "",
        "| engine | runs | median | p90 |",
        "| --- | --- | --- | --- |",
    ]
    for name, s in samples.items():
        rows.append(f"| {name} | {len(s)} | {median_ms(s)} | {p90_ms(s)} |")

    # 2. exec true.
    exec_samples: dict[str, list[float]] = {e.name: [] for e in engines}
    for e in engines:
        e.run("run", "-d", "--name", "bench-exec", "busybox", "sleep", "1000")
        e.run("exec", "bench-exec", "true")
    for i in range(runs):
        for e in engines if i % 2 == 0 else list(reversed(engines)):
            exec_samples[e.name].append(timed(partial(e.run, "exec", "bench-exec", "true")))
    rows += [
        "",
        "### `docker exec C true`",
        "",
        "| engine | runs | median | p90 |",
        "| --- | --- | --- | --- |",
    ]
    for name, s in exec_samples.items():
        rows.append(f"| {name} | {len(s)} | {median_ms(s)} | {p90_ms(s)} |")
    for e in engines:
        e.run("rm", "-f", "bench-exec")

    # 3. concurrent run -d, then fill up to `total` and 4. ps.
    rows += [
        "",
        f"### {concurrent} concurrent `docker run -d busybox sleep 1000`, then `docker ps` with {total} running",
        "",
    ]
    rows += [
        "| engine | wall time for the concurrent runs | `docker ps` median (10 runs) |",
        "| --- | --- | --- |",
    ]
    for e in engines:

        def start_sleepers(count: int, workers: int, e: Engine = e) -> None:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda _: e.run("run", "-d", "busybox", "sleep", "1000"), range(count)))

        wall = timed(lambda: start_sleepers(concurrent, concurrent))
        start_sleepers(total - concurrent, 8)
        running = len(e.run("ps", "-q").split())
        if running != total:
            raise SystemExit(f"{e.name}: {running} containers running, expected {total}")
        ps = [timed(partial(e.run, "ps")) for _ in range(10)]
        memory[e.name]["loaded"] = sum(rss_mib(p) for p in e.daemon_pids().values())
        rows.append(f"| {e.name} | {wall:.2f} s | {median_ms(ps)} |")
        ids = e.run("ps", "-aq").split()
        e.run("rm", "-f", *ids, timeout=600)

    # 5. memory.
    rows += ["", "### Daemon memory (RSS from smaps_rollup)", ""]
    rows += [
        "| engine | idle (per daemon) | idle total | with 100 running |".replace("100", str(total)),
        "| --- | --- | --- | --- |",
    ]
    for e in engines:
        m = memory[e.name]
        parts = ", ".join(f"{k.split(':', 1)[1]} {v:.1f}" for k, v in m.items() if k.startswith("idle:"))
        rows.append(f"| {e.name} | {parts} MiB | {m['idle']:.1f} MiB | {m['loaded']:.1f} MiB |")
    ref_name, py_name = engines[0].name, engines[1].name
    run_ref, run_py = statistics.median(samples[ref_name]), statistics.median(samples[py_name])
    rss_ref, rss_py = memory[ref_name]["idle"], memory[py_name]["idle"]
    rows += [
        "",
        f"Targets: `run --rm` median <= Docker's: {'met' if run_py <= run_ref else '**not met**'} "
        f"({run_py * 1000:.0f} ms against {run_ref * 1000:.0f} ms, {run_py / run_ref:.2f}x); "
        f"idle RSS <= dockerd + containerd: {'met' if rss_py <= rss_ref else '**not met**'} "
        f"({rss_py:.1f} MiB against {rss_ref:.1f} MiB).",
    ]
    return "\n".join(rows) + "\n"


def write_doc(body: str, command: str) -> None:
    from benchdoc import update_section

    update_section(DOC, DOC_SECTION, DOC_INTRO, command, body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pydockerd vs dockerd 20.10")
    p.add_argument("--runs", type=int, default=15, help="timed samples per engine (default 15)")
    p.add_argument("--concurrent", type=int, default=50, help="concurrent `run -d` (default 50)")
    p.add_argument("--total", type=int, default=100, help="running containers for `ps` (default 100)")
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args(argv)
    with ExitStack() as stack:
        ref = stack.enter_context(reference_dockerd({}, images=(BUSYBOX_TAR,)))
        ours = stack.enter_context(pydockerd_engine(images=(BUSYBOX_TAR,)))
        time.sleep(2)  # both daemons idle before the first memory reading
        engines = [Engine("dockerd 20.10 + containerd 1.6", ref), Engine("pydockerd + pycontainerd", ours)]
        body = measure(engines, args.runs, args.concurrent, args.total)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    body = f"Measured {stamp} on {platform.node()} (kernel {platform.release()}).\n\n" + body
    print(body)
    if args.write_doc:
        write_doc(body, ".venv/bin/python bench/bench_engine.py --write-doc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
