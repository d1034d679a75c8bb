"""pycontainerd-shim driven through containerd/shim_client.py: the task v2 API on real containers."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2
from google.protobuf.message import Message

from containerd import errors
from containerd.shim_client import ShimClient, ShimError
from protos.gen.containerd_api.cgroups.stats.v1 import metrics_pb2
from protos.gen.containerd_api.events import task_pb2 as events_pb2
from protos.gen.containerd_api.runtime.task.v2 import shim_events_pb2, shim_pb2
from protos.gen.containerd_api.types.task import task_pb2
from tests.shim.conftest import PYRUNC, RUNC, Lab, ShimTask, cgroup_dirs, pid_alive, wait_for

STATUS = task_pb2.Status


def create(
    task: ShimTask,
    client: ShimClient,
    stdout: Path | None = None,
    stderr: Path | None = None,
    *,
    stdin: str = "",
    terminal: bool = False,
    rootfs: list[dict[str, object]] | None = None,
) -> int:
    """Create the task; the keyword fields left out keep CreateTaskRequest's proto3 defaults."""
    response = client.create(
        id=task.id,
        bundle=str(task.bundle),
        stdout=str(stdout) if stdout else "",
        stderr=str(stderr) if stderr else "",
        stdin=stdin,
        terminal=terminal,
        rootfs=rootfs or [],
    )
    return response.pid


def finish(task: ShimTask, client: ShimClient) -> shim_pb2.DeleteResponse:
    """Delete the task and shut the shim down; check nothing of it remains."""
    deleted = client.delete(id=task.id)
    client.shutdown(id=task.id)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit after Shutdown")
    assert not task.state_dir.exists(), sorted(os.listdir(task.state_dir))
    assert not (Path(task.config.runtime_root) / task.id).exists()
    assert cgroup_dirs(task.cgroups_path) == []
    assert not (task.bundle / "log.json").exists()
    return deleted


def exec_spec(task: ShimTask, args: list[str], terminal: bool = False) -> any_pb2.Any:
    process = json.loads((task.bundle / "config.json").read_text())["process"]
    process["args"] = args
    process["terminal"] = terminal
    return any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
        value=json.dumps(process).encode(),
    )


def decode_event(event: shim_events_pb2.ShimEvent) -> Message:
    any_msg = event.event
    name = any_msg.type_url.rsplit(".", 1)[-1]
    message: Message = getattr(events_pb2, name)()
    message.ParseFromString(any_msg.value)
    return message


@pytest.mark.parametrize("runtime", ["pyrunc", "runc"])
def test_create_start_wait_delete(lab: Lab, runtime: str) -> None:
    task = lab.task(
        ["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
        runtime=RUNC if runtime == "runc" else PYRUNC,
    )
    stdout, stderr = task.fifo("stdout"), task.fifo("stderr")
    out, err = lab.reader(stdout), lab.reader(stderr)
    client = task.client()
    connected = client.connect(id=task.id)
    assert connected.shim_pid == task.shim_pid and connected.task_pid == 0
    pid = create(task, client, stdout, stderr)
    state = client.state(id=task.id)
    assert (state.pid, state.status, state.stdout, state.bundle) == (
        pid,
        STATUS.CREATED,
        str(stdout),
        str(task.bundle),
    )
    # The init's intermediate parent exited: the shim, a child subreaper, adopted it.
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == task.shim_pid
    assert client.connect(id=task.id).task_pid == pid
    assert client.start(id=task.id).pid == pid
    waited = client.wait(id=task.id)
    assert waited.exit_status == 3
    assert out.read_to_eof() == b"to-stdout\n"
    assert err.read_to_eof() == b"to-stderr\n"
    state = client.state(id=task.id)
    assert (state.status, state.exit_status) == (STATUS.STOPPED, 3)
    assert state.exited_at.ToNanoseconds() == waited.exited_at.ToNanoseconds() > 0
    record = (task.state_dir / "exits" / "init").read_text().split()
    assert record == [str(pid), "3", str(waited.exited_at.ToNanoseconds())]

    events = client.fetch_events()
    assert [e.topic for e in events] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
    assert [e.seq for e in events] == [1, 2, 3]
    assert all(e.namespace == "shimtest" for e in events)
    exit_event = decode_event(events[2])
    assert isinstance(exit_event, events_pb2.TaskExit)
    assert (exit_event.container_id, exit_event.id, exit_event.pid, exit_event.exit_status) == (
        task.id,
        task.id,
        pid,
        3,
    )

    deleted = finish(task, client)
    assert (deleted.pid, deleted.exit_status) == (pid, 3)


def test_kill_and_errors(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    with pytest.raises(errors.NotFound, match="not served by this shim"):
        client.create(id="someone-else", bundle=str(task.bundle))
    with pytest.raises(errors.NotFound):
        client.state(id=task.id)
    pid = create(task, client)
    with pytest.raises(errors.AlreadyExists):
        create(task, client)
    client.start(id=task.id)
    with pytest.raises(errors.FailedPrecondition, match="running, not created"):
        client.start(id=task.id)
    with pytest.raises(errors.FailedPrecondition, match="kill it before deleting"):
        client.delete(id=task.id)
    with pytest.raises(errors.Unimplemented, match="checkpoint"):
        client.checkpoint(id=task.id, path="/tmp/x")
    with pytest.raises(errors.NotFound, match="exec 'nope' not found"):
        client.state(id=task.id, exec_id="nope")
    client.kill(id=task.id, signal=0)  # a probe
    assert pid_alive(pid)
    client.kill(id=task.id, signal=signal.SIGTERM)
    # sleep is pid 1 in its namespace and ignores SIGTERM (no handler): the kernel drops it.
    time.sleep(0.3)
    assert client.state(id=task.id).status == STATUS.RUNNING
    client.kill(id=task.id, signal=signal.SIGKILL)
    assert client.wait(id=task.id).exit_status == 128 + signal.SIGKILL
    with pytest.raises(errors.NotFound, match="already exited"):
        client.kill(id=task.id, signal=signal.SIGKILL)
    finish(task, client)


def test_runtime_failure_is_reported(lab: Lab) -> None:
    task = lab.task(["/no/such/binary"])
    client = task.client()
    with pytest.raises(ShimError, match="no/such/binary"):
        create(task, client)
    # Nothing was created: the shim has no task and goes away on Shutdown.
    client.shutdown(id=task.id)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit")
    assert not task.state_dir.exists()


def test_delete_created_task(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    pid = create(task, client)
    deleted = finish(task, client)
    assert deleted.pid == pid
    assert deleted.exit_status == 128 + signal.SIGKILL
    assert not pid_alive(pid)


def test_exec_with_fifos_and_pids(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    init_pid = create(task, client)
    client.start(id=task.id)

    stdout, stderr = task.fifo("exec-out"), task.fifo("exec-err")
    out, err = lab.reader(stdout), lab.reader(stderr)
    client.exec(
        id=task.id,
        exec_id="e1",
        stdout=str(stdout),
        stderr=str(stderr),
        spec=exec_spec(task, ["sh", "-c", "echo exec says hi; echo exec complains >&2; exit 5"]),
    )
    with pytest.raises(errors.AlreadyExists):
        client.exec(id=task.id, exec_id="e1", spec=exec_spec(task, ["true"]))
    with pytest.raises(errors.InvalidArgument):
        client.exec(id=task.id, exec_id="../bad", spec=exec_spec(task, ["true"]))
    assert client.state(id=task.id, exec_id="e1").status == STATUS.CREATED
    exec_pid = client.start(id=task.id, exec_id="e1").pid
    assert client.wait(id=task.id, exec_id="e1").exit_status == 5
    assert out.read_to_eof() == b"exec says hi\n"
    assert err.read_to_eof() == b"exec complains\n"
    state = client.state(id=task.id, exec_id="e1")
    assert (state.id, state.exec_id, state.pid, state.status) == ("e1", "e1", exec_pid, STATUS.STOPPED)
    client.delete(id=task.id, exec_id="e1")
    with pytest.raises(errors.NotFound):
        client.state(id=task.id, exec_id="e1")

    client.exec(id=task.id, exec_id="sleeper", spec=exec_spec(task, ["sleep", "1000"]))
    sleeper = client.start(id=task.id, exec_id="sleeper").pid
    processes = {p.pid: p for p in client.pids(id=task.id).processes}
    assert set(processes) == {init_pid, sleeper}
    assert not processes[init_pid].HasField("info")
    assert processes[sleeper].info.type_url == "containerd.runc.v1.ProcessDetails"
    assert processes[sleeper].info.value == b"\n\x07sleeper"  # ProcessDetails{exec_id: "sleeper"}
    with pytest.raises(errors.FailedPrecondition):
        client.delete(id=task.id, exec_id="sleeper")
    client.kill(id=task.id, exec_id="sleeper", signal=signal.SIGKILL)
    assert client.wait(id=task.id, exec_id="sleeper").exit_status == 137

    topics = [e.topic for e in client.fetch_events()]
    assert topics.count("/tasks/exec-added") == 2 and topics.count("/tasks/exec-started") == 2
    client.kill(id=task.id, signal=signal.SIGKILL)
    client.wait(id=task.id)
    finish(task, client)


def test_stdin_and_close_io(lab: Lab) -> None:
    task = lab.task(["sh", "-c", "cat; echo done"])
    stdin, stdout = task.fifo("stdin"), task.fifo("stdout")
    client = task.client()
    out = lab.reader(stdout)
    create(task, client, stdout, stdin=str(stdin))
    client.start(id=task.id)
    writer = os.open(stdin, os.O_WRONLY)
    os.write(writer, b"first line\n")
    assert out.read_available() == b"first line\n"
    # The writer leaving is not EOF: the shim holds the FIFO open, another writer can come.
    os.close(writer)
    writer = os.open(stdin, os.O_WRONLY)
    os.write(writer, b"second line\n")
    os.close(writer)
    client.close_io(id=task.id, stdin=True)
    assert client.wait(id=task.id).exit_status == 0
    assert out.read_to_eof() == b"second line\ndone\n"
    finish(task, client)


def test_terminal_with_resize(lab: Lab) -> None:
    script = "stty size; read line; echo got:$line; stty size"
    task = lab.task(["sh", "-c", script], terminal=True)
    stdin, stdout = task.fifo("stdin"), task.fifo("stdout")
    client = task.client()
    out = lab.reader(stdout)
    create(task, client, stdout, stdin=str(stdin), terminal=True)
    client.resize_pty(id=task.id, width=100, height=40)
    client.start(id=task.id)
    assert wait_for(lambda: out.read_available(0.1).replace(b"\r", b""), what="first stty") == b"40 100\n"
    client.resize_pty(id=task.id, width=132, height=50)
    writer = os.open(stdin, os.O_WRONLY)
    os.write(writer, b"hello\n")
    os.close(writer)
    assert client.wait(id=task.id).exit_status == 0
    text = out.read_to_eof().replace(b"\r", b"")
    assert text == b"hello\ngot:hello\n50 132\n"  # the pty echoes the input line
    with pytest.raises(errors.NotFound):
        client.kill(id=task.id, signal=signal.SIGKILL)
    finish(task, client)


def test_exec_with_terminal(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    create(task, client)
    client.start(id=task.id)
    stdout = task.fifo("exec-tty")
    out = lab.reader(stdout)
    client.exec(
        id=task.id,
        exec_id="tty",
        terminal=True,
        stdout=str(stdout),
        spec=exec_spec(task, ["sh", "-c", "tty; stty size"], terminal=True),
    )
    with pytest.raises(errors.FailedPrecondition, match="no terminal"):
        client.resize_pty(id=task.id, exec_id="tty", width=77, height=22)  # not started yet: no pty
    client.start(id=task.id, exec_id="tty")
    assert client.wait(id=task.id, exec_id="tty").exit_status == 0
    lines = out.read_to_eof().replace(b"\r", b"").decode().split("\n")
    assert lines[0].startswith("/dev/pts/")
    client.kill(id=task.id, signal=signal.SIGKILL)
    client.wait(id=task.id)
    finish(task, client)


def test_pause_resume_stats_update(lab: Lab) -> None:
    task = lab.task(["sh", "-c", "while true; do i=$((i+1)); done"])
    client = task.client()
    create(task, client)
    client.start(id=task.id)
    freezer = f"/sys/fs/cgroup/freezer{task.cgroups_path}/freezer.state"
    client.pause(id=task.id)
    assert client.state(id=task.id).status == STATUS.PAUSED
    assert open(freezer).read().strip() == "FROZEN"
    with pytest.raises(errors.FailedPrecondition):
        client.pause(id=task.id)
    client.resume(id=task.id)
    assert client.state(id=task.id).status == STATUS.RUNNING
    assert open(freezer).read().strip() == "THAWED"

    metrics = metrics_pb2.Metrics()
    deadline = time.monotonic() + 20  # let it burn 0.1 s of CPU: long on a loaded machine
    while True:
        stats = client.stats(id=task.id).stats
        assert stats.type_url == "io.containerd.cgroups.v1.Metrics"
        metrics.ParseFromString(stats.value)
        if metrics.cpu.usage.total > 100_000_000 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert metrics.pids.current >= 1
    assert metrics.cpu.usage.total > 100_000_000  # > 0.1 s of CPU
    assert len(metrics.cpu.usage.per_cpu) == os.cpu_count()
    assert metrics.memory.usage.usage > 0
    assert metrics.memory.usage.limit > 0

    resources = {"pids": {"limit": 77}, "memory": {"limit": 64 * 1024 * 1024}}
    client.update(
        id=task.id,
        resources=any_pb2.Any(
            type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
            value=json.dumps(resources).encode(),
        ),
    )
    assert open(f"/sys/fs/cgroup/pids{task.cgroups_path}/pids.max").read().strip() == "77"
    metrics.ParseFromString(client.stats(id=task.id).stats.value)
    assert metrics.pids.limit == 77
    assert metrics.memory.usage.limit == 64 * 1024 * 1024

    topics = [e.topic for e in client.fetch_events()]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed"]
    client.kill(id=task.id, signal=signal.SIGKILL)
    client.wait(id=task.id)
    finish(task, client)


def test_oom_event(lab: Lab) -> None:
    def limit(spec: dict[str, Any]) -> None:
        spec["linux"]["resources"]["memory"] = {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}

    # A shell variable that doubles until the cgroup's OOM killer stops it.
    task = lab.task(["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"], edit=limit)
    client = task.client()
    create(task, client)
    client.start(id=task.id)
    assert client.wait(id=task.id, timeout=60).exit_status == 128 + signal.SIGKILL
    wait_for(lambda: "/tasks/oom" in [e.topic for e in client.fetch_events()], what="the OOM event")
    assert "/tasks/exit" in [e.topic for e in client.fetch_events()]
    finish(task, client)


def test_rootfs_mounts_from_the_request(lab: Lab) -> None:
    # containerd passes the snapshot's mounts; the shim mounts them on bundle/rootfs.
    task = lab.task(["cat", "/etc/marker"], copy_rootfs=False)
    lower = lab.root / f"lower-{task.id}"
    import shutil

    shutil.copytree(
        Path(__file__).resolve().parents[2] / "images" / "busybox-bundle" / "rootfs", lower, symlinks=True
    )
    (lower / "etc" / "marker").write_text("from the bind mount\n")
    stdout = task.fifo("stdout")
    out = lab.reader(stdout)
    client = task.client()
    create(task, client, stdout, rootfs=[{"type": "bind", "source": str(lower), "options": ["rbind", "rw"]}])
    rootfs = str(task.bundle / "rootfs")
    assert any(line.split()[4] == rootfs for line in open("/proc/self/mountinfo"))
    client.start(id=task.id)
    assert client.wait(id=task.id).exit_status == 0
    assert out.read_to_eof() == b"from the bind mount\n"
    finish(task, client)
    assert not any(line.split()[4] == rootfs for line in open("/proc/self/mountinfo"))
