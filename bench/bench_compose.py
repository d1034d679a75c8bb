#!/usr/bin/env python3
"""Benchmark: docker-compose 1.29 bringing a 5-service project up and down, on pydockerd and on
Debian's dockerd 20.10, side by side in one invocation.

The project (bench/compose5/): five busybox services on a user network, a named volume, a
published port, a healthcheck on each and depends_on service_healthy chains. Per sample, on
each engine in turn:

1. `docker-compose up -d` until every service's container reports healthy (inspect polled every
   50 ms): the wall time from the start of `up` to the last "healthy";
2. `docker-compose down -v`: its wall time.

Both engines run at once and the samples alternate between them (after a warm-up round), so
the machine's load falls on both alike; the load average is printed with the figures. The
reference runs in a network namespace of its own with its userland proxy on (as in
tests/compose/), pydockerd on its harness's roots. Target: pydockerd <= Docker on both.

    .venv/bin/python bench/bench_compose.py               # prints the table
    .venv/bin/python bench/bench_compose.py --write-doc   # also updates docs/BENCHMARKS.md
    .venv/bin/python bench/bench_compose.py --project none   # bench/compose5-none/

`--project none` runs the same five services and healthchecks with `network_mode: none` and no
volume or port (bench/compose5-none/), which pydockerd serves before its network and volume
backends are wired.

A script, not a test: it exits 1 when an engine fails, except pydockerd while
tests/cli/cli_helpers.py's PYDOCKERD_LACKS still lists a feature the project needs (its row
then says why).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cli.cli_helpers import PYDOCKERD_LACKS  # noqa: E402
from tests.compose.compose_helpers import Compose  # noqa: E402
from tests.dockerd_ref import BUSYBOX_TAR, DockerdRefError, RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import pydockerd_engine  # noqa: E402

SERVICES = 5
DOC = REPO / "docs" / "BENCHMARKS.md"


@dataclass(frozen=True)
class Project:
    directory: Path
    needs: tuple[str, ...]  # of the engine, besides healthchecks (tests/cli/cli_helpers.py's names)
    section: str
    intro: str


PROJECTS = {
    "full": Project(
        REPO / "bench" / "compose5", ("networks", "volumes", "ports"),
        "## docker-compose up/down: pydockerd vs dockerd 20.10",
        """\
docker-compose 1.29 bringing bench/compose5/ (five busybox services, a user network, a named
volume, a published port, healthchecks with 200 ms intervals and service_healthy dependencies)
up until every service is healthy, then `down -v`, samples alternating between the engines;
the reference in a network namespace of its own with its userland proxy on. Target: pydockerd
<= Docker's.""",
    ),
    "none": Project(
        REPO / "bench" / "compose5-none", (),
        "## docker-compose up/down without networks: pydockerd vs dockerd 20.10",
        """\
bench/compose5-none/: the same five services, healthchecks (200 ms intervals) and
service_healthy dependencies as bench/compose5/, every service `network_mode: none`, no volume
or port; `up -d` until every service is healthy, then `down -v`, samples alternating between
the engines. Target: pydockerd <= Docker's.""",
    ),
}  # fmt: skip


class EngineFailed(Exception):
    pass


def engines(names: list[str]) -> Iterator[tuple[str, AbstractContextManager[RefDockerd]]]:
    for name in names:
        if name == "reference":
            yield name, reference_dockerd({}, images=(BUSYBOX_TAR,), private_network=True,
                                          extra_args=("--userland-proxy=true", "--bridge="))  # fmt: skip
        elif name == "pydockerd":
            yield name, pydockerd_engine()
        else:
            raise SystemExit(f"unknown engine {name!r} (reference, pydockerd)")


def healthy_count(compose: Compose) -> int:
    ids = compose.container_ids()
    if len(ids) < SERVICES:
        return 0
    res = compose.daemon.docker(
        "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", *ids
    )
    return res.stdout.split().count("healthy")


def one_sample(daemon: RefDockerd, project: Project, timeout: float) -> tuple[float, float]:
    compose = Compose(daemon, project.directory)
    try:
        start = time.monotonic()
        up = compose.popen("up", "-d")
        while healthy_count(compose) < SERVICES:
            if up.poll() not in (None, 0):
                raise EngineFailed(
                    f"up -d exited {up.returncode}: {up.stderr.read()[-500:] if up.stderr else ''}"
                )
            if time.monotonic() - start > timeout:
                raise EngineFailed(f"not all {SERVICES} services healthy after {timeout}s")
            time.sleep(0.05)
        up_s = time.monotonic() - start
        up.wait(timeout)
        start = time.monotonic()
        down = compose.down()
        down_s = time.monotonic() - start
        if down.returncode != 0:
            raise EngineFailed(f"down -v exited {down.returncode}: {down.stderr[-500:]}")
    except BaseException:
        compose.down()
        raise
    left = compose.leftovers()
    if left:
        raise EngineFailed(f"left behind: {left}")
    return up_s, down_s


def measure(names: list[str], project: Project, runs: int, timeout: float) -> tuple[str, list[str]]:
    """Both engines up at once, the samples interleaved (a warm-up round first: image layers,
    page cache), so a change in the machine's load falls on both alike."""
    failures: dict[str, str] = {}
    samples: dict[str, list[tuple[float, float]]] = {}
    loads = [os.getloadavg()[0]]
    with ExitStack() as stack:
        daemons: dict[str, RefDockerd] = {}
        for name, context in engines(names):
            try:
                daemons[name] = stack.enter_context(context)
                samples[name] = []
            except (DockerdRefError, subprocess.SubprocessError, OSError) as exc:
                failures[name] = str(exc)
        for round_ in range(runs + 1):
            for name, daemon in daemons.items():
                if name in failures:
                    continue
                try:
                    sample = one_sample(daemon, project, timeout)
                except (EngineFailed, DockerdRefError, subprocess.SubprocessError, OSError) as exc:
                    failures[name] = str(exc)
                    continue
                if round_:
                    samples[name].append(sample)
            loads.append(os.getloadavg()[0])
    rows = []
    for name in names:
        if name in failures:
            rows.append(f"| {name} | fails: {failures[name].splitlines()[0][:120]} | |")
            continue
        ups, downs = [s[0] for s in samples[name]], [s[1] for s in samples[name]]
        rows.append(
            f"| {name} | {statistics.median(ups):.2f} s (max {max(ups):.2f}) | {statistics.median(downs):.2f} s (max {max(downs):.2f}) |"
        )
    table = "\n".join([f"| engine | `up -d` until {SERVICES} healthy (median of {runs}) | `down -v` (median) |",
                       "| --- | --- | --- |", *rows])  # fmt: skip
    if {"reference", "pydockerd"} <= set(samples) and not {"reference", "pydockerd"} & set(failures):
        ratio = [
            statistics.median(s[i] for s in samples["pydockerd"])
            / statistics.median(s[i] for s in samples["reference"])
            for i in (0, 1)
        ]
        table += f"\n\npydockerd / reference: `up -d` {ratio[0]:.2f}x, `down -v` {ratio[1]:.2f}x."
    table += (
        f"\n\nSamples interleaved (reference, pydockerd, ...); 1-minute load average "
        f"{min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs during the run."
    )
    return table, list(failures)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="docker-compose up/down: pydockerd vs dockerd 20.10")
    p.add_argument("--runs", type=int, default=5, help="timed samples per engine (default 5)")
    p.add_argument(
        "--engines", default="reference,pydockerd", help="comma-separated (default reference,pydockerd)"
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds for a project to become healthy")
    p.add_argument(
        "--project",
        choices=sorted(PROJECTS),
        default="full",
        help="full (bench/compose5) or none (bench/compose5-none)",
    )
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args(argv)
    project = PROJECTS[args.project]
    table, failures = measure(args.engines.split(","), project, args.runs, args.timeout)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    body = f"{table}\n\nMeasured {when} on {platform.node() or 'this machine'} ({platform.machine()}, {platform.release()})."
    print(body)
    if args.write_doc:
        sys.path.insert(0, str(REPO / "bench"))
        from benchdoc import update_section

        command = "bench/bench_compose.py" + ("" if args.project == "full" else f" --project {args.project}")
        update_section(DOC, project.section, project.intro, command, body)
    tolerated = {"pydockerd"} if set(project.needs) & PYDOCKERD_LACKS else set()
    return 1 if set(failures) - tolerated else 0


if __name__ == "__main__":
    sys.exit(main())
