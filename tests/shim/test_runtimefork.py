"""The shim forks this checkout's pyrunc instead of exec'ing it (shim/runtimefork.py), and only it.

Which process ran a verb is seen without timing: a createRuntime hook runs in the runtime's own
process (`pyrunc create`'s parent, as runc's) and records its parent, the runtime process, as the
kernel shows it (/proc/PPID: exe, command line, name, parent). An exec'd pyrunc is its launcher
on Debian's python; a forked one shares the shim's executable and command line; runc is runc.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from containerd.shim_client import ShimError, start_shim
from tests.shim.conftest import PYRUNC, RUNC, Lab, ShimTask
from tests.shim.test_shim_lifecycle import create, exec_spec, finish

HOOK = (
    "p=$PPID; {{ cat /proc/$p/comm; readlink /proc/$p/exe; tr '\\0' ' ' </proc/$p/cmdline; echo;"
    " cut -d' ' -f4 /proc/$p/stat; }} >{out}"
)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


def _runtime_of_create(lab: Lab, runtime: str) -> tuple[ShimTask, dict[str, Any]]:
    """Create and run a task whose createRuntime hook records the runtime process; what it saw."""
    out = lab.root / "hook.out"

    def hook(spec: dict[str, Any]) -> None:
        spec["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", HOOK.format(out=out)]}]}

    task = lab.task(["true"], runtime=runtime, edit=hook)
    client = task.client()
    pid = create(task, client)
    init_parent = _ppid(pid)  # pyrunc's stage 1 has exited: the init is the shim's (the subreaper's)
    comm, exe, cmdline, parent = out.read_text().splitlines()
    seen = {"comm": comm, "exe": exe, "cmdline": cmdline, "parent": int(parent), "init_parent": init_parent}
    client.start(id=task.id)
    assert client.wait(id=task.id).exit_status == 0
    finish(task, client)
    return task, seen


@pytest.mark.parametrize("lab", ["template"], indirect=True)
def test_a_template_shim_forks_this_checkouts_pyrunc(lab: Lab) -> None:
    task, seen = _runtime_of_create(lab, PYRUNC)
    assert seen["parent"] == task.shim_pid == seen["init_parent"]
    assert seen["comm"] == "pyrunc"
    # not the launcher: the shim's own interpreter and command line (the forked shim's, the template's)
    assert PYRUNC not in seen["cmdline"], seen
    assert "shim.spawner" in seen["cmdline"], seen
    assert seen["exe"] == os.readlink(f"/proc/{os.getpid()}/exe")  # the template runs our interpreter


@pytest.mark.parametrize("lab", ["template", "command"], indirect=True)
def test_runc_is_always_execd(lab: Lab) -> None:
    task, seen = _runtime_of_create(lab, RUNC)
    assert seen["exe"] == RUNC and seen["cmdline"].startswith(f"{RUNC} "), seen
    assert seen["parent"] == task.shim_pid == seen["init_parent"]


@pytest.mark.parametrize("lab", ["command"], indirect=True)
def test_a_shim_started_by_the_command_execs_pyrunc(lab: Lab) -> None:
    task, seen = _runtime_of_create(lab, PYRUNC)
    assert f" {PYRUNC} --root " in seen["cmdline"], seen
    assert seen["parent"] == task.shim_pid == seen["init_parent"]


@pytest.mark.parametrize("lab", ["template"], indirect=True)
def test_the_environment_turns_the_fork_off(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    # pycontainerd's environment reaches its template, and the template's its shims
    monkeypatch.setenv("PYCONTAINERD_SHIM_FORK_RUNTIME", "0")
    task, seen = _runtime_of_create(lab, PYRUNC)
    assert f" {PYRUNC} --root " in seen["cmdline"], seen
    assert seen["parent"] == task.shim_pid == seen["init_parent"]


@pytest.mark.parametrize("lab", ["template"], indirect=True)
def test_a_copy_of_the_launcher_elsewhere_is_forked_and_a_foreign_script_is_not(lab: Lab) -> None:
    """The marker names the checkout, whatever the launcher's path; another checkout's launcher,
    or a script that merely runs pyrunc, is a foreign program."""
    launcher = Path(PYRUNC).read_text()
    copy = lab.root / "bin" / "my-runtime"
    copy.parent.mkdir()
    copy.write_text(launcher)
    copy.chmod(0o755)
    _, seen = _runtime_of_create(lab, str(copy))
    assert str(copy) not in seen["cmdline"], seen
    other = lab.root / "bin" / "other-checkout"
    other.write_text(launcher.replace("checkout at /", "checkout at /elsewhere/"))
    other.chmod(0o755)
    _, seen = _runtime_of_create(lab, str(other))
    assert f" {other} --root " in seen["cmdline"], seen


def _failures(lab: Lab, task: ShimTask) -> list[str]:
    """The messages of a create that cannot exec its process, then of an exec that cannot."""
    messages = []
    client = task.client()
    with pytest.raises(ShimError) as failed:
        create(task, client)
    messages.append(str(failed.value))
    spec = task.bundle / "config.json"
    spec.write_text(spec.read_text().replace('"/no/such/program"', '"sleep", "1000"'))
    create(task, client)
    client.start(id=task.id)
    client.exec(id=task.id, exec_id="e1", spec=exec_spec(task, ["/no/such/program"]))
    with pytest.raises(ShimError) as failed:
        client.start(id=task.id, exec_id="e1")
    messages.append(str(failed.value))
    client.delete(id=task.id, exec_id="e1")
    client.kill(id=task.id, signal=signal.SIGKILL)
    client.wait(id=task.id)
    finish(task, client)
    return [m.replace(task.id, "ID") for m in messages]


@pytest.mark.parametrize("lab", ["template"], indirect=True)
def test_a_forked_pyrunc_fails_with_the_execd_ones_words(lab: Lab) -> None:
    forked = lab.task(["/no/such/program"])
    execd = lab.prepare(["/no/such/program"])
    execd.address = start_shim(execd.config)  # by the command: pyrunc is exec'd
    execd.shim_pid = int((execd.state_dir / "shim.pid").read_text())
    via_fork, via_exec = _failures(lab, forked), _failures(lab, execd)
    assert via_fork == via_exec
    assert via_fork[0].startswith("OCI runtime create failed: runc create failed: unable to start"), via_fork
    assert via_fork[0].endswith('exec: "/no/such/program": stat /no/such/program: no such file or directory')
    assert "/no/such/program" in via_fork[1], via_fork
