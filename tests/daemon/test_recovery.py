"""pycontainerd's recovery of the shims a previous daemon left (issue 19): a shim without its task
(the daemon died between starting the shim and creating the task, as a kill -9 during a restart
policy's start leaves it) is shut down and cleaned up, at once, and the other tasks are adopted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from containerd.shim_client import ShimClient
from tests.daemon.conftest import RunningDaemon, start_daemon
from tests.daemon.test_tasks_ctr import IMAGE, busybox_daemon, wait_status

__all__ = ["busybox_daemon"]  # the fixture, used by name


def test_a_shim_without_its_task_is_shut_down_and_the_others_adopted(
    busybox_daemon: RunningDaemon, tmp_path: Path
) -> None:
    c = busybox_daemon.ctr
    for name in ("kept", "taskless"):
        assert c("run", "-d", IMAGE, name, "sleep", "1000").returncode == 0
        wait_status(busybox_daemon, name, "RUNNING")
    pids = {row.split()[0]: int(row.split()[1]) for row in c("tasks", "ls").stdout.splitlines()[1:]}
    busybox_daemon.proc.send_signal(signal.SIGKILL)
    busybox_daemon.proc.wait()
    # The task goes, its shim stays: what a daemon killed between starting a shim and creating
    # its task leaves behind.
    bundle = busybox_daemon.state / "tasks" / "default" / "taskless"
    shim_pid = int((bundle / "shim.pid").read_text())
    with ShimClient((bundle / "address").read_text().removeprefix("unix://")) as shim:
        shim.kill(id="taskless", signal=signal.SIGKILL)
        shim.wait(id="taskless")
        shim.delete(id="taskless")
    assert os.path.exists(f"/proc/{shim_pid}")

    started = time.monotonic()
    restarted = start_daemon(tmp_path)
    busybox_daemon.proc = restarted.proc
    assert time.monotonic() - started < 15, "recovery waited on a shim that answered"
    rows = {r.split()[0]: r.split() for r in restarted.ctr("tasks", "ls").stdout.splitlines()[1:]}
    assert list(rows) == ["kept"] and int(rows["kept"][1]) == pids["kept"], rows
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{shim_pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{shim_pid}"), "the taskless shim is still running"
    assert not bundle.exists()
