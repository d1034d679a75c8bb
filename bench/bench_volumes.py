#!/usr/bin/env python3
"""Benchmark: sequential write and read through a named volume inside a container, against
the same on the host and through the reference dockerd 20.10's volume.

One run starts both engines on temporary roots under /tmp (the harnesses the tests use) and
makes, on each, a named local volume used by a running busybox container. The same program
does the I/O everywhere: busybox's dd (the default image's static binary, run directly on the
host), 1 MiB blocks with O_DIRECT (`oflag=direct conv=fsync`, `iflag=direct`) so the page
cache neither hides the disk nor inflates the read. Each sample writes a fresh file then reads
it back; the time is taken around dd inside the same shell (/proc/uptime, 10 ms ticks, over
runs of seconds), so `docker exec`'s own cost is not counted. Samples are interleaved host,
pydockerd, reference. Target: pydockerd's volume within 5% of the host (a local volume is a
bind mount of a host directory).

    .venv/bin/python bench/bench_volumes.py                # prints the table
    .venv/bin/python bench/bench_volumes.py --write-doc    # also updates docs/BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dockerd_ref import RefDockerd, reference_dockerd  # noqa: E402
from tests.pydockerd_harness import pydockerd_engine  # noqa: E402

BUSYBOX = REPO / "images" / "busybox-bundle" / "rootfs" / "bin" / "busybox"
DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## Volumes: I/O through a named volume"
DOC_INTRO = """\
Sequential write and read of a file through a named local volume inside a running busybox
container, against the same on the host (a directory on the same file system) and through
the reference dockerd 20.10's volume. The same program everywhere (busybox dd, 1 MiB blocks,
O_DIRECT, fsync), timed inside the container's shell so the client's cost is left out.
Target: pydockerd within 5% of the host, since a local volume is a bind mount of a host
directory (no overlay or FUSE layer in the path). Reads inside the containers of both engines
came out faster than the same dd on the host in every run so far (the host's dd runs in the
script's own cgroup, each container in its own); the two engines' volumes stay level."""

# prints: start, after the write, after the read (seconds since boot, from /proc/uptime)
SCRIPT = (
    "cut -d' ' -f1 /proc/uptime; {bb}dd if=/dev/zero of={dir}/f bs=1M count={mib} oflag=direct conv=fsync 2>/dev/null; "
    "cut -d' ' -f1 /proc/uptime; {bb}dd if={dir}/f of=/dev/null bs=1M iflag=direct 2>/dev/null; "
    "cut -d' ' -f1 /proc/uptime; rm {dir}/f"
)


def _parse(out: str, mib: int) -> tuple[float, float]:
    t0, t1, t2 = (float(x) for x in out.split())
    return mib / max(t1 - t0, 0.01), mib / max(t2 - t1, 0.01)


def on_host(directory: Path, mib: int) -> tuple[float, float]:
    script = SCRIPT.format(bb=f"{BUSYBOX} ", dir=directory, mib=mib)
    out = subprocess.run(
        [str(BUSYBOX), "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return _parse(out, mib)


def in_container(engine: RefDockerd, container: str, mib: int) -> tuple[float, float]:
    out = engine.docker_ok(
        "exec", container, "sh", "-c", SCRIPT.format(bb="", dir="/v", mib=mib), timeout=600
    )
    return _parse(out, mib)


def table(samples: dict[str, list[tuple[float, float]]]) -> tuple[str, dict[str, tuple[float, float]]]:
    medians = {
        k: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v))
        for k, v in samples.items()
    }
    host_w, host_r = medians["host"]
    rows = ["| where | samples | write MiB/s (median) | read MiB/s (median) | write vs host | read vs host |",
            "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, (w, r) in medians.items():
        rows.append(
            f"| {name} | {len(samples[name])} | {w:.0f} | {r:.0f} | {w / host_w:.2f} | {r / host_r:.2f} |"
        )
    return "\n".join(rows), medians


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="I/O through a named volume: host, pydockerd, dockerd 20.10")
    p.add_argument("--runs", type=int, default=7, help="samples per place (default 7)")
    p.add_argument(
        "--mib",
        type=int,
        default=1024,
        help="file size in MiB (default 1024: seconds per sample, against 10 ms ticks)",
    )
    p.add_argument("--write-doc", action="store_true")
    args = p.parse_args(argv)
    samples: dict[str, list[tuple[float, float]]] = {
        "host": [],
        "pydockerd volume": [],
        "dockerd 20.10 volume": [],
    }
    host_dir = Path(tempfile.mkdtemp(prefix="pydocker-bench-vol-", dir="/tmp"))
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    try:
        with ExitStack() as stack:
            ref = stack.enter_context(reference_dockerd({}))
            pd = stack.enter_context(pydockerd_engine())
            engines = {"pydockerd volume": pd, "dockerd 20.10 volume": ref}
            for engine in engines.values():
                engine.docker_ok(
                    "run", "-d", "--name", "bench-vol", "-v", "bench-vol:/v", "busybox", "sleep", "3600"
                )
            try:
                for _ in range(args.runs):
                    samples["host"].append(on_host(host_dir, args.mib))
                    for name, engine in engines.items():
                        samples[name].append(in_container(engine, "bench-vol", args.mib))
            finally:
                for engine in engines.values():
                    engine.docker("rm", "-f", "bench-vol")
                    engine.docker("volume", "rm", "bench-vol")
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
    rows, medians = table(samples)
    host_w, host_r = medians["host"]
    pd_w, pd_r = medians["pydockerd volume"]
    worst = min(pd_w / host_w, pd_r / host_r)
    verdict = "met (no direction more than 5% slower than the host)" if worst >= 0.95 else "**not met**"
    body = (
        f"Measured {started:%Y-%m-%d} on {platform.node()} (kernel {platform.release()}, {os.cpu_count()} cores; "
        f"1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after): {args.runs} interleaved "
        f"samples of a {args.mib} MiB file per place; the host directory and both data roots on the same file "
        "system (/tmp).\n\n"
        f"{rows}\n\n"
        f"Target (pydockerd within 5% of the host): {verdict} (write {pd_w / host_w:.2f}x, read {pd_r / host_r:.2f}x "
        "of the host). The disk is shared with the machine's other work, so single samples vary; the medians are "
        "what the target reads."
    )
    print(body)
    if args.write_doc:
        sys.path.insert(0, str(REPO / "bench"))
        from benchdoc import update_section

        update_section(
            DOC, DOC_SECTION, DOC_INTRO, ".venv/bin/python bench/bench_volumes.py --write-doc", body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
