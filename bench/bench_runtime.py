#!/usr/bin/env python3
"""Benchmark: `pyrunc run` against `runc run` of the same busybox bundle running `true`.

Both runtimes get the same config.json and root filesystem. Runs are interleaved (and the
order alternates every round) so that drift in the machine's load hits both alike; every run
has its own fresh `--root` directory and container id, and is timed from fork to exit of the
runtime process, i.e. create + start + wait + delete as `run` does it.

    .venv/bin/python bench/bench_runtime.py                # 50 runs each, prints the table
    .venv/bin/python bench/bench_runtime.py --write-doc    # also updates docs/BENCHMARKS.md

It is a script, not a test: it exits non-zero only when a runtime fails to run the bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "images" / "busybox-bundle"
DEFAULT_PYRUNC = REPO / ".venv" / "bin" / "pyrunc"
DEFAULT_RUNC = Path("/usr/sbin/runc")
DEFAULT_DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## pyrunc vs runc: `run` of busybox `true`"
HOST_BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")


class BenchError(Exception):
    """The benchmark cannot run (missing tool, a runtime failing the bundle)."""


@dataclass(frozen=True)
class Runtime:
    name: str
    path: Path


@dataclass(frozen=True)
class Summary:
    name: str
    runs: int
    median_s: float
    p90_s: float
    mean_s: float
    min_s: float


def summarize(name: str, samples: list[float]) -> Summary:
    ordered = sorted(samples)
    # Nearest-rank 90th percentile: the smallest sample with at least 90% of them at or below it.
    p90 = ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]
    return Summary(
        name=name,
        runs=len(samples),
        median_s=statistics.median(ordered),
        p90_s=p90,
        mean_s=statistics.fmean(ordered),
        min_s=ordered[0],
    )


def build_rootfs(dest: Path) -> Path:
    """A minimal busybox root filesystem from the host's static busybox (when no image is built)."""
    busybox = next((Path(p) for p in HOST_BUSYBOX if Path(p).is_file()), None)
    if busybox is None:
        raise BenchError("no default image and no host busybox: run scripts/setup or install busybox-static")
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("sh", "true"):
        (dest / "bin" / applet).symlink_to("busybox")
    return dest


def write_bundle(bundle: Path, rootfs: Path, config_src: Path | None, cgroups_path: str) -> None:
    """config.json running `true` on `rootfs`; the rest comes from `config_src` or `runc spec`."""
    if config_src is not None and config_src.is_file():
        config = json.loads(config_src.read_text())
    else:
        subprocess.run([str(DEFAULT_RUNC), "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs.resolve()), "readonly": True}
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    # Both runtimes place the container under one parent we can remove at the end.
    config.setdefault("linux", {})["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


def run_once(rt: Runtime, bundle: Path, scratch: Path) -> float:
    root = Path(tempfile.mkdtemp(prefix=f"{rt.name}-root-", dir=scratch))
    cid = f"bench-{rt.name}-{uuid.uuid4().hex[:12]}"
    argv = [str(rt.path), "--root", str(root), "run", "--bundle", str(bundle), cid]
    start = time.perf_counter()
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)
    if res.returncode != 0:
        detail = (res.stderr or res.stdout).decode(errors="replace").strip()
        raise BenchError(f"{' '.join(argv)} exited {res.returncode}: {detail}")
    return elapsed


def remove_cgroup_parent(parent: str) -> None:
    """rmdir the cgroup parent both runtimes used; warn (not fail) if a runtime left it busy."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        target = hierarchy / parent.strip("/")
        if not target.is_dir():
            continue
        for sub in [*sorted(target.rglob("*"), key=lambda p: -len(p.parts)), target]:
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError as exc:
                    print(
                        f"bench_runtime: warning: cannot remove cgroup {sub}: {exc.strerror}", file=sys.stderr
                    )


def version_line(rt: Runtime) -> str:
    res = subprocess.run([str(rt.path), "--version"], capture_output=True, text=True)
    return (
        res.stdout.splitlines()[0] if res.returncode == 0 and res.stdout else f"{rt.name} (version unknown)"
    )


def table(summaries: list[Summary], baseline: Summary) -> str:
    lines = ["| runtime | runs | median | p90 | ratio to runc |", "| --- | --- | --- | --- | --- |"]
    for s in summaries:
        ratio = s.median_s / baseline.median_s
        lines.append(
            f"| {s.name} | {s.runs} | {s.median_s * 1000:.1f} ms | {s.p90_s * 1000:.1f} ms | {ratio:.2f} |"
        )
    return "\n".join(lines)


def update_doc(doc: Path, command: str, body: str) -> None:
    from benchdoc import update_section

    update_section(doc, DOC_SECTION, "", command, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per runtime (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per runtime first (default 3)")
    parser.add_argument("--pyrunc", type=Path, default=DEFAULT_PYRUNC)
    parser.add_argument("--runc", type=Path, default=DEFAULT_RUNC)
    parser.add_argument(
        "--rootfs", type=Path, default=None, help="root filesystem (default: the built image's)"
    )
    parser.add_argument(
        "--write-doc", action="store_true", help=f"update the pyrunc section of {DEFAULT_DOC}"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if os.geteuid() != 0:
        print("bench_runtime: must run as root (containers need namespaces and cgroups)", file=sys.stderr)
        return 2

    runtimes = [Runtime("runc", args.runc), Runtime("pyrunc", args.pyrunc)]
    for rt in runtimes:
        if not os.access(rt.path, os.X_OK):
            print(f"bench_runtime: {rt.name} not found at {rt.path}", file=sys.stderr)
            return 2

    scratch = Path(tempfile.mkdtemp(prefix="pydocker-bench-"))
    cgroup_parent = f"/pydocker-bench-{os.getpid()}"
    samples: dict[str, list[float]] = {rt.name: [] for rt in runtimes}
    try:
        if args.rootfs is not None:
            rootfs, config_src = args.rootfs, DEFAULT_BUNDLE / "config.json"
        elif (DEFAULT_BUNDLE / "rootfs").is_dir():
            rootfs, config_src = DEFAULT_BUNDLE / "rootfs", DEFAULT_BUNDLE / "config.json"
        else:
            rootfs, config_src = build_rootfs(scratch / "rootfs"), None
        bundle = scratch / "bundle"
        bundle.mkdir()
        write_bundle(bundle, rootfs, config_src, f"{cgroup_parent}/bench")

        for _ in range(args.warmup):
            for rt in runtimes:
                run_once(rt, bundle, scratch)
        for i in range(args.runs):
            for rt in runtimes if i % 2 == 0 else reversed(runtimes):
                samples[rt.name].append(run_once(rt, bundle, scratch))
    except BenchError as exc:
        print(f"bench_runtime: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        remove_cgroup_parent(cgroup_parent)

    summaries = [summarize(rt.name, samples[rt.name]) for rt in runtimes]
    body = table(summaries, summaries[0])
    print(f"rootfs: {rootfs}")
    for rt in runtimes:
        print(f"{rt.name}: {rt.path} ({version_line(rt)})")
    print(body)
    if args.write_doc:
        command = ".venv/bin/python bench/bench_runtime.py --write-doc"
        if args.runs != 50:
            command += f" --runs {args.runs}"
        if args.warmup != 3:
            command += f" --warmup {args.warmup}"
        versions = ", ".join(version_line(rt) for rt in runtimes)
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        note = (
            f"Measured {when} on {platform.node() or 'this machine'} (kernel {platform.release()}): "
            f"{versions}; {args.warmup} warm-up runs each, then {args.runs} interleaved timed runs each, "
            "every run with a fresh `--root` and container id, timed from spawn to exit of the runtime."
        )
        update_doc(args.doc, command, f"{note}\n\n{body}")
        print(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
