"""The tasks service through the generated Python stubs, as a user's own gRPC client drives it:
stdio through FIFOs the client makes (attach, detach, attach again without losing output),
exec, pause/resume, pids, metrics, update, wait, and the error codes."""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2

from protos.gen.containerd_api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc
from protos.gen.containerd_api.types import mount_pb2
from protos.gen.containerd_api.types.task import task_pb2
from tests.daemon.conftest import RunningDaemon, start_daemon, stop_daemon
from tests.daemon.test_tasks_ctr import BUSYBOX, IMAGE, ours

SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
Request = TypeVar("Request")


@dataclass
class Stubs:
    """The services these tests drive, as a user's own client holds them, and busybox's committed
    snapshot (the parent of every container's)."""

    tasks: tasks_pb2_grpc.TasksStub
    containers: containers_pb2_grpc.ContainersStub
    snapshots: snapshots_pb2_grpc.SnapshotsStub
    chain: str


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[tuple[RunningDaemon, Stubs]]:
    daemon = start_daemon(tmp_path)
    try:
        assert daemon.ctr("images", "import", str(BUSYBOX)).returncode == 0
        channel = daemon.channel("default")

        snapshots = snapshots_pb2_grpc.SnapshotsStub(channel)
        chain = next(
            info.name
            for resp in snapshots.List(snapshots_pb2.ListSnapshotsRequest(snapshotter="overlayfs"))
            for info in resp.info
            if info.kind == snapshots_pb2.COMMITTED
        )
        yield (
            daemon,
            Stubs(
                tasks_pb2_grpc.TasksStub(channel),
                containers_pb2_grpc.ContainersStub(channel),
                snapshots,
                chain,
            ),
        )
    finally:
        stop_daemon(daemon)
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if str(tmp_path) in line.split()[4]]
    assert not mounts, f"mounts left behind: {mounts}"
    assert not ours(tmp_path), ours(tmp_path)


def make_container(stubs: Stubs, cid: str, args: list[str], terminal: bool = False) -> list[mount_pb2.Mount]:
    from runtime.spec_default import default_spec

    spec = default_spec()
    spec["process"]["args"] = args
    spec["process"]["terminal"] = terminal
    spec["root"] = {"path": "rootfs"}
    spec["hostname"] = cid
    spec["linux"]["cgroupsPath"] = f"/pycontainerd-test-{os.getpid()}-{cid}"
    mounts = list(
        stubs.snapshots.Prepare(
            snapshots_pb2.PrepareSnapshotRequest(snapshotter="overlayfs", key=cid, parent=stubs.chain)
        ).mounts
    )
    container = containers_pb2.Container(id=cid, image=IMAGE, snapshotter="overlayfs", snapshot_key=cid)
    container.runtime.name = "io.containerd.runc.v2"
    container.spec.CopyFrom(any_pb2.Any(type_url=SPEC_TYPE, value=json.dumps(spec).encode()))
    stubs.containers.Create(containers_pb2.CreateContainerRequest(container=container))
    return mounts


def remove_container(stubs: Stubs, cid: str) -> None:
    # As ctr does: the snapshot first (once the container is gone, garbage collection takes it).
    stubs.snapshots.Remove(snapshots_pb2.RemoveSnapshotRequest(snapshotter="overlayfs", key=cid))
    stubs.containers.Delete(containers_pb2.DeleteContainerRequest(id=cid))


def read_lines(fd: int, count: int, timeout: float = 20) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    return data.decode().splitlines()


def test_fifo_attach_detach_reattach_loses_nothing(
    stubs: tuple[RunningDaemon, Stubs], tmp_path: Path
) -> None:
    daemon, s = stubs
    stdout = tmp_path / "stdout.fifo"
    os.mkfifo(stdout)
    mounts = make_container(
        s, "io1", ["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo $i; i=$((i+1)); sleep 0.01; done"]
    )
    s.tasks.Create(tasks_pb2.CreateTaskRequest(container_id="io1", rootfs=mounts, stdout=str(stdout)))
    reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
    s.tasks.Start(tasks_pb2.StartRequest(container_id="io1"))
    first = read_lines(reader, 20)
    os.close(reader)  # detach while the container keeps writing
    time.sleep(1.0)
    reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)  # attach again
    rest = read_lines(reader, 300 - len(first))
    os.close(reader)
    numbers = [int(x) for x in first + rest]
    assert numbers == list(range(300)), "output was lost or reordered across the detach"
    waited = s.tasks.Wait(tasks_pb2.WaitRequest(container_id="io1"))
    assert waited.exit_status == 0
    deleted = s.tasks.Delete(tasks_pb2.DeleteTaskRequest(container_id="io1"))
    assert deleted.exit_status == 0
    remove_container(s, "io1")


def test_exec_pause_pids_metrics_update_and_stdin(stubs: tuple[RunningDaemon, Stubs], tmp_path: Path) -> None:
    daemon, s = stubs
    stdin, stdout = tmp_path / "in.fifo", tmp_path / "out.fifo"
    os.mkfifo(stdin)
    os.mkfifo(stdout)
    mounts = make_container(s, "t2", ["sh", "-c", "read line; echo got-$line; sleep 1000"])
    created = s.tasks.Create(
        tasks_pb2.CreateTaskRequest(container_id="t2", rootfs=mounts, stdin=str(stdin), stdout=str(stdout))
    )
    assert created.pid > 0
    out = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(stdin, os.O_WRONLY)
    s.tasks.Start(tasks_pb2.StartRequest(container_id="t2"))
    os.write(writer, b"hello\n")
    os.close(writer)
    assert read_lines(out, 1) == ["got-hello"]
    os.close(out)
    got = s.tasks.Get(tasks_pb2.GetRequest(container_id="t2")).process
    assert got.status == task_pb2.RUNNING and got.pid == created.pid

    exec_out = tmp_path / "exec.fifo"
    os.mkfifo(exec_out)
    process = {
        "args": ["sh", "-c", "echo exec-$((6*7)); exit 4"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
    }
    spec = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
        value=json.dumps(process).encode(),
    )
    s.tasks.Exec(
        tasks_pb2.ExecProcessRequest(container_id="t2", exec_id="x1", stdout=str(exec_out), spec=spec)
    )
    reader = os.open(exec_out, os.O_RDONLY | os.O_NONBLOCK)
    s.tasks.Start(tasks_pb2.StartRequest(container_id="t2", exec_id="x1"))
    assert read_lines(reader, 1) == ["exec-42"]
    os.close(reader)
    assert s.tasks.Wait(tasks_pb2.WaitRequest(container_id="t2", exec_id="x1")).exit_status == 4
    s.tasks.DeleteProcess(tasks_pb2.DeleteProcessRequest(container_id="t2", exec_id="x1"))

    pids = [p.pid for p in s.tasks.ListPids(tasks_pb2.ListPidsRequest(container_id="t2")).processes]
    assert created.pid in pids
    s.tasks.Pause(tasks_pb2.PauseTaskRequest(container_id="t2"))
    assert s.tasks.Get(tasks_pb2.GetRequest(container_id="t2")).process.status == task_pb2.PAUSED
    s.tasks.Resume(tasks_pb2.ResumeTaskRequest(container_id="t2"))
    assert s.tasks.Get(tasks_pb2.GetRequest(container_id="t2")).process.status == task_pb2.RUNNING

    metrics = s.tasks.Metrics(tasks_pb2.MetricsRequest(filters=["id==t2"])).metrics
    assert [m.id for m in metrics] == ["t2"]
    assert metrics[0].data.type_url == "io.containerd.cgroups.v1.Metrics"
    resources = any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
        value=json.dumps({"pids": {"limit": 42}}).encode(),
    )
    s.tasks.Update(tasks_pb2.UpdateTaskRequest(container_id="t2", resources=resources))
    cgroup = f"/sys/fs/cgroup/pids/pycontainerd-test-{os.getpid()}-t2/pids.max"
    assert open(cgroup).read().strip() == "42"

    listed = s.tasks.List(tasks_pb2.ListTasksRequest()).tasks
    assert [t.id for t in listed] == ["t2"]
    s.tasks.Kill(tasks_pb2.KillRequest(container_id="t2", signal=9))
    assert s.tasks.Wait(tasks_pb2.WaitRequest(container_id="t2")).exit_status == 137
    s.tasks.Delete(tasks_pb2.DeleteTaskRequest(container_id="t2"))
    remove_container(s, "t2")
    assert daemon.alive()


def test_task_errors(stubs: tuple[RunningDaemon, Stubs]) -> None:
    daemon, s = stubs

    def code(call: Callable[[Request], object], request: Request) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as err:
            call(request)
        return err.value.code()

    assert code(s.tasks.Get, tasks_pb2.GetRequest(container_id="nosuch")) == grpc.StatusCode.NOT_FOUND
    assert (
        code(s.tasks.Create, tasks_pb2.CreateTaskRequest(container_id="nosuch")) == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code(s.tasks.Kill, tasks_pb2.KillRequest(container_id="nosuch", signal=9))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code(s.tasks.Checkpoint, tasks_pb2.CheckpointTaskRequest(container_id="nosuch"))
        == grpc.StatusCode.UNIMPLEMENTED
    )
    mounts = make_container(s, "e1", ["sleep", "1000"])
    s.tasks.Create(tasks_pb2.CreateTaskRequest(container_id="e1", rootfs=mounts))
    assert (
        code(s.tasks.Create, tasks_pb2.CreateTaskRequest(container_id="e1", rootfs=mounts))
        == grpc.StatusCode.ALREADY_EXISTS
    )
    s.tasks.Start(tasks_pb2.StartRequest(container_id="e1"))
    assert (
        code(s.tasks.Delete, tasks_pb2.DeleteTaskRequest(container_id="e1"))
        == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert (
        code(s.tasks.Exec, tasks_pb2.ExecProcessRequest(container_id="e1"))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    s.tasks.Kill(tasks_pb2.KillRequest(container_id="e1", signal=9))
    s.tasks.Wait(tasks_pb2.WaitRequest(container_id="e1"))
    s.tasks.Delete(tasks_pb2.DeleteTaskRequest(container_id="e1"))
    remove_container(s, "e1")
    assert version_pb2_grpc.VersionStub(daemon.channel()).Version(empty_pb2.Empty()).version
