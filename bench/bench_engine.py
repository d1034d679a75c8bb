#!/usr/bin/env python3
"""Benchmark: pydockerd + pycontainerd against Debian's dockerd 20.10 + containerd 1.6.

Both engines run side by side in one invocation, each on its own temporary roots and socket
(the tests' harnesses: tests/pydockerd_harness.py and tests/dockerd_ref.py), both WITH their
default bridge network: the reference as a stock dockerd (docker0, iptables, userland proxy) in
a network namespace of its own, as bench/bench_network.py starts it. Docker's busybox archive is
loaded into both. The client is the same for both: the Docker CLI 28 at /usr/local/bin/docker
(the pydocker CLI against pydockerd is an extra row where the client matters).

1. Memory of the daemons (/proc/PID/smaps_rollup RSS), idle (image loaded, no container).
2. CPU: the daemons' CPU seconds (utime + stime of dockerd + containerd, or pydockerd +
   pycontainerd, with their reaped children: iptables, ip) over N `run --rm busybox true`
   (4 clients at a time); then their memory again, after those N containers came and went.
3. `docker run --rm busybox true`: wall time of the CLI, samples interleaved between engines.
4. `docker exec C true` into a running container.
5. `docker stop` of a container whose init exits on SIGTERM (`sh` trapping TERM).
6. 50 concurrent `docker run -d busybox sleep 1000`, then `docker ps` with 50 running, then
   50 concurrent `docker rm -f`.

    .venv/bin/python bench/bench_engine.py                # prints the tables
    .venv/bin/python bench/bench_engine.py --write-doc    # also updates docs/BENCHMARKS.md
    .venv/bin/python bench/bench_engine.py --pydockerd /other/checkout/.venv/bin/pydockerd

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
sys.path.insert(0, str(REPO / "bench"))

from bench_network import REFERENCE_NETWORKING  # noqa: E402

from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import PYDOCKERD, PyDockerd, pydockerd_engine  # noqa: E402

DOCKER = "/usr/local/bin/docker"
PYDOCKER = REPO / ".venv" / "bin" / "pydocker"
DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## pydockerd vs dockerd 20.10"
DOC_INTRO = """\
pydockerd (with its own pycontainerd, pycontainerd-shim and pyrunc) against Debian's
dockerd 20.10 with containerd 1.6 and runc 1.1.5, both started by one run of the script on
temporary roots, both with their default bridge network (the reference as a stock dockerd in a
network namespace of its own), with Docker's busybox archive loaded. The client is the Docker
CLI 28 for both engines; the pydocker CLI against pydockerd is an extra row."""
MIB = 1024.0  # smaps_rollup counts KiB
TICKS = os.sysconf("SC_CLK_TCK")
TRAP_TERM = ["sh", "-c", 'trap "exit 0" TERM; sleep 1000 & wait']


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

    def rss(self) -> dict[str, float]:
        return {name: rss_mib(pid) for name, pid in self.daemon_pids().items()}

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.daemon_pids().values())


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


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime: the process and the children it reaped."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICKS


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def p90(samples: list[float]) -> float:
    return sorted(samples)[max(int(len(samples) * 0.9) - 1, 0)]


def interleaved(
    engines: list[Engine], runs: int, sample: Callable[[Engine], float]
) -> dict[str, list[float]]:
    """RUNS samples per engine, the engines' order alternating, so both see the same load."""
    out: dict[str, list[float]] = {e.name: [] for e in engines}
    for i in range(runs):
        for e in engines if i % 2 == 0 else list(reversed(engines)):
            out[e.name].append(sample(e))
    return out


def latency_table(title: str, samples: dict[str, list[float]]) -> list[str]:
    rows = ["", f"### {title}", "", "| engine | runs | median | p90 |", "| --- | --- | --- | --- |"]
    rows += [f"| {n} | {len(s)} | {ms(statistics.median(s))} | {ms(p90(s))} |" for n, s in samples.items()]
    return rows


def stop_sample(e: Engine) -> float:
    cid = e.run("run", "-d", "busybox", *TRAP_TERM).strip()
    time.sleep(0.3)  # the trap is set before the signal comes
    took = timed(partial(e.run, "stop", cid))
    e.run("rm", cid)
    return took


def parallel(count: int, workers: int, fn: Callable[[int], object]) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, range(count)))


def run_rm(e: Engine, _: int) -> None:
    e.run("run", "--rm", "busybox", "true")


def run_ps_rm(e: Engine, concurrent: int) -> tuple[float, float, float]:
    """Seconds for CONCURRENT `run -d` at once, the median `ps`, CONCURRENT `rm -f` at once."""
    ids: list[str] = []
    up = timed(lambda: parallel(concurrent, concurrent, lambda _: ids.append(
        e.run("run", "-d", "busybox", "sleep", "1000").strip())))  # fmt: skip
    if len(e.run("ps", "-q").split()) != concurrent:
        raise SystemExit(f"{e.name}: not {concurrent} containers running")
    ps = statistics.median([timed(partial(e.run, "ps")) for _ in range(10)])
    down = timed(lambda: parallel(concurrent, concurrent, lambda i: e.run("rm", "-f", ids[i])))
    return up, ps, down


def measure(engines: list[Engine], runs: int, concurrent: int, cpu_runs: int) -> tuple[str, dict[str, float]]:
    ref, py = engines
    figures: dict[str, float] = {}
    rows: list[str] = [f"1-minute load average before: {os.getloadavg()[0]:.1f}."]
    memory = {e.name: {"idle": e.rss()} for e in engines}

    # CPU per container, then memory after those containers came and went.
    cpu: dict[str, float] = {}
    for e in engines:
        e.run("run", "--rm", "busybox", "true")  # warm-up, before the first reading
        before = e.cpu_seconds()
        parallel(cpu_runs, 4, partial(run_rm, e))
        cpu[e.name] = e.cpu_seconds() - before
    time.sleep(2)
    for e in engines:
        memory[e.name]["after"] = e.rss()

    samples = interleaved(engines, runs, lambda e: timed(partial(e.run, "run", "--rm", "busybox", "true")))
    samples["pydocker CLI -> pydockerd"] = [
        timed(partial(py.run, "run", "--rm", "busybox", "true", client=str(PYDOCKER))) for _ in range(runs)
    ]
    rows += latency_table("`docker run --rm busybox true` (CLI wall time, default bridge)", samples)

    for e in engines:
        e.run("run", "-d", "--name", "bench-exec", "busybox", "sleep", "1000")
        e.run("exec", "bench-exec", "true")
    execs = interleaved(engines, runs, lambda e: timed(partial(e.run, "exec", "bench-exec", "true")))
    rows += latency_table("`docker exec C true`", execs)
    for e in engines:
        e.run("rm", "-f", "bench-exec")

    stops = interleaved(engines, max(runs // 2, 3), stop_sample)
    rows += latency_table("`docker stop` of a container that exits on SIGTERM", stops)

    rows += ["", f"### {concurrent} concurrent `run -d`, then `ps`, then {concurrent} concurrent `rm -f`", ""]
    rows += ["| engine | concurrent `run -d` | `ps` median (10 runs) | concurrent `rm -f` | total |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    burst: dict[str, float] = {}
    for e in engines:
        up, ps, down = run_ps_rm(e, concurrent)
        burst[e.name] = up + ps + down
        rows.append(f"| {e.name} | {up:.2f} s | {ms(ps)} | {down:.2f} s | {burst[e.name]:.2f} s |")

    rows += ["", f"### Daemons' memory (RSS, smaps_rollup) and CPU over {cpu_runs} `run --rm`", ""]
    rows += ["| engine | idle (per daemon) | idle total | after the containers | CPU seconds | per container |",
             "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for e in engines:
        idle, after = memory[e.name]["idle"], memory[e.name]["after"]
        parts = ", ".join(f"{k} {v:.1f}" for k, v in idle.items())
        rows.append(
            f"| {e.name} | {parts} MiB | {sum(idle.values()):.1f} MiB | {sum(after.values()):.1f} MiB "
            f"| {cpu[e.name]:.1f} s | {cpu[e.name] / cpu_runs * 1000:.0f} ms |"
        )
    rows.append("")
    rows.append(f"1-minute load average after: {os.getloadavg()[0]:.1f}.")

    def med(d: dict[str, list[float]], e: Engine) -> float:
        return statistics.median(d[e.name])

    figures = {
        "run": med(samples, py) / med(samples, ref),
        "exec": med(execs, py) / med(execs, ref),
        "stop": med(stops, py) / med(stops, ref),
        "burst": burst[py.name] / burst[ref.name],
        "idle": sum(memory[py.name]["idle"].values()),
        "growth": sum(memory[py.name]["after"].values()) / sum(memory[py.name]["idle"].values()) - 1,
        "cpu": cpu[py.name] / cpu[ref.name],
    }
    rows += ["", "Targets (pydockerd against Docker, this run):", ""]
    for label, value, goal, text in (
        ("`run --rm` <= 0.8x", figures["run"], 0.8, f"{figures['run']:.2f}x"),
        ("`exec` <= 1.0x", figures["exec"], 1.0, f"{figures['exec']:.2f}x"),
        ("run -d / ps / rm -f burst <= 1.0x", figures["burst"], 1.0, f"{figures['burst']:.2f}x"),
        ("idle RSS <= 100 MiB", figures["idle"], 100.0, f"{figures['idle']:.1f} MiB"),
        ("RSS after the containers within 10% of idle", figures["growth"], 0.10, f"{figures['growth'] * 100:+.1f}%"),
        ("daemons' CPU per container <= 1.0x", figures["cpu"], 1.0, f"{figures['cpu']:.2f}x"),
        ("`stop` (not a numbered target) <= 1.0x", figures["stop"], 1.0, f"{figures['stop']:.2f}x"),
    ):  # fmt: skip
        rows.append(f"- {label}: {text}, {'met' if value <= goal else '**not met**'}")
    return "\n".join(rows) + "\n", figures


def write_doc(body: str, command: str) -> None:
    from benchdoc import update_section

    update_section(DOC, DOC_SECTION, DOC_INTRO, command, body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pydockerd vs dockerd 20.10")
    p.add_argument("--runs", type=int, default=15, help="timed samples per engine (default 15)")
    p.add_argument("--concurrent", type=int, default=50, help="concurrent `run -d` and `rm -f` (default 50)")
    p.add_argument("--cpu-runs", type=int, default=100, help="`run --rm` for the CPU and memory figures")
    p.add_argument(
        "--pydockerd", type=Path, default=PYDOCKERD, help="the pydockerd to measure (another checkout's)"
    )
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args(argv)
    with ExitStack() as stack:
        ref = stack.enter_context(
            reference_dockerd(
                {}, images=(BUSYBOX_TAR,), private_network=True, extra_args=REFERENCE_NETWORKING
            )
        )
        ours = stack.enter_context(pydockerd_engine(images=(BUSYBOX_TAR,), program=args.pydockerd))
        time.sleep(2)  # both daemons idle before the first memory reading
        engines = [Engine("dockerd 20.10 + containerd 1.6", ref), Engine("pydockerd + pycontainerd", ours)]
        body, _ = measure(engines, args.runs, args.concurrent, args.cpu_runs)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Measured {stamp} on {platform.node()} (kernel {platform.release()}, {os.cpu_count()} CPUs). " + body
    )
    print(body)
    if args.write_doc:
        write_doc(body, ".venv/bin/python bench/bench_engine.py --write-doc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
