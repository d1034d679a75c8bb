#!/usr/bin/env python3
"""Benchmark: pycontainerd (with pyrunc, and with runc) against containerd 1.6 (with runc).

Three daemons run side by side in one invocation, each on its own temporary root, state
directory, socket and containerd namespace (so each engine's container cgroups live under
/sys/fs/cgroup/*/<namespace>/ and can be found and removed at the end):

* pycontainerd + pyrunc   -- `.venv/bin/pycontainerd`, default runtime;
* pycontainerd + runc     -- the same daemon with `[runtimes] "io.containerd.runc.v2" = runc`;
* containerd + runc       -- Debian's containerd 1.6 and containerd-shim-runc-v2, in a private
  mount namespace with a tmpfs over /run/containerd (its shims put their sockets under the
  hard-coded /run/containerd/s), the CRI plugin disabled (pycontainerd has no CRI).

What is measured, after `ctr images import` of Docker's busybox archive into each:

1. Tasks.Start -> RUNNING: through the generated gRPC stubs (Snapshots.Prepare from the
   image's chain id, Containers.Create with `ctr oci spec`'s default spec, Tasks.Create with
   no stdio), the time from calling Tasks.Start until Tasks.Get says RUNNING; samples of
   the three engines are interleaved, the order alternating every round.
2. Daemon memory (/proc/PID/smaps_rollup): just started, after the import, and with 50
   `sleep` tasks running.
3. Shim memory with 10 `sleep` tasks running (one engine's containers alive at a time, as
   PSS depends on how many processes share the pages): PSS and RSS, mean and max.
4. Throughput of `ctr run --rm IMAGE ID true` (create + start + wait + delete of container
   and task) with 1 and with 8 concurrent `ctr` processes, containers per second; the same
   client for every daemon so the comparison is like for like.

    .venv/bin/python bench/bench_containerd.py                # prints the tables
    .venv/bin/python bench/bench_containerd.py --write-doc    # also updates docs/BENCHMARKS.md

It is a script, not a test: it exits 1 when an engine fails, and 3 when the final cleanup
had to remove something a daemon or shim left behind (it says what).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PYCONTAINERD = REPO / ".venv" / "bin" / "pycontainerd"
DEFAULT_CONTAINERD = Path("/usr/bin/containerd")
DEFAULT_RUNC = Path("/usr/sbin/runc")
DEFAULT_IMAGE_TAR = REPO.parent / "shared" / "images" / "busybox.tar"
DEFAULT_DOC = REPO / "docs" / "BENCHMARKS.md"
CTR = "/usr/bin/ctr"
UNSHARE = "/usr/bin/unshare"
IMAGE = "docker.io/library/busybox:latest"
RUNTIME_NAME = "io.containerd.runc.v2"
SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
SNAPSHOTTER = "overlayfs"
CGROUP_ROOT = Path("/sys/fs/cgroup")
REF_SHIM_DIR = Path("/run/containerd")
DOC_SECTION = "## pycontainerd vs containerd 1.6"
DOC_INTRO = """\
pycontainerd (with pyrunc, and with Debian's runc 1.1.5 as its runtime) against Debian's
containerd 1.6 with containerd-shim-runc-v2 and runc. One run of the script starts all three
daemons on temporary roots and imports Docker's busybox archive into each with `ctr`.
Start latency goes through the generated gRPC stubs (Snapshots.Prepare from the image's
chain id, Containers.Create with `ctr oci spec`'s spec, Tasks.Create without stdio, then
the time from Tasks.Start until Tasks.Get says RUNNING); throughput uses `ctr run --rm` for
every daemon, so the client is the same; memory is read from /proc/PID/smaps_rollup. PSS
charges pages shared by several processes in fractions: a pycontainerd-shim shares the
Python interpreter with the daemons and the script, a containerd-shim-runc-v2 its Go binary
with the other shims. Targets: pycontainerd's idle RSS <= 42 MiB; per shim PSS <= 8 MiB and
RSS <= 16 MiB."""
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
SIGKILL = 9
THROUGHPUT_ROUNDS = 2
# The sizes of a run (flag -> default, help); the defaults keep a whole run near three minutes.
COUNTS = {
    "runs": (30, "timed Tasks.Start samples per engine"),
    "warmup": (3, "untimed Tasks.Start samples per engine first"),
    "shims": (10, "running tasks while the shims' memory is read"),
    "loaded": (50, "running tasks while the loaded daemon's memory is read"),
    "serial": (20, "`ctr run --rm` containers with 1 client"),
    "parallel": (40, "`ctr run --rm` containers with --clients concurrent clients"),
    "clients": (8, "concurrent ctr clients"),
}
MIB = 1024.0  # smaps_rollup counts KiB


class BenchError(Exception):
    """The benchmark cannot go on (a daemon does not start, a request fails)."""


# --- the engines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSpec:
    name: str
    kind: str  # "py" (pycontainerd) or "ref" (containerd)
    runtime: str | None = None  # pycontainerd only: the binary behind io.containerd.runc.v2


@dataclass
class Engine:
    """A running daemon under test and everything needed to find what it started."""

    spec: EngineSpec
    workdir: Path
    socket: Path
    namespace: str
    log: Path
    proc: subprocess.Popen[bytes]
    mount_ns: str | None = None  # the reference daemon's private mount namespace
    api: Api | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fifo_dir(self) -> Path:
        return self.workdir / "fifo"

    def task_dirs(self) -> list[Path]:
        """The bundle directory of every task of ours (each holds the shim's shim.pid)."""
        if self.spec.kind == "py":
            base = self.workdir / "state" / "tasks" / self.namespace
        else:
            base = self.workdir / "state" / "io.containerd.runtime.v2.task" / self.namespace
        try:
            return sorted(p for p in base.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [CTR, "--address", str(self.socket), "--namespace", self.namespace, *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=ENV,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{self.name}: ctr {' '.join(args)} took more than {timeout}s") from exc

    def ctr_ok(self, *args: str, timeout: float = 120) -> str:
        res = self.ctr(*args, timeout=timeout)
        if res.returncode != 0:
            raise BenchError(
                f"{self.name}: ctr {' '.join(args)} exited {res.returncode}: "
                f"{(res.stderr or res.stdout).strip()}\n--- daemon log tail ---\n{self.log_tail()}"
            )
        return res.stdout

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_pycontainerd(spec: EngineSpec, workdir: Path, namespace: str, binary: Path) -> Engine:
    sock = workdir / "pycontainerd.sock"
    args = [
        str(binary),
        "--root",
        str(workdir / "root"),
        "--state",
        str(workdir / "state"),
        "--address",
        str(sock),
    ]
    if spec.runtime is not None:
        config = workdir / "config.toml"
        config.write_text(f'[runtimes]\n"{RUNTIME_NAME}" = "{spec.runtime}"\n')
        args += ["--config", str(config)]
    log = workdir / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
            start_new_session=True,
        )
    return Engine(spec, workdir, sock, namespace, log, proc)


def start_containerd(spec: EngineSpec, workdir: Path, namespace: str, binary: Path) -> Engine:
    """containerd in a private mount namespace whose /run/containerd is a fresh tmpfs."""
    sock = workdir / "containerd.sock"
    config = workdir / "config.toml"
    config.write_text(
        "\n".join(
            [
                "version = 2",
                f'root = "{workdir / "root"}"',
                f'state = "{workdir / "state"}"',
                # No CRI (pycontainerd has none); the snapshotters this host cannot run anyway.
                'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
                ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",'
                ' "io.containerd.snapshotter.v1.devmapper"]',
                "[grpc]",
                f'  address = "{sock}"',
                "[ttrpc]",
                f'  address = "{sock}.ttrpc"',
                "[debug]",
                '  address = ""',
                '[plugins."io.containerd.internal.v1.opt"]',
                f'  path = "{workdir / "opt"}"',
                "",
            ]
        )
    )
    script = "\n".join(
        [
            "set -e",
            f"mount -t tmpfs -o mode=0711 tmpfs {REF_SHIM_DIR}",
            f"exec {binary} --config {config}",
        ]
    )
    log = workdir / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
            start_new_session=True,
        )
    return Engine(spec, workdir, sock, namespace, log, proc)


def wait_ready(engine: Engine, timeout: float = 60) -> None:
    """Until the Version RPC answers (a socket file alone proves nothing)."""
    deadline = time.monotonic() + timeout
    while True:
        if engine.proc.poll() is not None:
            raise BenchError(
                f"{engine.name} exited {engine.proc.returncode} while starting:\n{engine.log_tail()}"
            )
        if engine.socket.exists():
            if engine.api is None:
                engine.api = Api(engine.socket, engine.namespace)
            try:
                engine.api.version()
                break
            except grpc.RpcError:
                pass
        if time.monotonic() > deadline:
            raise BenchError(f"{engine.name} not ready after {timeout}s:\n{engine.log_tail()}")
        time.sleep(0.05)
    if engine.spec.kind == "ref":
        engine.mount_ns = _mount_ns(engine.proc.pid)


# --- the gRPC client ------------------------------------------------------------------------


class Api:
    """The generated stubs of the services the benchmark calls, for one daemon and namespace."""

    def __init__(self, socket: Path, namespace: str) -> None:
        import protos

        protos.load()
        from google.protobuf import any_pb2, empty_pb2

        from protos.gen.containerd_api.services.containers.v1 import containers_pb2, containers_pb2_grpc
        from protos.gen.containerd_api.services.content.v1 import content_pb2, content_pb2_grpc
        from protos.gen.containerd_api.services.images.v1 import images_pb2, images_pb2_grpc
        from protos.gen.containerd_api.services.leases.v1 import leases_pb2, leases_pb2_grpc
        from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
        from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
        from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc
        from protos.gen.containerd_api.types.task import task_pb2

        self.pb = {
            "containers": containers_pb2,
            "content": content_pb2,
            "images": images_pb2,
            "leases": leases_pb2,
            "snapshots": snapshots_pb2,
            "tasks": tasks_pb2,
            "task": task_pb2,
            "any": any_pb2,
            "empty": empty_pb2,
        }
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.meta: tuple[tuple[str, str], ...] = (("containerd-namespace", namespace),)
        self.containers = containers_pb2_grpc.ContainersStub(self.channel)
        self.content = content_pb2_grpc.ContentStub(self.channel)
        self.images = images_pb2_grpc.ImagesStub(self.channel)
        self.leases = leases_pb2_grpc.LeasesStub(self.channel)
        self.snapshots = snapshots_pb2_grpc.SnapshotsStub(self.channel)
        self.tasks = tasks_pb2_grpc.TasksStub(self.channel)
        self.version_stub = version_pb2_grpc.VersionStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def version(self) -> str:
        return str(self.version_stub.Version(self.pb["empty"].Empty(), timeout=5).version)

    def read_blob(self, digest: str) -> bytes:
        req = self.pb["content"].ReadContentRequest(digest=digest)
        return b"".join(chunk.data for chunk in self.content.Read(req, metadata=self.meta, timeout=30))

    def image_config(self, name: str) -> dict[str, Any]:
        """The image's config JSON, through its manifest (or the linux/amd64 one of an index)."""
        target = self.images.Get(self.pb["images"].GetImageRequest(name=name), metadata=self.meta, timeout=30)
        manifest = json.loads(self.read_blob(target.image.target.digest))
        if "manifests" in manifest:
            chosen = next(
                (
                    m
                    for m in manifest["manifests"]
                    if m.get("platform", {}).get("os", "linux") == "linux"
                    and m.get("platform", {}).get("architecture", "amd64") == "amd64"
                ),
                manifest["manifests"][0],
            )
            manifest = json.loads(self.read_blob(chosen["digest"]))
        config: dict[str, Any] = json.loads(self.read_blob(manifest["config"]["digest"]))
        return config

    def leased(self, lease: str) -> tuple[tuple[str, str], ...]:
        return (*self.meta, ("containerd-lease", lease))


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI chain id of a layer stack: the snapshot name an unpacked image's top layer gets."""
    chain = diff_ids[0]
    for diff_id in diff_ids[1:]:
        chain = "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


@dataclass(frozen=True)
class ImageInfo:
    chain_id: str
    env: list[str]
    cwd: str


def image_info(api: Api) -> ImageInfo:
    config = api.image_config(IMAGE)
    inner = config.get("config") or {}
    return ImageInfo(
        chain_id=chain_id(config["rootfs"]["diff_ids"]),
        env=list(inner.get("Env") or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]),
        cwd=inner.get("WorkingDir") or "/",
    )


def container_spec(
    base: dict[str, Any], namespace: str, cid: str, image: ImageInfo, argv: list[str]
) -> bytes:
    """ctr's default spec for this container: what `ctr run` would send, minus its extras."""
    spec = copy.deepcopy(base)
    spec["process"]["args"] = argv
    spec["process"]["env"] = image.env
    spec["process"]["cwd"] = image.cwd
    spec["process"]["terminal"] = False
    spec["root"] = {"path": "rootfs"}
    spec["hostname"] = cid
    spec.setdefault("linux", {})["cgroupsPath"] = f"/{namespace}/{cid}"
    return json.dumps(spec).encode()


@dataclass(frozen=True)
class StartSample:
    create_s: float  # Tasks.Create
    start_s: float  # Tasks.Start called -> Tasks.Get says RUNNING


def start_to_running(engine: Engine, base_spec: dict[str, Any], image: ImageInfo, cid: str) -> StartSample:
    """One container through the stubs: prepare, create, time the start, then remove it all."""
    api = engine.api
    assert api is not None
    pb = api.pb
    lease = f"bench-{cid}"
    api.leases.Create(pb["leases"].CreateRequest(id=lease), metadata=api.meta, timeout=30)
    try:
        mounts = api.snapshots.Prepare(
            pb["snapshots"].PrepareSnapshotRequest(snapshotter=SNAPSHOTTER, key=cid, parent=image.chain_id),
            metadata=api.leased(lease),
            timeout=30,
        ).mounts
        container = pb["containers"].Container(
            id=cid,
            image=IMAGE,
            runtime=pb["containers"].Container.Runtime(name=RUNTIME_NAME),
            spec=pb["any"].Any(
                type_url=SPEC_TYPE_URL,
                value=container_spec(base_spec, engine.namespace, cid, image, ["sleep", "1000"]),
            ),
            snapshotter=SNAPSHOTTER,
            snapshot_key=cid,
        )
        api.containers.Create(
            pb["containers"].CreateContainerRequest(container=container),
            metadata=api.leased(lease),
            timeout=30,
        )
        t0 = time.perf_counter()
        api.tasks.Create(
            pb["tasks"].CreateTaskRequest(container_id=cid, rootfs=list(mounts)),
            metadata=api.meta,
            timeout=60,
        )
        t1 = time.perf_counter()
        api.tasks.Start(pb["tasks"].StartRequest(container_id=cid), metadata=api.meta, timeout=60)
        running = pb["task"].RUNNING
        deadline = time.monotonic() + 30
        while True:
            got = api.tasks.Get(pb["tasks"].GetRequest(container_id=cid), metadata=api.meta, timeout=30)
            if got.process.status == running:
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{engine.name}: task {cid} never reported RUNNING (status {got.process.status})"
                )
        t2 = time.perf_counter()
        return StartSample(create_s=t1 - t0, start_s=t2 - t1)
    finally:
        remove_container_via_api(api, cid, lease)


def remove_container_via_api(api: Api, cid: str, lease: str) -> None:
    """Kill, wait, delete the task; delete the container, its snapshot and the lease."""
    pb = api.pb

    def quiet(call: Callable[[], object]) -> None:
        try:
            call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise

    quiet(
        lambda: api.tasks.Kill(
            pb["tasks"].KillRequest(container_id=cid, signal=SIGKILL), metadata=api.meta, timeout=30
        )
    )
    quiet(lambda: api.tasks.Wait(pb["tasks"].WaitRequest(container_id=cid), metadata=api.meta, timeout=30))
    quiet(
        lambda: api.tasks.Delete(
            pb["tasks"].DeleteTaskRequest(container_id=cid), metadata=api.meta, timeout=30
        )
    )
    quiet(
        lambda: api.containers.Delete(
            pb["containers"].DeleteContainerRequest(id=cid), metadata=api.meta, timeout=30
        )
    )
    quiet(
        lambda: api.snapshots.Remove(
            pb["snapshots"].RemoveSnapshotRequest(snapshotter=SNAPSHOTTER, key=cid),
            metadata=api.meta,
            timeout=30,
        )
    )
    quiet(lambda: api.leases.Delete(pb["leases"].DeleteRequest(id=lease), metadata=api.meta, timeout=30))


# --- ctr-driven work ------------------------------------------------------------------------


def ctr_run_rm(engine: Engine, cid: str) -> None:
    engine.ctr_ok("run", "--rm", "--fifo-dir", str(engine.fifo_dir), IMAGE, cid, "true")


def throughput_block(engine: Engine, clients: int, total: int, tag: str) -> float:
    """Seconds for `total` runs of `ctr run --rm ... true` from `clients` concurrent ctr processes."""
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            for j in range(per_client[i]):
                ctr_run_rm(engine, f"{tag}-{i}-{j}")
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def run_sleepers(engine: Engine, ids: Sequence[str], parallel: int = 4) -> None:
    """`ctr run -d IMAGE ID sleep 1000` for each id, a few at a time."""

    def one(cid: str) -> None:
        engine.ctr_ok("run", "-d", "--fifo-dir", str(engine.fifo_dir), IMAGE, cid, "sleep", "1000")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, ids))
    running = {
        row.split()[0]
        for row in engine.ctr_ok("tasks", "ls").splitlines()[1:]
        if row.split()[-1:] == ["RUNNING"]
    }
    missing = set(ids) - running
    if missing:
        raise BenchError(f"{engine.name}: tasks not RUNNING: {sorted(missing)}")


def remove_all(engine: Engine, parallel: int = 4) -> None:
    """Force-delete every task and then every container (with its snapshot) of the namespace."""
    tasks = engine.ctr_ok("tasks", "ls", "-q").split()
    chunks = [tasks[i::parallel] for i in range(parallel) if tasks[i::parallel]]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda chunk: engine.ctr_ok("tasks", "rm", "-f", *chunk), chunks))
    containers = engine.ctr_ok("containers", "ls", "-q").split()
    if containers:
        engine.ctr_ok("containers", "rm", *containers)


# --- memory ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mem:
    rss_kib: int
    pss_kib: int


def memory(pid: int) -> Mem:
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                values[key] = int(rest.split()[0])
    return Mem(rss_kib=values["Rss"], pss_kib=values["Pss"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process PID (every thread), load-independent unlike wall time."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of proc(5)): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def shim_pids(engine: Engine) -> list[int]:
    """The engine's shim processes: their command lines name its socket (inside its work dir).

    (containerd 1.6's runc shim writes no shim.pid into the bundle, so both are found alike.)
    """
    found = []
    for pid in _pids():
        argv = _cmdline(pid)
        if pid == engine.proc.pid or str(engine.workdir) not in argv or pid in template_pids(engine):
            continue
        if (
            "shim.server" in argv
            or "shim.spawner" in argv
            or os.path.basename(argv.split(" ")[0]) == "containerd-shim-runc-v2"
        ):
            found.append(pid)
    return found


def template_pids(engine: Engine) -> list[int]:
    """pycontainerd's shim template (shim/spawner.py): the daemon's child, named like the shims it forks."""
    return [pid for pid in _pids() if "shim.spawner" in _cmdline(pid) and _ppid(pid) == engine.proc.pid]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def process_name(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    if b"shim.spawner" in b" ".join(argv):
        return "pycontainerd-shim (forked from the template, shim/spawner.py)"
    if b"shim.server" in b" ".join(argv):
        return "pycontainerd-shim (python -IS shim.server)"
    return os.path.basename(argv[0].decode(errors="replace"))


# --- cleanup --------------------------------------------------------------------------------


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _kill_and_reap(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def _cgroup_trees(namespace: str) -> list[Path]:
    return [h / namespace for h in sorted(CGROUP_ROOT.iterdir()) if (h / namespace).is_dir()]


def stop_engine(engine: Engine) -> list[str]:
    """Delete what the daemon runs, stop it by pid, then find and remove anything left behind.

    Returns what had to be removed by force (empty when the daemon cleaned up after itself).
    """
    leftovers: list[str] = []
    me = os.getpid()
    if engine.proc.poll() is None:
        try:
            remove_all(engine)
        except BenchError as exc:
            leftovers.append(f"removing tasks/containers through the API failed: {exc}")
    if engine.api is not None:
        engine.api.close()
    if engine.proc.poll() is None:
        engine.proc.send_signal(signal.SIGTERM)
        try:
            engine.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            leftovers.append(f"daemon {engine.proc.pid} ignored SIGTERM for 30s")
            engine.proc.kill()
            engine.proc.wait()
    # Shims outlive their daemon by design; with every task deleted there must be none.
    stray = [
        pid
        for pid in _pids()
        if pid != me
        and (
            (engine.mount_ns is not None and _mount_ns(pid) == engine.mount_ns)
            or str(engine.workdir) in _cmdline(pid)
        )
    ]
    if stray:
        leftovers.append("processes: " + ", ".join(f"{p} ({_cmdline(p)[:100]})" for p in stray))
        _kill_and_reap(stray)
    trees = _cgroup_trees(engine.namespace)
    in_cgroups = sorted(
        {int(pid) for tree in trees for procs in tree.rglob("cgroup.procs") for pid in _read(procs).split()}
    )
    if in_cgroups:
        leftovers.append("container processes: " + ", ".join(f"{p} ({_cmdline(p)[:60]})" for p in in_cgroups))
        for tree in trees:
            for state in tree.rglob("freezer.state"):
                try:
                    state.write_text("THAWED")
                except OSError:
                    pass
        _kill_and_reap(in_cgroups)
    for tree in trees:
        # The namespace directory itself is the runtimes' parent and expected; what is below is not.
        for sub in [*sorted((p for p in tree.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)), tree]:
            if sub != tree:
                leftovers.append(f"cgroup {sub}")
            try:
                sub.rmdir()
            except OSError as exc:
                leftovers.append(f"cgroup {sub} cannot be removed: {exc.strerror}")
    mounts = [
        line.split()[4]
        for line in _read(Path("/proc/self/mountinfo")).splitlines()
        if str(engine.workdir) in line.split()[4]
    ]
    for point in sorted(mounts, key=len, reverse=True):
        leftovers.append(f"mount {point}")
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    if engine.spec.kind == "py":
        # pycontainerd logs an unexpected error as level=ERROR (with its traceback): report them.
        for line in _read(engine.log).splitlines():
            if "level=ERROR" in line or line.startswith("Traceback"):
                print(f"bench_containerd: warning: {engine.name} log: {line[:300]}", file=sys.stderr)
    shutil.rmtree(engine.workdir, ignore_errors=True)
    if engine.workdir.exists():
        leftovers.append(f"{engine.workdir} cannot be removed")
    return leftovers


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# --- reporting ------------------------------------------------------------------------------


def median_p90(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


def mib(kib: float) -> str:
    return f"{kib / MIB:.1f} MiB"


@dataclass
class Results:
    start: dict[str, list[StartSample]] = field(default_factory=dict)
    mem_idle: dict[str, Mem] = field(default_factory=dict)
    mem_imported: dict[str, Mem] = field(default_factory=dict)
    mem_loaded: dict[str, Mem] = field(default_factory=dict)
    shims: dict[str, list[Mem]] = field(default_factory=dict)
    shim_names: dict[str, str] = field(default_factory=dict)
    templates: dict[str, Mem] = field(default_factory=dict)
    rate: dict[tuple[str, int], float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # daemon CPU seconds over the throughput runs
    runs: dict[str, int] = field(default_factory=dict)


def report(engines: Sequence[EngineSpec], res: Results, args: argparse.Namespace, baseline: str) -> str:
    out: list[str] = []
    base_start = median_p90([s.start_s for s in res.start[baseline]])[0]
    out += [
        f"### Tasks.Start until Tasks.Get reports RUNNING ({args.runs} runs each, gRPC stubs)",
        "",
        "| engine | runs | Tasks.Create median | Start -> RUNNING median | p90 | ratio to containerd |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in engines:
        samples = res.start[e.name]
        create = statistics.median(s.create_s for s in samples)
        med, p90 = median_p90([s.start_s for s in samples])
        out.append(
            f"| {e.name} | {len(samples)} | {create * 1000:.1f} ms | {med * 1000:.1f} ms | {p90 * 1000:.1f} ms"
            f" | {med / base_start:.2f} |"
        )
    out += [
        "",
        "### Daemon memory (smaps_rollup of the daemon process alone)",
        "",
        f"| daemon | RSS just started | RSS after import | RSS with {args.loaded} tasks | PSS with {args.loaded} tasks |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in engines:
        loaded = res.mem_loaded[e.name]
        out.append(
            f"| {e.name} | {mib(res.mem_idle[e.name].rss_kib)} | {mib(res.mem_imported[e.name].rss_kib)}"
            f" | {mib(loaded.rss_kib)} | {mib(loaded.pss_kib)} |"
        )
    out += [
        "",
        f"### Shim memory with {args.shims} tasks running (only that engine's shims alive)",
        "",
        "| engine | shim | PSS mean | PSS max | RSS mean | RSS max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in engines:
        shims = res.shims[e.name]
        pss = [m.pss_kib for m in shims]
        rss = [m.rss_kib for m in shims]
        out.append(
            f"| {e.name} | {res.shim_names[e.name]} | {mib(statistics.fmean(pss))} | {mib(max(pss))}"
            f" | {mib(statistics.fmean(rss))} | {mib(max(rss))} |"
        )
    for name, template in res.templates.items():
        out.append(
            f"\n{name}: the shims' template (one per daemon, shim/spawner.py) has PSS {mib(template.pss_kib)}"
            f" and RSS {mib(template.rss_kib)}; its pages are shared with the shims forked from it."
        )
    clients = sorted({c for _, c in res.rate})
    out += [
        "",
        "### Throughput of `ctr run --rm busybox true` (create + start + wait + delete)",
        "",
        "| engine | " + " | ".join(f"{c} client{'s' if c > 1 else ''}" for c in clients) + " |",
        "| --- | " + " | ".join("---" for _ in clients) + " |",
    ]
    for e in engines:
        out.append(f"| {e.name} | " + " | ".join(f"{res.rate[(e.name, c)]:.2f} /s" for c in clients) + " |")
    out += [
        "",
        "Daemon CPU over those runs (utime + stime of the daemon process alone, not its shims; CPU",
        "time does not grow with the load as wall time does):",
        "",
        "| engine | containers | daemon CPU | per container |",
        "| --- | --- | --- | --- |",
    ]
    for e in engines:
        runs = res.runs[e.name]
        out.append(
            f"| {e.name} | {runs} | {res.cpu[e.name]:.2f} s | {res.cpu[e.name] / runs * 1000:.1f} ms |"
        )
    out += ["", "Targets:", ""]
    for e in engines:
        if e.kind != "py":
            continue
        idle = res.mem_idle[e.name].rss_kib / MIB
        shims = res.shims[e.name]
        shim_pss = statistics.fmean(m.pss_kib for m in shims) / MIB
        shim_rss = statistics.fmean(m.rss_kib for m in shims) / MIB
        out.append(
            f"- {e.name}: idle RSS {idle:.1f} MiB ({'met' if idle <= 42 else 'NOT met'}, <= 42); "
            f"shim PSS {shim_pss:.1f} MiB ({'met' if shim_pss <= 8 else 'NOT met'}, <= 8), "
            f"RSS {shim_rss:.1f} MiB ({'met' if shim_rss <= 16 else 'NOT met'}, <= 16)"
        )
    return "\n".join(out)


def update_doc(doc: Path, command: str, body: str) -> None:
    from benchdoc import update_section

    update_section(doc, DOC_SECTION, DOC_INTRO, command, body)


def version_of(argv: list[str]) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, env=ENV)
    return (res.stdout or res.stderr).strip().splitlines()[0] if res.returncode == 0 else "unknown"


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for flag, (default, help_text) in COUNTS.items():
        parser.add_argument(f"--{flag}", type=int, default=default, help=f"{help_text} (default {default})")
    parser.add_argument("--pycontainerd", type=Path, default=DEFAULT_PYCONTAINERD)
    parser.add_argument("--containerd", type=Path, default=DEFAULT_CONTAINERD)
    parser.add_argument("--runc", type=Path, default=DEFAULT_RUNC)
    parser.add_argument(
        "--image-tar", type=Path, default=DEFAULT_IMAGE_TAR, help="docker-save archive of busybox"
    )
    parser.add_argument(
        "--write-doc", action="store_true", help=f"update the pycontainerd section of {DEFAULT_DOC}"
    )
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    args = parser.parse_args(argv)
    if (
        min(args.runs, args.shims, args.loaded, args.serial, args.parallel, args.clients) < 1
        or args.warmup < 0
    ):
        parser.error("counts must be >= 1 (--warmup >= 0)")
    if args.loaded < args.shims:
        parser.error("--loaded must be >= --shims (the shims are measured on the way up)")
    if os.geteuid() != 0:
        print("bench_containerd: must run as root (daemons, mounts and cgroups)", file=sys.stderr)
        return 2
    for tool in (args.pycontainerd, args.containerd, args.runc, Path(CTR), Path(UNSHARE)):
        if not os.access(tool, os.X_OK):
            print(f"bench_containerd: {tool} is not installed", file=sys.stderr)
            return 2
    if not args.image_tar.is_file():
        print(f"bench_containerd: no image archive at {args.image_tar}", file=sys.stderr)
        return 2
    if not REF_SHIM_DIR.is_dir():
        print(
            f"bench_containerd: {REF_SHIM_DIR} must exist (a tmpfs is mounted over it privately)",
            file=sys.stderr,
        )
        return 2

    specs = [
        EngineSpec("pycontainerd+pyrunc", "py"),
        EngineSpec("pycontainerd+runc", "py", runtime=str(args.runc)),
        EngineSpec("containerd+runc", "ref"),
    ]
    baseline = specs[-1].name
    # SIGTERM (and SIGINT, even when inherited as ignored) must still run the cleanup below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    load_before = os.getloadavg()[0]
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
    scratch = Path(tempfile.mkdtemp(prefix=f"pydocker-benchcd-{tag}-"))
    engines: list[Engine] = []
    res = Results()
    leftovers: dict[str, list[str]] = {}
    started = time.monotonic()
    try:
        # 1. Start every daemon; memory right after it answers, then after the import.
        for i, spec in enumerate(specs):
            workdir = scratch / f"e{i}"
            workdir.mkdir()
            (workdir / "fifo").mkdir()
            starter = start_pycontainerd if spec.kind == "py" else start_containerd
            binary = args.pycontainerd if spec.kind == "py" else args.containerd
            engine = starter(spec, workdir, f"pdbench-{tag}-{i}", binary)
            engines.append(engine)
            wait_ready(engine)
            time.sleep(0.5)  # let start-up threads settle before reading memory
            res.mem_idle[spec.name] = memory(engine.proc.pid)
        for engine in engines:
            engine.ctr_ok("images", "import", str(args.image_tar), timeout=300)
            res.mem_imported[engine.name] = memory(engine.proc.pid)
        print(f"daemons up, busybox imported ({time.monotonic() - started:.0f}s)", flush=True)

        # 2. Tasks.Start -> RUNNING through the stubs, interleaved.
        base_spec = json.loads(
            subprocess.run([CTR, "oci", "spec"], capture_output=True, check=True, env=ENV).stdout
        )
        images = {}
        for engine in engines:
            assert engine.api is not None
            images[engine.name] = image_info(engine.api)
            res.start[engine.name] = []
        for i in range(args.warmup + args.runs):
            for engine in engines if i % 2 == 0 else reversed(engines):
                sample = start_to_running(engine, base_spec, images[engine.name], f"lat-{i}")
                if i >= args.warmup:
                    res.start[engine.name].append(sample)
        print(f"start latency done ({time.monotonic() - started:.0f}s)", flush=True)

        # 3. Throughput of `ctr run --rm`, 1 client then N clients; each total is split into
        # rounds with the engines' order alternating, so that drift in the machine hits all alike.
        for engine in engines:
            ctr_run_rm(engine, "warm")
        for clients, total in ((1, args.serial), (args.clients, args.parallel)):
            spent = dict.fromkeys((e.name for e in engines), 0.0)
            for r in range(THROUGHPUT_ROUNDS):
                share = total // THROUGHPUT_ROUNDS + (1 if r < total % THROUGHPUT_ROUNDS else 0)
                for engine in engines if r % 2 == 0 else reversed(engines):
                    cpu_before = cpu_seconds(engine.proc.pid)
                    spent[engine.name] += throughput_block(engine, clients, share, f"tp{clients}-{r}")
                    res.cpu[engine.name] = (
                        res.cpu.get(engine.name, 0.0) + cpu_seconds(engine.proc.pid) - cpu_before
                    )
                    res.runs[engine.name] = res.runs.get(engine.name, 0) + share
            for engine in engines:
                res.rate[(engine.name, clients)] = total / spent[engine.name]
        print(f"throughput done ({time.monotonic() - started:.0f}s)", flush=True)

        # 4. Shims with --shims tasks, the daemon with --loaded tasks; one engine at a time.
        for engine in engines:
            ids = [f"run-{i}" for i in range(args.loaded)]
            run_sleepers(engine, ids[: args.shims])
            pids = shim_pids(engine)
            if len(pids) != args.shims:
                raise BenchError(f"{engine.name}: {len(pids)} shims for {args.shims} tasks")
            res.shims[engine.name] = [memory(pid) for pid in pids]
            res.shim_names[engine.name] = process_name(pids[0])
            for template in template_pids(engine):
                res.templates[engine.name] = memory(template)
            run_sleepers(engine, ids[args.shims :])
            time.sleep(0.5)
            res.mem_loaded[engine.name] = memory(engine.proc.pid)
            remove_all(engine)
        print(f"memory done ({time.monotonic() - started:.0f}s)", flush=True)
    except BenchError as exc:
        print(f"bench_containerd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"bench_containerd: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"bench_containerd: a request failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_containerd: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        for engine in engines:
            found = stop_engine(engine)
            if found:
                leftovers[engine.name] = found
        shutil.rmtree(scratch, ignore_errors=True)
        for name, found in leftovers.items():
            print(
                f"bench_containerd: warning: {name} left behind (removed): {'; '.join(found)}",
                file=sys.stderr,
            )

    elapsed = time.monotonic() - started
    load_after = os.getloadavg()[0]
    body = report(specs, res, args, baseline)
    versions = (
        f"{version_of([str(args.containerd), '--version'])}; "
        f"{version_of([str(args.runc), '--version'])}; "
        f"{version_of([str(args.pycontainerd), '--version'])}; ctr {version_of([CTR, '--version']).split()[-1]}"
    )
    print(versions)
    print(body)
    print(f"(whole run: {elapsed:.0f}s; load average {load_before:.1f} before, {load_after:.1f} after)")
    if args.write_doc:
        command = ".venv/bin/python bench/bench_containerd.py --write-doc"
        for flag, (default, _) in COUNTS.items():
            if getattr(args, flag) != default:
                command += f" --{flag} {getattr(args, flag)}"
        when = datetime.now(UTC).strftime("%Y-%m-%d")
        note = (
            f"Measured {when} on {platform.node() or 'this machine'} (kernel {platform.release()}, "
            f"{os.cpu_count()} cores), whole run {elapsed:.0f}s, 1-minute load average "
            f"{load_before:.1f} before and {load_after:.1f} after: {versions}. "
            f"Every daemon on its own temporary root and socket; containerd with the CRI plugin disabled, "
            f"in a private mount namespace. Start latency: {args.warmup} warm-up then {args.runs} timed "
            f"containers per engine (`sleep 1000`, no stdio), interleaved. Throughput: {args.serial} "
            f"containers with 1 client, {args.parallel} with {args.clients} concurrent `ctr` processes."
        )
        update_doc(args.doc, command, f"{note}\n\n{body}")
        print(f"updated {args.doc}")
    return 3 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
