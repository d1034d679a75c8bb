"""Shims forked from the warm template (shim/spawner.py), as pycontainerd starts them.

The shims must be what `pycontainerd-shim start` makes: detached at once, in their own session,
serving their task after the template (and so the daemon that ran it) is gone, holding nothing of
the template's: a descriptor of its pipes in a shim would tie the daemon's end to a process that
outlives it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerd.shim_client import ShimError, ShimSpawner, start_shim
from protos.gen.containerd_api.types.task import task_pb2
from tests.shim.conftest import Lab, ShimTask, pid_alive, wait_for
from tests.shim.test_shim_lifecycle import create, finish

STATUS = task_pb2.Status


@pytest.fixture
def spawner() -> Iterator[ShimSpawner]:
    spawner = ShimSpawner()
    yield spawner
    spawner.close()


def _start(lab: Lab, spawner: ShimSpawner, args: list[str]) -> ShimTask:
    task = lab.prepare(args)
    task.address = start_shim(task.config, spawner=spawner)
    task.shim_pid = int((task.state_dir / "shim.pid").read_text())
    return task


def _fd_targets(pid: int) -> set[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    return {os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir)}


def _template_pid(spawner: ShimSpawner) -> int:
    proc = spawner._proc  # the test looks at the template process itself
    assert proc is not None
    return proc.pid


def test_a_forked_shim_is_detached_and_holds_nothing_of_the_template(lab: Lab, spawner: ShimSpawner) -> None:
    task = _start(lab, spawner, ["sleep", "1000"])
    template = _template_pid(spawner)
    with open(f"/proc/{task.shim_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[1]) not in (os.getpid(), template), "the shim must be orphaned at once"
    assert int(fields[3]) == task.shim_pid, "the shim runs in its own session"
    # The template's stdin and stdout are pycontainerd's pipes: no shim may hold them.
    pipes = {os.readlink(f"/proc/{template}/fd/{fd}") for fd in (0, 1)}
    assert all(p.startswith("pipe:") for p in pipes)
    held = _fd_targets(task.shim_pid)
    assert not held & pipes, held
    assert {os.readlink(f"/proc/{task.shim_pid}/fd/{fd}") for fd in (0, 1)} == {"/dev/null"}
    assert os.readlink(f"/proc/{task.shim_pid}/fd/2") == str(task.state_dir / "shim.log")
    # Asking again for the same task finds the shim serving it.
    assert start_shim(task.config, spawner=spawner) == task.address
    assert int((task.state_dir / "shim.pid").read_text()) == task.shim_pid


def test_a_forked_shim_serves_its_task_after_the_template_is_gone(lab: Lab, spawner: ShimSpawner) -> None:
    task = _start(lab, spawner, ["sh", "-c", "echo up; sleep 1000"])
    stdout = task.fifo("out")
    out = lab.reader(stdout)
    client = task.client()
    pid = create(task, client, stdout=stdout)
    template = _template_pid(spawner)
    spawner.close()  # as at pycontainerd's exit: the template reads EOF and exits
    wait_for(lambda: not pid_alive(template), what="the template to exit")
    client.start(id=task.id)
    assert out.read_available(1.0) == b"up\n"
    assert client.state(id=task.id).status == STATUS.RUNNING
    client.kill(id=task.id, signal=signal.SIGKILL)
    assert client.wait(id=task.id).exit_status == 128 + signal.SIGKILL
    finish(task, client)
    assert not pid_alive(pid)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit after Shutdown")


def test_a_failed_start_is_reported_and_the_template_serves_on(lab: Lab, spawner: ShimSpawner) -> None:
    bad = lab.prepare(["true"])
    bad.config.runtime = str(lab.root / "no-such-runtime")
    with pytest.raises(ShimError, match="is not an executable"):
        start_shim(bad.config, spawner=spawner)
    bad.state_dir.rmdir()  # made before the runtime is checked, as `pycontainerd-shim start` does; empty
    task = _start(lab, spawner, ["true"])
    client = task.client()
    create(task, client)
    client.start(id=task.id)
    assert client.wait(id=task.id).exit_status == 0
    finish(task, client)


def test_a_dead_template_is_replaced(lab: Lab, spawner: ShimSpawner) -> None:
    first = _start(lab, spawner, ["true"])
    old = _template_pid(spawner)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not pid_alive(old), what="the template to die")
    second = _start(lab, spawner, ["true"])
    assert _template_pid(spawner) != old
    for task in (first, second):
        client = task.client()
        create(task, client)
        client.start(id=task.id)
        assert client.wait(id=task.id).exit_status == 0
        finish(task, client)
