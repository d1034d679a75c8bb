#!/usr/bin/env python3
"""Benchmark: a shim forked from the template running pyrunc forked (shim/runtimefork.py) vs exec'd.

Two shim templates (shim/spawner.py) run side by side, one as pycontainerd starts it, one with
PYCONTAINERD_SHIM_FORK_RUNTIME=0 (every pyrunc verb exec'd), each in a cgroup v1 cpuacct group
of its own, which its shims and their runtime processes inherit (the containers' processes move
to their own cgroups): so the CPU each way spends holds on a loaded machine, where wall time
mostly measures the wait for a core. Rounds are interleaved, the order alternating. Each round
per mode: start a shim, Create a task of busybox `true` (bundle on a copy of the default rootfs,
no stdio), Start, Wait, Delete, Shutdown; the wall time of each call and the CPU of the whole.

Then memory: 10 shims with a `sleep` task each, of one mode at a time (PSS depends on how many
processes share the pages), PSS and RSS from smaps_rollup, and the template's.

    .venv/bin/python bench/bench_shim.py --rounds 20
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from containerd.shim_client import ShimClient, ShimConfig, ShimSpawner, start_shim  # noqa: E402
from runtime.spec_default import default_spec  # noqa: E402

PYRUNC = str(REPO / ".venv" / "bin" / "pyrunc")
ROOTFS = REPO / "images" / "busybox-bundle" / "rootfs"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
MODES = ("forked", "exec'd")
CALLS = ("start shim", "Create", "Start", "Wait", "Delete", "Shutdown")


class Mode:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.cgroup = CPUACCT / f"pydocker-bench-shim-{os.getpid()}-{secrets.token_hex(2)}"
        self.cgroup.mkdir()
        env = {} if name == "forked" else {"PYCONTAINERD_SHIM_FORK_RUNTIME": "0"}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            self.spawner = ShimSpawner()
            self.spawner._running()  # started now, with this environment
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
        proc = self.spawner._proc
        assert proc is not None
        self.template = proc.pid
        (self.cgroup / "cgroup.procs").write_text(str(proc.pid))
        self.times: dict[str, list[float]] = {c: [] for c in CALLS}
        self.cpu_of: dict[str, list[float]] = {c: [] for c in CALLS}
        self.cpu: list[float] = []

    def usage(self) -> float:
        return int((self.cgroup / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        self.spawner.close()
        for _ in range(100):
            try:
                self.cgroup.rmdir()
                return
            except OSError:
                time.sleep(0.05)


def bundle(root: Path, cid: str, args: list[str]) -> ShimConfig:
    path = root / f"bundle-{cid}"
    path.mkdir()
    shutil.copytree(ROOTFS, path / "rootfs", symlinks=True)
    spec = copy.deepcopy(default_spec())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["linux"]["cgroupsPath"] = f"/pydocker-bench-shim-{cid}"
    (path / "config.json").write_text(json.dumps(spec))
    runtime_root = root / "runtime-root"
    runtime_root.mkdir(exist_ok=True)
    return ShimConfig(
        id=cid,
        bundle=str(path),
        namespace="bench",
        state_dir=str(root / f"state-{cid}"),
        runtime=PYRUNC,
        runtime_root=str(runtime_root),
    )


@contextmanager
def timed(mode: Mode, call: str) -> Iterator[None]:
    """The wall time of CALL, and the CPU its shim and runtime spent meanwhile (the template's
    cgroup holds nothing else that runs)."""
    c0, t0 = mode.usage(), time.perf_counter()
    yield
    mode.times[call].append((time.perf_counter() - t0) * 1000)
    mode.cpu_of[call].append((mode.usage() - c0) * 1000)


def one_round(mode: Mode) -> None:
    cid = f"b{secrets.token_hex(4)}"
    config = bundle(mode.root, cid, ["true"])
    before = mode.usage()
    with timed(mode, "start shim"):
        address = start_shim(config, spawner=mode.spawner)
    with ShimClient(address) as client:
        with timed(mode, "Create"):
            client.create(id=cid, bundle=config.bundle)
        with timed(mode, "Start"):
            client.start(id=cid)
        with timed(mode, "Wait"):
            client.wait(id=cid)
        with timed(mode, "Delete"):
            client.delete(id=cid)
        with timed(mode, "Shutdown"):
            client.shutdown(id=cid)
    pid_file = Path(config.state_dir) / "shim.pid"
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    mode.cpu.append((mode.usage() - before) * 1000)
    shutil.rmtree(config.bundle)


def smaps(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) / 1024
    return fields["Pss"], fields["Rss"]


def memory(mode: Mode, count: int) -> tuple[float, float, float]:
    """Mean PSS and RSS of COUNT shims with a sleep task each, and the template's PSS."""
    tasks = []
    try:
        for _ in range(count):
            cid = f"m{secrets.token_hex(4)}"
            config = bundle(mode.root, cid, ["sleep", "1000"])
            client = ShimClient(start_shim(config, spawner=mode.spawner))
            client.create(id=cid, bundle=config.bundle)
            client.start(id=cid)
            tasks.append((cid, config, client))
        time.sleep(1)
        shims = [int((Path(c.state_dir) / "shim.pid").read_text()) for _, c, _ in tasks]
        usage = [smaps(pid) for pid in shims]
        template = smaps(mode.template)[0]
        return statistics.mean(u[0] for u in usage), statistics.mean(u[1] for u in usage), template
    finally:
        for cid, config, client in tasks:
            client.kill(id=cid, signal=9)
            client.wait(id=cid)
            client.delete(id=cid)
            client.shutdown(id=cid)
            client.close()
            shutil.rmtree(config.bundle, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--shims", type=int, default=10)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-shim-") as tmp:
        modes = [Mode(name, Path(tmp) / name.replace("'", "")) for name in MODES]
        try:
            for m in modes:
                m.root.mkdir()
            for i in range(args.warmup + args.rounds):
                for m in modes if i % 2 == 0 else reversed(modes):
                    one_round(m)
                if i + 1 == args.warmup:
                    for m in modes:
                        m.times = {c: [] for c in CALLS}
                        m.cpu_of = {c: [] for c in CALLS}
                        m.cpu = []
            mem = {m.name: memory(m, args.shims) for m in modes}
        finally:
            for m in modes:
                m.close()
    print(
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up; 1-minute load average {load:.1f} "
        f"before, {os.getloadavg()[0]:.1f} after"
    )
    print()
    print("| pyrunc | " + " | ".join(f"{c} (median)" for c in CALLS) + " | CPU per task (median) |")
    print("| --- " * (len(CALLS) + 2) + "|")
    for m in modes:
        cells = [f"{statistics.median(m.times[c]):.1f} ms" for c in CALLS]
        print(f"| {m.name} | " + " | ".join(cells) + f" | {statistics.median(m.cpu):.0f} ms |")
    print()
    print("CPU of the shim and its runtime during each call (median):")
    print()
    print("| pyrunc | " + " | ".join(CALLS) + " |")
    print("| --- " * (len(CALLS) + 1) + "|")
    for m in modes:
        print(f"| {m.name} | " + " | ".join(f"{statistics.median(m.cpu_of[c]):.1f} ms" for c in CALLS) + " |")
    print()
    print(f"| pyrunc | shim PSS ({args.shims} tasks, mean) | shim RSS (mean) | template PSS |")
    print("| --- | --- | --- | --- |")
    for name, (pss, rss, template) in mem.items():
        print(f"| {name} | {pss:.2f} MiB | {rss:.1f} MiB | {template:.1f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
