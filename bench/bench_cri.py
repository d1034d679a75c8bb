#!/usr/bin/env python3
"""Benchmark: pycontainerd's CRI plugin against containerd 1.6's built-in CRI plugin.

Both run as the CRI tests run them (tests/cri/harness.py): each on its own temp roots, inside a
network namespace of its own with a pyregistry seeded with busybox, the same CNI configuration
(bridge + host-local + portmap) and the same pause image (catatonit); containerd with Debian's
runc, pycontainerd with pyrunc. The client is the same for both: the generated runtime.v1 stubs
over the unix socket (crictl's process start-up would dominate otherwise).

1. Pod start: RunPodSandbox + CreateContainer + StartContainer (busybox `sleep`), one pod at a
   time, the two engines interleaved; then teardown: StopContainer(0) + RemoveContainer +
   StopPodSandbox + RemovePodSandbox.
2. 30 pods started concurrently (30 client threads), wall time until all run; then 30 torn down
   concurrently.

    .venv/bin/python bench/bench_cri.py [--rounds N] [--pods 30] [--write-doc]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
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
        cid = self.rt.CreateContainer(cri.CreateContainerRequest(pod_sandbox_id=pid, config=ctr, sandbox_config=pod), timeout=120).container_id
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
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args(argv)
    names = ["pycontainerd", "containerd"]
    results: dict[str, dict[str, object]] = {n: {"start": [], "down": []} for n in names}
    bases = [Path(tempfile.mkdtemp(prefix=f"crib-{n[:2]}-", dir="/tmp")) for n in names]
    try:
        with ExitStack() as stack:
            nodes = {n: Node(stack.enter_context(cri_engine(n, b))) for n, b in zip(names, bases, strict=True)}
            for n in names:  # warm-up: the sandbox image, first snapshot, CNI plugins' page cache
                nodes[n].teardown(*nodes[n].start_pod()[:2])
            for r in range(args.rounds):
                for n in names if r % 2 == 0 else reversed(names):
                    pid, cid, took = nodes[n].start_pod()
                    results[n]["start"].append(took)  # type: ignore[union-attr]
                    results[n]["down"].append(nodes[n].teardown(pid, cid))  # type: ignore[union-attr]
            for n in names:
                results[n]["burst"] = concurrent(nodes[n], args.pods)
    finally:
        for b in bases:
            remove_base(b)
    rows = [
        "| engine | pod start (run+create+start), median | teardown, median | "
        f"{args.pods} pods started concurrently | {args.pods} torn down concurrently |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n in names:
        up, down = results[n]["burst"]  # type: ignore[misc]
        rows.append(f"| {n} | {ms(results[n]['start'])} | {ms(results[n]['down'])} | {up:.2f} s | {down:.2f} s |")  # type: ignore[arg-type]
    body = "\n".join(rows) + f"\n\n{args.rounds} rounds, {platform.machine()}, {datetime.now(UTC):%Y-%m-%d}."
    print(body)
    if args.write_doc:
        intro = (
            "RunPodSandbox + CreateContainer + StartContainer of a busybox pod through the runtime.v1 stubs, and its\n"
            "teardown, on nodes as the CRI tests build them (private network namespace, bridge/host-local/portmap CNI,\n"
            "catatonit pause image); pycontainerd with pyrunc, containerd 1.6 with runc (`bench/bench_cri.py`)."
        )
        update_section(REPO / "docs" / "BENCHMARKS.md", SECTION, intro, "python bench/bench_cri.py --write-doc", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
