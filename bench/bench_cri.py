#!/usr/bin/env python3
"""Benchmark: pycontainerd's CRI plugin against containerd 1.6's built-in CRI plugin.

Both run as the CRI tests run them (tests/cri/harness.py): each on its own temp roots, inside a
network namespace of its own with a pyregistry seeded with busybox, the same CNI configuration
(bridge + host-local + portmap) and the same pause image (catatonit); containerd with Debian's
runc, pycontainerd with pyrunc. The client is the same for both: the generated runtime.v1 stubs
over the unix socket (crictl's process start-up would dominate otherwise).

1. Pod start: RunPodSandbox + CreateContainer + StartContainer (busybox `sleep`), one pod at a
   time, the engines interleaved; then teardown: StopContainer(0) + RemoveContainer +
   StopPodSandbox + RemovePodSandbox.
   Each also with the CPU time the engine spent on it (CpuMeter: daemon, shims, OCI runtime,
   CNI plugins) and, of that, the daemon's own (its process alone: the CRI plugin and the
   services it calls), which tells the plugin's share from the shims' and the runtime's.
2. 30 pods started concurrently (30 client threads), wall time until all run; then 30 torn down
   concurrently.

--runc adds pycontainerd with Debian's runc as its runtime (the runtime's share, side by side).

    .venv/bin/python bench/bench_cri.py [--rounds N] [--pods 30] [--runc] [--write-doc]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.benchdoc import update_section  # noqa: E402
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri  # noqa: E402
from protos.gen.cri_api.runtime.v1 import api_pb2_grpc  # noqa: E402
from tests.cri.harness import Engine, cri_engine, remove_base  # noqa: E402

SECTION = "## CRI: pycontainerd's plugin vs containerd 1.6's"


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


@dataclass
class Result:
    start: list[float] = field(default_factory=list)  # wall seconds per pod start
    down: list[float] = field(default_factory=list)
    cpu_start: float = 0.0  # mean CPU seconds per pod start
    cpu_down: float = 0.0
    daemon_start: float = 0.0  # of which the daemon process's own
    daemon_down: float = 0.0
    burst: tuple[float, float] = (0.0, 0.0)  # the concurrent start and teardown, wall seconds


class CpuMeter:
    """CPU time of an engine and everything it starts outside the containers (shims, the OCI
    runtime, CNI plugins; a container's processes move to their own cgroups): a cgroup v1 cpuacct
    group the daemon is moved into, so its children start there. Wall time on a shared, loaded
    machine mostly measures the wait for a core; CPU time is what the engine spends."""

    def __init__(self, name: str, pid: int) -> None:
        self.path = CPUACCT / f"bench-cri-{name}-{pid}"
        self.path.mkdir()
        (self.path / "cgroup.procs").write_text(str(pid))

    def usage(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        """Once the engine has stopped: whatever is left goes back to the root, then the group goes."""
        for _ in range(50):
            for pid in (self.path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CPUACCT / "cgroup.procs").write_text(pid)
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def process_cpu(pid: int) -> float:
    """CPU seconds of one process, all its threads (those that ended too), not its children."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.channel = grpc.insecure_channel(f"unix://{engine.address}")
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.img = api_pb2_grpc.ImageServiceStub(self.channel)
        self.image = engine.image()
        self.img.PullImage(cri.PullImageRequest(image=cri.ImageSpec(image=self.image)), timeout=120)
        self.seq = 0

    def configs(self, name: str) -> tuple[cri.PodSandboxConfig, cri.ContainerConfig]:
        pod = cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace="bench", uid=f"uid-{name}"),
            hostname=name, log_directory=str(self.engine.base / "logs" / name),
        )  # fmt: skip
        ctr = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name="app"), image=cri.ImageSpec(image=self.image),
            command=["sleep", "100000"], log_path="app.log",
        )  # fmt: skip
        return pod, ctr

    def start_pod(self) -> tuple[str, str, float]:
        self.seq += 1
        pod, ctr = self.configs(f"p{self.seq}-{time.monotonic_ns()}")
        t0 = time.perf_counter()
        pid = self.rt.RunPodSandbox(cri.RunPodSandboxRequest(config=pod), timeout=120).pod_sandbox_id
        cid = self.rt.CreateContainer(
            cri.CreateContainerRequest(pod_sandbox_id=pid, config=ctr, sandbox_config=pod), timeout=120
        ).container_id
        self.rt.StartContainer(cri.StartContainerRequest(container_id=cid), timeout=120)
        return pid, cid, time.perf_counter() - t0

    def teardown(self, pid: str, cid: str) -> float:
        t0 = time.perf_counter()
        self.rt.StopContainer(cri.StopContainerRequest(container_id=cid, timeout=0), timeout=120)
        self.rt.RemoveContainer(cri.RemoveContainerRequest(container_id=cid), timeout=120)
        self.rt.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=120)
        self.rt.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=120)
        return time.perf_counter() - t0


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"


def concurrent(node: Node, pods: int) -> tuple[float, float]:
    with ThreadPoolExecutor(max_workers=pods) as pool:
        t0 = time.perf_counter()
        started = list(pool.map(lambda _: node.start_pod(), range(pods)))
        up = time.perf_counter() - t0
        t0 = time.perf_counter()
        list(pool.map(lambda s: node.teardown(s[0], s[1]), started))
        down = time.perf_counter() - t0
    return up, down


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--pods", type=int, default=30)
    ap.add_argument("--runc", action="store_true", help="pycontainerd with runc too")
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args(argv)
    names = ["pycontainerd", "containerd"] + (["pycontainerd+runc"] if args.runc else [])
    results = {n: Result() for n in names}
    bases = [Path(tempfile.mkdtemp(prefix=f"crib-{n[:2]}{len(n)}-", dir="/tmp")) for n in names]
    meters: dict[str, CpuMeter] = {}
    try:
        with ExitStack() as stack:
            nodes = {
                n: Node(stack.enter_context(cri_engine(n, b))) for n, b in zip(names, bases, strict=True)
            }
            for n in names:
                proc = nodes[n].engine.proc
                assert proc is not None
                meters[n] = CpuMeter(n, proc.pid)
            for n in names:  # warm-up: the sandbox image, first snapshot, CNI plugins' page cache
                nodes[n].teardown(*nodes[n].start_pod()[:2])
            for r in range(args.rounds):
                for n in names if r % 2 == 0 else reversed(names):
                    daemon = nodes[n].engine.proc.pid  # type: ignore[union-attr]  # nsenter execs it
                    c0, d0 = meters[n].usage(), process_cpu(daemon)
                    pid, cid, took = nodes[n].start_pod()
                    c1, d1 = meters[n].usage(), process_cpu(daemon)
                    results[n].start.append(took)
                    results[n].down.append(nodes[n].teardown(pid, cid))
                    res = results[n]
                    res.cpu_start += (c1 - c0) / args.rounds
                    res.cpu_down += (meters[n].usage() - c1) / args.rounds
                    res.daemon_start += (d1 - d0) / args.rounds
                    res.daemon_down += (process_cpu(daemon) - d1) / args.rounds
            for n in names:
                results[n].burst = concurrent(nodes[n], args.pods)
    finally:
        for meter in meters.values():
            meter.close()
        for b in bases:
            remove_base(b)
    rows = [
        "| engine | pod start (run+create+start), median | CPU per pod start (daemon's) | teardown, median | "
        f"CPU per teardown (daemon's) | {args.pods} pods started concurrently | {args.pods} torn down concurrently |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in names:
        res = results[n]
        up, down = res.burst
        rows.append(
            f"| {n} | {ms(res.start)} | {res.cpu_start * 1000:.0f} ms ({res.daemon_start * 1000:.0f}) | "
            f"{ms(res.down)} | {res.cpu_down * 1000:.0f} ms ({res.daemon_down * 1000:.0f}) | "
            f"{up:.2f} s | {down:.2f} s |"
        )
    load = os.getloadavg()[0]
    body = (
        "\n".join(rows)
        + f"\n\n{args.rounds} rounds, {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, {datetime.now(UTC):%Y-%m-%d}."
    )
    print(body)
    if args.write_doc:
        intro = (
            "RunPodSandbox + CreateContainer + StartContainer of a busybox pod through the runtime.v1 stubs, and its\n"
            "teardown, on nodes as the CRI tests build them (private network namespace, bridge/host-local/portmap CNI,\n"
            "catatonit pause image); pycontainerd with pyrunc, containerd 1.6 with runc (`bench/bench_cri.py`;\n"
            "`--runc` adds pycontainerd with runc). CPU in parentheses: the daemon process's own share."
        )
        update_section(
            REPO / "docs" / "BENCHMARKS.md",
            SECTION,
            intro,
            f"python bench/bench_cri.py{' --runc' if args.runc else ''} --write-doc",
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
