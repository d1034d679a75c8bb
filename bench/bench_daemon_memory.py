#!/usr/bin/env python3
"""Benchmark: the resident memory of pydockerd and its pycontainerd, idle and after N containers.

Starts pydockerd (with its own pycontainerd) on temporary roots through the tests' harness
(tests/pydockerd_harness.py), loads Docker's busybox archive, waits for both daemons to settle
and reads /proc/PID/smaps_rollup (RSS, PSS, anonymous) of each; then runs N
`docker run --rm busybox true` (4 clients at a time, the Docker CLI 28) and reads them again.
`--by-mapping` also prints the largest resident mappings of each daemon (/proc/PID/smaps summed
per file: the interpreter, each extension module's .so, [heap] and anonymous memory).
Several `--pydockerd` programs (other checkouts' .venv/bin/pydockerd) are measured one after the
other in one run, so a before/after pair sees the same machine.

    .venv/bin/python bench/bench_daemon_memory.py
    .venv/bin/python bench/bench_daemon_memory.py --containers 100 --by-mapping
    .venv/bin/python bench/bench_daemon_memory.py --pydockerd /work/main/.venv/bin/pydockerd \\
        --pydockerd .venv/bin/pydockerd

bench/bench_engine.py measures the same idle and after figures side by side with dockerd 20.10;
this script is the quick one for changes to what the daemons load and keep.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.dockerd_ref import BUSYBOX_TAR  # noqa: E402
from tests.pydockerd_harness import PYDOCKERD, PyDockerd, pydockerd_engine  # noqa: E402

DOCKER = "/usr/local/bin/docker"
MIB = 1024.0  # smaps counts KiB


def rollup(pid: int) -> dict[str, float]:
    """RSS, PSS and anonymous memory of a process, in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss", "Anonymous"):
                out[key] = int(rest.split()[0]) / MIB
    return out


def by_mapping(pid: int, top: int) -> list[tuple[str, float]]:
    """The resident KiB of each mapped file (anonymous mappings as one entry), largest first."""
    rss: dict[str, float] = defaultdict(float)
    name = "?"
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(None, 5)
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                name = head[5].strip() if len(head) > 5 else "[anonymous]"
                name = os.path.basename(name) if name.startswith("/") else name
            elif head[0] == "Rss:":
                rss[name] += int(head[1]) / MIB
    return sorted(rss.items(), key=lambda kv: -kv[1])[:top]


def daemon_pids(daemon: PyDockerd) -> dict[str, int]:
    return {"pydockerd": daemon.pid, "pycontainerd": daemon.containerd_pid or 0}


def reading(daemon: PyDockerd) -> dict[str, dict[str, float]]:
    return {name: rollup(pid) for name, pid in daemon_pids(daemon).items()}


def docker(daemon: PyDockerd, *args: str) -> None:
    env = dict(os.environ, DOCKER_CONFIG=str(daemon.workdir / "bench-cli"), HOME=str(daemon.workdir))
    done = subprocess.run(
        [DOCKER, "-H", f"unix://{daemon.socket}", *args], capture_output=True, text=True, timeout=120, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")


def line(label: str, figures: dict[str, dict[str, float]]) -> str:
    parts = [
        f"{n} RSS {v['Rss']:.1f} (PSS {v['Pss']:.1f}, anon {v['Anonymous']:.1f})" for n, v in figures.items()
    ]
    total = sum(v["Rss"] for v in figures.values())
    return f"  {label:<22} total RSS {total:6.1f} MiB: " + "; ".join(parts)


def measure(program: Path, containers: int, settle: float, mappings: int) -> None:
    print(f"{program}")
    with pydockerd_engine(images=(BUSYBOX_TAR,), program=program) as daemon:
        time.sleep(settle)
        idle = reading(daemon)
        print(line("idle", idle))
        if mappings:
            for name, pid in daemon_pids(daemon).items():
                print(f"    {name}: " + ", ".join(f"{m} {v:.1f}" for m, v in by_mapping(pid, mappings)))
        if containers:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: docker(daemon, "run", "--rm", "busybox", "true"), range(containers)))
            time.sleep(settle)
            after = reading(daemon)
            grown = sum(v["Rss"] for v in after.values()) / sum(v["Rss"] for v in idle.values()) - 1
            print(line(f"after {containers} run --rm", after) + f" ({grown * 100:+.1f}%)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pydockerd + pycontainerd resident memory")
    p.add_argument("--pydockerd", type=Path, action="append", help="the pydockerd to measure (repeatable)")
    p.add_argument("--containers", type=int, default=20, help="`run --rm` between the readings (default 20)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait before a reading")
    p.add_argument("--by-mapping", type=int, nargs="?", const=12, default=0, help="largest mappings to list")
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for program in args.pydockerd or [PYDOCKERD]:
        measure(program, args.containers, args.settle, args.by_mapping)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
