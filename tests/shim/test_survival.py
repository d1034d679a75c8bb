"""Shims outliving their clients: output kept, exits remembered, events queued, memory small."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from containerd import errors
from containerd.shim_client import ShimClient, cleanup_shim, start_shim
from protos.gen.containerd_api.events import task_pb2 as events_pb2
from protos.gen.containerd_api.runtime.task.v2 import shim_events_pb2
from protos.gen.containerd_api.types.task import task_pb2
from tests.shim.conftest import REPO, Lab, cgroup_dirs, pid_alive, wait_for
from tests.shim.test_shim_lifecycle import create, finish

STATUS = task_pb2.Status
MiB = 1024 * 1024


def test_output_is_kept_while_nobody_reads(lab: Lab) -> None:
    # ~1.3 MB after the client is gone: far more than the pipe and FIFO buffers (64 KiB each).
    task = lab.task(["sh", "-c", "echo ready; sleep 1; seq 1 200000; echo end >&2"])
    stdout, stderr = task.fifo("stdout"), task.fifo("stderr")
    out, err = lab.reader(stdout), lab.reader(stderr)
    client = task.client()
    pid = create(task, client, stdout, stderr)
    client.start(id=task.id)
    assert wait_for(lambda: out.read_available(0.05), what="ready") == b"ready\n"
    # The daemon dies: its connection and the FIFO readers go away.
    client.close()
    out.close()
    err.close()
    started = time.monotonic()
    wait_for(lambda: not pid_alive(pid), timeout=20, what="the container to finish writing and exit")
    assert time.monotonic() - started < 15, "the container was held up by the missing reader"
    spool = task.state_dir / "io" / "init.stdout"
    assert spool.stat().st_size > 1_000_000, "the shim should have spooled what the FIFO could not take"

    client = task.client()
    state = client.state(id=task.id)
    assert (state.status, state.exit_status) == (STATUS.STOPPED, 0)
    lines = lab.reader(stdout).read_to_eof().decode().split("\n")
    assert lines == [str(i) for i in range(1, 200001)] + [""]
    assert lab.reader(stderr).read_to_eof() == b"end\n"
    assert not spool.exists(), "a drained spool is removed"
    finish(task, client)


DAEMON = """
import json, sys, time
from containerd.shim_client import ShimClient, ShimConfig, start_shim
for item in json.loads(sys.argv[1]):
    client = ShimClient(start_shim(ShimConfig(**item["config"])))
    client.create(id=item["config"]["id"], bundle=item["config"]["bundle"], stdout=item["stdout"])
    client.start(id=item["config"]["id"])
print("ready", flush=True)
time.sleep(1000)
"""


def test_shims_survive_a_killed_daemon(lab: Lab) -> None:
    """A 'daemon' starts three tasks and is killed (its whole process group); exits while it is down are kept."""
    scripts = {
        "quick": "echo quick; exit 3",  # exits while the daemon is still up (or just after)
        "later": "sleep 1.5; echo later; exit 4",  # exits while no daemon exists
        "long": "echo long; sleep 1000",  # still running when the next daemon comes
    }
    tasks = {name: lab.prepare(["sh", "-c", script]) for name, script in scripts.items()}
    fifos = {name: task.fifo("stdout") for name, task in tasks.items()}
    readers = {name: lab.reader(path) for name, path in fifos.items()}
    spec = [
        {"config": {k: v for k, v in vars(t.config).items() if k != "command"}, "stdout": str(fifos[name])}
        for name, t in tasks.items()
    ]
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMON, json.dumps(spec)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert daemon.stdout is not None and daemon.stdout.readline() == b"ready\n"
    for task in tasks.values():
        task.shim_pid = int((task.state_dir / "shim.pid").read_text())
    os.killpg(daemon.pid, signal.SIGKILL)
    daemon.wait()
    for name in ("quick", "later"):
        reader = readers[name]
        wait_for((tasks[name].state_dir / "exits" / "init").exists, what=f"{name} to exit")
        reader.close()

    # The next daemon finds the shims by their address files and asks.
    statuses = {}
    for name, task in tasks.items():
        assert pid_alive(task.shim_pid)
        address = (task.state_dir / "address").read_text()
        client = ShimClient(address)
        task.clients.append(client)
        state = client.state(id=task.id)
        statuses[name] = (state.status, state.exit_status)
        topics = [e.topic for e in client.fetch_events()]
        assert topics[:2] == ["/tasks/create", "/tasks/start"]
        assert ("/tasks/exit" in topics) == (name != "long")
    assert statuses == {
        "quick": (STATUS.STOPPED, 3),
        "later": (STATUS.STOPPED, 4),
        "long": (STATUS.RUNNING, 0),
    }
    assert lab.reader(fifos["later"]).read_to_eof() == b"later\n"
    assert readers["long"].read_available() == b"long\n"
    for task in tasks.values():
        client = task.clients[-1]
        if task is tasks["long"]:
            client.kill(id=task.id, signal=signal.SIGKILL)
            client.wait(id=task.id)
        finish(task, client)


def test_exit_while_no_client_is_connected(lab: Lab) -> None:
    task = lab.task(["sh", "-c", "sleep 1; exit 7"])
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    # A client (the daemon) blocked in Wait is killed with SIGKILL.
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from containerd.shim_client import ShimClient; ShimClient({task.address!r}).wait(id={task.id!r}); print('returned')",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    time.sleep(0.3)
    waiter.kill()
    waiter.wait()
    client.close()
    wait_for(lambda: (task.state_dir / "exits" / "init").exists(), what="the exit record")
    assert not pid_alive(pid)

    client = task.client()
    waited = client.wait(id=task.id)
    assert waited.exit_status == 7
    events = client.fetch_events()
    assert [e.topic for e in events] == ["/tasks/create", "/tasks/start", "/tasks/exit"]
    exit_event = events_pb2.TaskExit()
    exit_event.ParseFromString(events[-1].event.value)
    assert (exit_event.exit_status, exit_event.pid) == (7, pid)
    assert exit_event.exited_at.ToNanoseconds() == waited.exited_at.ToNanoseconds()
    finish(task, client)


def test_events_long_poll_ack_and_redelivery(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    create(task, client)
    client.start(id=task.id)
    first = client.fetch_events()
    assert [e.seq for e in first] == [1, 2]
    client.ack_events(1)
    assert sorted(os.listdir(task.state_dir / "events")) == [f"{2:020d}"]
    assert [e.seq for e in client.fetch_events()] == [2]
    with pytest.raises(errors.InvalidArgument):
        client.ack_events(99)

    started = time.monotonic()
    assert client.fetch_events(after=2, wait=True, timeout_ms=300) == []
    assert time.monotonic() - started >= 0.29

    got: list[shim_events_pb2.ShimEvent] = []
    poller = threading.Thread(target=lambda: got.extend(client.fetch_events(after=2, wait=True)))
    poller.start()
    time.sleep(0.3)
    assert poller.is_alive() and not got, "a long poll answers only when there is an event"
    # Other calls on the same connection are not held up by the pending poll.
    assert client.state(id=task.id).status == STATUS.RUNNING
    client.kill(id=task.id, signal=signal.SIGKILL)
    poller.join(10)
    assert [e.topic for e in got] == ["/tasks/exit"]

    # A new daemon that never acknowledged gets everything again, from disk.
    client.close()
    client = task.client()
    assert [e.topic for e in client.fetch_events()] == ["/tasks/start", "/tasks/exit"]
    client.ack_events(3)
    assert client.fetch_events() == []
    assert os.listdir(task.state_dir / "events") == []
    finish(task, client)


def test_shim_detaches_and_start_is_idempotent(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    with open(f"/proc/{task.shim_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ppid, session = int(fields[1]), int(fields[3])
    assert ppid != os.getpid(), "the shim must not stay our child"
    assert session == task.shim_pid, "the shim runs in its own session"
    with open(f"/proc/{task.shim_pid}/cmdline", "rb") as f:
        assert b"-IS" in f.read().split(b"\0")
    assert start_shim(task.config) == task.address
    assert int((task.state_dir / "shim.pid").read_text()) == task.shim_pid

    client = task.client()
    create(task, client)
    client.start(id=task.id)
    client.shutdown(id=task.id)  # refused while the task exists
    time.sleep(0.2)
    assert pid_alive(task.shim_pid)
    client.kill(id=task.id, signal=signal.SIGKILL)
    client.wait(id=task.id)
    finish(task, client)


def test_shim_cleans_up_when_no_client_returns(lab: Lab) -> None:
    task = lab.task(["sh", "-c", "sleep 1.5"], exit_timeout=0.5)
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    client.close()
    # Running with no client: the shim stays.
    time.sleep(1)
    assert pid_alive(task.shim_pid) and pid_alive(pid)
    # Exited, and still no client after the timeout: it deletes the container and leaves.
    wait_for(lambda: not pid_alive(task.shim_pid), timeout=20, what="the idle shim to clean up")
    assert not task.state_dir.exists()
    assert cgroup_dirs(task.cgroups_path) == []
    assert not (task.config.runtime_root and os.path.exists(os.path.join(task.config.runtime_root, task.id)))


def test_cleanup_after_the_shim_was_killed(lab: Lab) -> None:
    task = lab.task(["sleep", "1000"])
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    client.close()
    os.kill(task.shim_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to die")
    assert pid_alive(pid), "the container outlives its shim"
    deleted = cleanup_shim(task.config)
    assert deleted.exit_status == 128 + signal.SIGKILL
    wait_for(lambda: not pid_alive(pid), what="the container to be killed")
    assert not task.state_dir.exists()
    assert cgroup_dirs(task.cgroups_path) == []


def test_cleanup_unmounts_a_rootfs_whose_path_has_a_space_and_a_tab(lab: Lab) -> None:
    # mountinfo writes " " and "\t" in a mount point as \040 and \011: `delete` after a dead shim
    # must unescape them to see that bundle/rootfs is still mounted, or the mount leaks.
    task = lab.task(["sleep", "1000"], copy_rootfs=False, bundle_suffix=" my bundle\twith tab")
    lower = lab.root / f"lower-{task.id}"
    shutil.copytree(REPO / "images" / "busybox-bundle" / "rootfs", lower, symlinks=True)
    client = task.client()
    pid = create(task, client, rootfs=[{"type": "bind", "source": str(lower), "options": ["rbind", "rw"]}])
    client.start(id=task.id)
    rootfs = str(task.bundle / "rootfs")
    escaped = rootfs.replace(" ", "\\040").replace("\t", "\\011")

    def raw_points() -> list[str]:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f]

    assert escaped in raw_points() and rootfs not in raw_points()  # the kernel's escapes, read raw
    client.close()
    os.kill(task.shim_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to die")
    deleted = cleanup_shim(task.config)
    assert deleted.exit_status == 128 + signal.SIGKILL
    wait_for(lambda: not pid_alive(pid), what="the container to be killed")
    assert escaped not in raw_points(), "bundle/rootfs is still mounted"
    assert not task.state_dir.exists()
    assert cgroup_dirs(task.cgroups_path) == []


def test_cleanup_reports_an_exit_recorded_before_the_shim_died(lab: Lab) -> None:
    task = lab.task(["sh", "-c", "exit 9"])
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    assert client.wait(id=task.id).exit_status == 9
    client.close()
    os.kill(task.shim_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to die")
    deleted = cleanup_shim(task.config)
    assert (deleted.pid, deleted.exit_status) == (pid, 9)
    assert not task.state_dir.exists()
    assert cgroup_dirs(task.cgroups_path) == []


def _smaps(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        lines = f.read().splitlines()[1:]
    return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines}


def test_memory_per_shim_with_five_containers(lab: Lab) -> None:
    tasks = [lab.task(["sh", "-c", "while true; do echo tick; sleep 0.2; done"]) for _ in range(5)]
    clients: list[ShimClient] = []
    for task in tasks:
        client = task.client()
        clients.append(client)
        stdout = task.fifo("stdout")
        lab.reader(stdout)  # a reader that never reads: output goes through FIFO and spool
        create(task, client, stdout)
        client.start(id=task.id)
        client.stats(id=task.id)
        client.pids(id=task.id)
    time.sleep(1)
    usage = {task.shim_pid: _smaps(task.shim_pid) for task in tasks}
    report = ", ".join(
        f"RSS {u['Rss'] / MiB:.1f} PSS {u['Pss'] / MiB:.1f} anon {u['Anonymous'] / MiB:.1f}"
        for u in usage.values()
    )
    print(f"\nper-shim memory (MiB): {report}")
    for pid, u in usage.items():
        assert u["Pss"] <= 8 * MiB, f"shim {pid}: PSS {u['Pss'] / MiB:.1f} MiB > 8 MiB"
        assert u["Rss"] <= 16 * MiB, f"shim {pid}: RSS {u['Rss'] / MiB:.1f} MiB > 16 MiB"
    for task, client in zip(tasks, clients, strict=True):
        client.kill(id=task.id, signal=signal.SIGKILL)
        client.wait(id=task.id)
        finish(task, client)
