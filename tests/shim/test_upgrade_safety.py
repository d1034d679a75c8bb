"""What an upgrade does to a running shim: its checkout is replaced on disk (a `git pull`, a new
release unpacked over the old), and the state directory it left may be read by a newer or an
older build.

A shim runs for as long as its container, so every module it will ever need must already be in
memory: the first test starts a shim from a copy of the checkout, replaces every module of that
copy with one that fails on import, and then drives the shim through every verb that loads code
late (a rootfs mount and unmount in forked helpers, exec, stats, OOM watch, pause, delete).
It does so for a shim started by the command and for one forked from the copy's template, which
runs the copy's pyrunc in forked processes (shim/runtimefork.py): that pyrunc, replaced on disk
too, must keep working from memory as well.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2

from containerd.shim_client import ShimClient, ShimError, cleanup_shim, start_shim
from protos.gen.containerd_api.types.task import task_pb2
from tests.shim.conftest import REPO, Lab, ShimTask, cgroup_dirs, pid_alive, wait_for

STATUS = task_pb2.Status
SHIM_PACKAGES = ("shim", "common", "ttrpc")  # all the shim is made of (the import contracts say so)
RUNTIME_PACKAGES = ("runtime",)  # and what a shim forked from the template runs of pyrunc
REPLACED = "raise ImportError('this module was replaced by an upgrade after the shim started')\n"


def create(task: ShimTask, client: ShimClient, **request: Any) -> int:
    return client.create(id=task.id, bundle=str(task.bundle), **request).pid


def exec_spec(task: ShimTask, args: list[str]) -> any_pb2.Any:
    process = json.loads((task.bundle / "config.json").read_text())["process"]
    process["args"] = args
    return any_pb2.Any(
        type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
        value=json.dumps(process).encode(),
    )


def finish(task: ShimTask, client: ShimClient) -> None:
    """Delete the task and shut the shim down; nothing of it remains."""
    client.delete(id=task.id)
    client.shutdown(id=task.id)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit after Shutdown")
    assert not task.state_dir.exists(), sorted(os.listdir(task.state_dir))
    assert not (Path(task.config.runtime_root) / task.id).exists()
    assert cgroup_dirs(task.cgroups_path) == []


def _copy_checkout(dest: Path) -> None:
    for package in SHIM_PACKAGES + RUNTIME_PACKAGES:
        shutil.copytree(REPO / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))


def _replace_checkout(checkout: Path) -> int:
    """Every module of the copy now fails on import, and no byte-code is left to fall back on."""
    replaced = 0
    for package in SHIM_PACKAGES + RUNTIME_PACKAGES:
        for path in sorted((checkout / package).rglob("*")):
            if path.is_dir() and path.name == "__pycache__":
                shutil.rmtree(path)
        for path in (checkout / package).rglob("*.py"):
            path.write_text(REPLACED)
            replaced += 1
    return replaced


def _launcher(checkout: Path) -> Path:
    """The copy's own pyrunc launcher (as scripts/setup writes it, naming the copy)."""
    text = (REPO / ".venv" / "bin" / "pyrunc").read_text().replace(str(REPO), str(checkout))
    launcher = checkout / "pyrunc"
    launcher.write_text(text)
    launcher.chmod(0o755)
    return launcher


def _start_from_template(checkout: Path, task: ShimTask) -> str:
    """The shim forked by the copy's template (shim/spawner.py's protocol), which then exits."""
    boot = f"import sys;sys.path.insert(0,{str(checkout)!r});from shim.spawner import main;sys.exit(main())"
    template = subprocess.Popen(
        [sys.executable, "-IS", "-c", boot], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    request = json.dumps(task.config.argv("start")[len(task.config.command) :]) + "\n"
    answer, _ = template.communicate(request.encode(), timeout=60)
    assert answer.startswith(b"ok "), answer
    return answer[3:].decode().strip()


@pytest.mark.parametrize("lab", ["command"], indirect=True)  # the shims are started here
@pytest.mark.parametrize("started_by", ["command", "template"])
def test_shim_keeps_working_after_its_checkout_is_replaced(lab: Lab, tmp_path: Path, started_by: str) -> None:
    checkout = tmp_path / "checkout"
    _copy_checkout(checkout)
    task = lab.prepare(["sh", "-c", "echo started; read line; echo got $line; sleep 1000"], copy_rootfs=False)
    if started_by == "template":  # its shim forks the copy's pyrunc (a shim of the command execs ours)
        task.config.runtime = str(_launcher(checkout))
    boot = f"import sys;sys.path.insert(0,{str(checkout)!r});from shim.main import main;sys.exit(main())"
    task.config.command = [sys.executable, "-IS", "-c", boot]
    task.address = (
        start_shim(task.config) if started_by == "command" else _start_from_template(checkout, task)
    )
    task.shim_pid = int((task.state_dir / "shim.pid").read_text())
    assert _replace_checkout(checkout) > 40

    lower = lab.root / f"lower-{task.id}"
    shutil.copytree(REPO / "images" / "busybox-bundle" / "rootfs", lower, symlinks=True)
    stdin, stdout = task.fifo("in"), task.fifo("out")
    out = lab.reader(stdout)
    writer = os.open(stdin, os.O_RDWR)
    try:
        client = task.client()
        # A rootfs mount: done in a forked helper that loads the mount code (ctypes) only then.
        pid = create(task, client, stdout=str(stdout), stdin=str(stdin),
                     rootfs=[{"type": "bind", "source": str(lower), "options": ["rbind", "rw"]}])  # fmt: skip
        client.start(id=task.id)
        assert out.read_available(1.0) == b"started\n"
        os.write(writer, b"hello\n")
        wait_for(lambda: out.read_available() == b"got hello\n", what="the container's answer")

        exec_out = task.fifo("exec-out")
        exec_reader = lab.reader(exec_out)
        client.exec(
            id=task.id,
            exec_id="e1",
            stdout=str(exec_out),
            spec=exec_spec(task, ["sh", "-c", "echo in; exit 3"]),
        )
        client.start(id=task.id, exec_id="e1")
        assert client.wait(id=task.id, exec_id="e1").exit_status == 3
        assert exec_reader.read_to_eof() == b"in\n"
        client.delete(id=task.id, exec_id="e1")

        assert client.stats(id=task.id).stats.type_url.startswith("io.containerd.cgroups.")
        assert {p.pid for p in client.pids(id=task.id).processes} == {pid}
        client.pause(id=task.id)
        assert client.state(id=task.id).status == STATUS.PAUSED
        client.resume(id=task.id)
        client.kill(id=task.id, signal=signal.SIGKILL)
        assert client.wait(id=task.id).exit_status == 128 + signal.SIGKILL
        assert [e.topic for e in client.fetch_events(after=0, wait=False)][-1] == "/tasks/exit"
    finally:
        os.close(writer)
    finish(task, client)  # delete (unmounts the rootfs in a forked helper) and shutdown
    assert not pid_alive(pid)


def test_state_of_a_newer_release_is_left_alone(lab: Lab) -> None:
    """A shim state directory marked by a newer release: `delete` refuses it, naming the marker,
    and removes nothing; the current layout is written by every shim that starts."""
    task = lab.task(["sleep", "1000"])
    marker = task.state_dir / "layout.json"
    assert json.loads(marker.read_text()) == {"Version": 1}
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    client.close()
    os.kill(task.shim_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to die")
    marker.write_text('{"Version": 2}')
    before = sorted(p.name for p in task.state_dir.iterdir())
    with pytest.raises(ShimError, match=f"{marker}: layout version 2 is newer than this build reads"):
        cleanup_shim(task.config)
    assert sorted(p.name for p in task.state_dir.iterdir()) == before and pid_alive(pid)
    # The same directory in this build's layout (or the previous release's, unmarked) is cleaned up.
    marker.unlink()
    assert cleanup_shim(task.config).exit_status == 128 + signal.SIGKILL
    wait_for(lambda: not pid_alive(pid), what="the container to be killed")
    assert not task.state_dir.exists() and cgroup_dirs(task.cgroups_path) == []
