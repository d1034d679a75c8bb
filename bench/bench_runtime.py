#!/usr/bin/env python3
"""Benchmark: pyrunc against runc, verb by verb, on the same busybox bundle.

Both runtimes get the same config.json and root filesystem. Every round times, for each
runtime in turn (the order alternates every round, so drift in the machine's load hits both
alike), each verb as its own process, from spawn to exit of the runtime:

- `run` of `true`: create + start + wait + delete in one process, with a fresh `--root`;
- `create`, `start` and `delete` of a container running `true`, as a shim drives them (the
  container's exit is reaped by this script, a child subreaper, between start and delete);
- `exec` of `true` in a container running `sleep` (created once per runtime).

Beside each wall time, the CPU time (user + system) of the runtime's process and of the
children it reaped: what the verb costs whatever the load, where the wall time on a busy
machine is mostly the wait for a core.

    .venv/bin/python bench/bench_runtime.py                # 50 runs each, prints the table
    .venv/bin/python bench/bench_runtime.py --write-doc    # also updates docs/BENCHMARKS.md
    .venv/bin/python bench/bench_runtime.py --instructions # instructions per verb instead

`--instructions` runs each verb once per runtime under `valgrind --tool=lackey` and prints the
user-space instructions of the runtime's own process (not of its forks or execs): a count that
does not depend on the machine's load, unlike the wall times of a shared 2-core box.

It is a script, not a test: it exits non-zero only when a runtime fails to run the bundle.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUNDLE = REPO / "images" / "busybox-bundle"
DEFAULT_PYRUNC = REPO / ".venv" / "bin" / "pyrunc"
DEFAULT_RUNC = Path("/usr/sbin/runc")
DEFAULT_DOC = REPO / "docs" / "BENCHMARKS.md"
DOC_SECTION = "## pyrunc vs runc: every verb on busybox"
VERBS = ("run", "create", "start", "delete", "exec")
PR_SET_CHILD_SUBREAPER = 36
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


def write_bundle(
    bundle: Path, rootfs: Path, config_src: Path | None, cgroups_path: str, args: list[str]
) -> None:
    """config.json running ARGS on `rootfs`; the rest comes from `config_src` or `runc spec`."""
    bundle.mkdir()
    if config_src is not None and config_src.is_file():
        config = json.loads(config_src.read_text())
    else:
        subprocess.run([str(DEFAULT_RUNC), "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs.resolve()), "readonly": True}
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    # Both runtimes place the container under one parent we can remove at the end.
    config.setdefault("linux", {})["cgroupsPath"] = cgroups_path
    (bundle / "config.json").write_text(json.dumps(config, indent=2))


def timed(rt: Runtime, argv: list[str], detached: bool = False) -> tuple[float, float]:
    """Seconds from spawn to exit of one runtime command, and the CPU seconds (user + system) of
    it and of the children it reaped; a failure stops the benchmark. The CPU time is what the
    runtime costs whatever the load, where the wall time on a busy machine is mostly the wait
    for a core.

    DETACHED: the command leaves a container running, which inherits its stdio: its output then
    goes to a file, as a pipe would stay open (and a read of it blocked) as long as the container."""
    full = [str(rt.path), *argv]
    with tempfile.TemporaryFile() as spool:
        out: int | IO[bytes] = spool if detached else subprocess.PIPE
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        res = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spool.seek(0)
        output = spool.read() if detached else res.stdout
    if res.returncode != 0:
        raise BenchError(
            f"{' '.join(full)} exited {res.returncode}: {output.decode(errors='replace').strip()}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


_LACKEY_COUNT = re.compile(r"guest instrs:\s+([\d,]+)")


def counted(rt: Runtime, argv: list[str], detached: bool = False) -> tuple[float, float]:
    """Instructions of one runtime command's own process, under valgrind's lackey tool.

    Without --trace-children valgrind follows forks (each fork logs its own count, in its own
    file) but not execs; the count kept is the first process's, the one a caller waits for.
    create, run and exec run uncounted (NaN): runc re-executes /proc/self/exe, which under
    valgrind is valgrind's tool, not runc, and valgrind 3.19 does not know openat2 (ENOSYS), which
    pyrunc's init resolves every path of the spec with. Their CPU time is in the timed table."""
    if argv[2] in ("create", "run", "exec"):
        timed(rt, argv, detached)
        return math.nan, math.nan
    with tempfile.TemporaryDirectory(prefix="bench-lackey-") as logs:
        full = [
            "valgrind", "--tool=lackey", "--basic-counts=yes", f"--log-file={logs}/%p",
            str(rt.path), *argv,
        ]  # fmt: skip
        with tempfile.TemporaryFile() as spool:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=spool, stderr=subprocess.STDOUT)
            code = proc.wait()
            spool.seek(0)
            output = spool.read()
        if code != 0:
            raise BenchError(f"{' '.join(full)} exited {code}: {output.decode(errors='replace').strip()}")
        found = _LACKEY_COUNT.search(Path(logs, str(proc.pid)).read_text())
    if found is None:
        raise BenchError(f"no instruction count in valgrind's log of {' '.join(full)}")
    return float(found.group(1).replace(",", "")), math.nan


def new_id(rt: Runtime) -> str:
    return f"bench-{rt.name}-{uuid.uuid4().hex[:12]}"


Measure = Callable[..., tuple[float, float]]


def run_once(rt: Runtime, bundle: Path, scratch: Path, measure: Measure = timed) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix=f"{rt.name}-root-", dir=scratch))
    try:
        return measure(rt, ["--root", str(root), "run", "--bundle", str(bundle), new_id(rt)])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def lifecycle_once(
    rt: Runtime, root: Path, bundle: Path, scratch: Path, measure: Measure = timed
) -> dict[str, tuple[float, float]]:
    """create, start and delete of one container running `true`, each measured on its own."""
    cid = new_id(rt)
    pid_file = scratch / f"{cid}.pid"
    out = {
        "create": measure(
            rt,
            ["--root", str(root), "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid],
            detached=True,
        )
    }
    pid = int(pid_file.read_text())
    pid_file.unlink()
    out["start"] = measure(rt, ["--root", str(root), "start", cid])
    # The init was re-parented to us (a child subreaper), as it is to a shim: reap it so that
    # `delete` finds the container stopped, as a shim's delete after the exit event does.
    os.waitpid(pid, 0)
    out["delete"] = measure(rt, ["--root", str(root), "delete", cid])
    return out


def set_child_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise BenchError(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def reap_children() -> None:
    """Reap whatever was re-parented to us and has exited (a failed round's leftovers)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


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


def table(summaries: dict[str, list[Summary]], cpu: dict[str, list[Summary]]) -> str:
    lines = [
        "| verb | runtime | runs | median | p90 | ratio to runc | CPU median | CPU ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for verb, per_runtime in summaries.items():
        baseline, cpu_baseline = per_runtime[0], cpu[verb][0]
        for s, c in zip(per_runtime, cpu[verb], strict=True):
            ratio = s.median_s / baseline.median_s
            cpu_ratio = c.median_s / cpu_baseline.median_s if cpu_baseline.median_s else math.nan
            lines.append(
                f"| {verb} | {s.name} | {s.runs} | {s.median_s * 1000:.1f} ms | {s.p90_s * 1000:.1f} ms "
                f"| {ratio:.2f} | {c.median_s * 1000:.1f} ms | {cpu_ratio:.2f} |"
            )
    return "\n".join(lines)


def instruction_table(summaries: dict[str, list[Summary]]) -> str:
    lines = ["| verb | runc | pyrunc | ratio |", "| --- | --- | --- | --- |"]
    for verb, (runc, pyrunc) in summaries.items():
        lines.append(
            f"| {verb} | {runc.median_s / 1e6:.1f}M | {pyrunc.median_s / 1e6:.1f}M "
            f"| {pyrunc.median_s / runc.median_s:.1f} |".replace("nanM", "n/a").replace("| nan |", "| |")
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
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count each verb's instructions under valgrind (lackey) instead of timing it",
    )
    args = parser.parse_args(argv)
    if args.instructions and args.write_doc:
        parser.error("--instructions prints its table; --write-doc records wall times")
    if args.instructions and not shutil.which("valgrind"):
        print("bench_runtime: --instructions needs valgrind", file=sys.stderr)
        return 2
    measure: Measure = counted if args.instructions else timed
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
    samples: dict[str, dict[str, list[float]]] = {v: {rt.name: [] for rt in runtimes} for v in VERBS}
    cpu: dict[str, dict[str, list[float]]] = {v: {rt.name: [] for rt in runtimes} for v in VERBS}
    roots = {rt.name: scratch / f"{rt.name}-root" for rt in runtimes}
    sleepers: dict[str, str] = {}
    load_before = os.getloadavg()
    # A terminated run still removes its containers, cgroups and scratch directory (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    try:
        set_child_subreaper()
        if args.rootfs is not None:
            rootfs, config_src = args.rootfs, DEFAULT_BUNDLE / "config.json"
        elif (DEFAULT_BUNDLE / "rootfs").is_dir():
            rootfs, config_src = DEFAULT_BUNDLE / "rootfs", DEFAULT_BUNDLE / "config.json"
        else:
            rootfs, config_src = build_rootfs(scratch / "rootfs"), None
        bundle, sleeper = scratch / "bundle", scratch / "sleeper"
        write_bundle(bundle, rootfs, config_src, f"{cgroup_parent}/bench", ["true"])
        write_bundle(sleeper, rootfs, config_src, f"{cgroup_parent}/sleeper", ["sleep", "100000"])
        for rt in runtimes:
            sid = new_id(rt)
            timed(
                rt,
                ["--root", str(roots[rt.name]), "run", "--detach", "--bundle", str(sleeper), sid],
                detached=True,
            )
            sleepers[rt.name] = sid

        def one_round(record: bool) -> None:
            for rt in runtimes if len(samples["run"][runtimes[0].name]) % 2 == 0 else reversed(runtimes):
                got = {"run": run_once(rt, bundle, scratch, measure)}
                got.update(lifecycle_once(rt, roots[rt.name], bundle, scratch, measure))
                got["exec"] = measure(rt, ["--root", str(roots[rt.name]), "exec", sleepers[rt.name], "true"])
                if record:
                    for verb, (primary, cpu_seconds) in got.items():
                        samples[verb][rt.name].append(primary)
                        cpu[verb][rt.name].append(cpu_seconds)

        for _ in range(args.warmup):
            one_round(record=False)
        for _ in range(args.runs):
            one_round(record=True)
    except BenchError as exc:
        print(f"bench_runtime: {exc}", file=sys.stderr)
        return 1
    finally:
        for rt in runtimes:
            if rt.name in sleepers:
                subprocess.run(
                    [str(rt.path), "--root", str(roots[rt.name]), "delete", "--force", sleepers[rt.name]],
                    capture_output=True,
                )
        reap_children()
        shutil.rmtree(scratch, ignore_errors=True)
        remove_cgroup_parent(cgroup_parent)
    load_after = os.getloadavg()

    summaries = {v: [summarize(rt.name, samples[v][rt.name]) for rt in runtimes] for v in VERBS}
    cpu_summaries = {v: [summarize(rt.name, cpu[v][rt.name]) for rt in runtimes] for v in VERBS}
    body = instruction_table(summaries) if args.instructions else table(summaries, cpu_summaries)
    load = f"1-minute load average {load_before[0]:.1f} before and {load_after[0]:.1f} after"
    print(f"rootfs: {rootfs}")
    for rt in runtimes:
        print(f"{rt.name}: {rt.path} ({version_line(rt)})")
    print(load)
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
            f"Measured {when} on {platform.node() or 'this machine'} (kernel {platform.release()}, "
            f"{os.cpu_count()} cores, {load}): {versions}; {args.warmup} warm-up rounds, then "
            f"{args.runs} interleaved rounds, each timing every verb of both runtimes, spawn to exit "
            "(CPU: the runtime's process and the children it reaped)."
        )
        update_doc(args.doc, command, f"{note}\n\n{body}")
        print(f"updated {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
