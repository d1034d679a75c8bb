"""Containers and tasks through containerd's own `ctr`, and tasks surviving the daemon.

Each test runs a real pycontainerd on temp dirs, imports Docker's busybox archive with
`ctr images import`, and checks at the end that no shim, container process, mount or
cgroup of its own remains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import RunningDaemon, start_daemon, stop_daemon

BUSYBOX = Path(__file__).resolve().parents[3] / "shared" / "images" / "busybox.tar"
IMAGE = "docker.io/library/busybox:latest"


def _default_signals() -> None:
    # ctr stops on SIGINT as Go's default; started from this worker it would inherit an ignored
    # or blocked SIGINT if anything in the worker left one (a shell starting it resets neither).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def ctr_events(address: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ctr", "--address", str(address), "events"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )


def stop_events(events: subprocess.Popen[str]) -> str:
    """Interrupt `ctr events` as a user's ^C does; its output up to then."""
    events.send_signal(signal.SIGINT)
    try:
        return events.communicate(timeout=10)[0]
    except subprocess.TimeoutExpired:
        status = Path(f"/proc/{events.pid}/status").read_text()
        events.kill()
        events.communicate()
        sig = [line for line in status.splitlines() if line.startswith(("State", "Sig", "Shd"))]
        raise AssertionError(f"ctr events outlived SIGINT by 10 s: {sig}") from None


def ours(base: Path) -> list[str]:
    """Processes whose command line mentions this test's directory: its shims and daemons."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(base) in cmdline:
            found.append(f"{pid}: {cmdline[:120]}")
    return found


@pytest.fixture
def busybox_daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    import protos

    protos.load()
    daemon = start_daemon(tmp_path)
    try:
        done = daemon.ctr("images", "import", str(BUSYBOX))
        assert done.returncode == 0, done.stderr
        yield daemon
    finally:
        # Whatever a test left: kill and delete its tasks and containers through the API.
        if daemon.alive():
            for task in daemon.ctr("tasks", "ls", "-q").stdout.split():
                daemon.ctr("tasks", "kill", "-s", "KILL", task)
                deadline = time.monotonic() + 10
                while "STOPPED" not in daemon.ctr("tasks", "ls").stdout and time.monotonic() < deadline:
                    time.sleep(0.1)
                daemon.ctr("tasks", "rm", "-f", task)
            for container in daemon.ctr("containers", "ls", "-q").stdout.split():
                daemon.ctr("containers", "rm", container)
        stop_daemon(daemon)
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if str(tmp_path) in line.split()[4]]
    assert not mounts, f"mounts left behind: {mounts}"
    assert not ours(tmp_path), f"processes left behind: {ours(tmp_path)}"


def wait_status(daemon: RunningDaemon, task: str, status: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [line.split() for line in daemon.ctr("tasks", "ls").stdout.splitlines()[1:]]
        if any(r[0] == task and r[-1] == status for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task} never reached {status}: {daemon.ctr('tasks', 'ls').stdout}")


def test_ctr_run_rm_prints_output(busybox_daemon: RunningDaemon) -> None:
    done = busybox_daemon.ctr("run", "--rm", IMAGE, "t1", "echo", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    assert busybox_daemon.ctr("containers", "ls", "-q").stdout.split() == []
    failing = busybox_daemon.ctr("run", "--rm", IMAGE, "t2", "sh", "-c", "exit 7")
    assert failing.returncode == 7


def test_ctr_detached_task_exec_kill_and_container_lifecycle(busybox_daemon: RunningDaemon) -> None:
    c = busybox_daemon.ctr
    done = c("run", "-d", IMAGE, "d1", "sleep", "1000")
    assert done.returncode == 0, done.stderr
    wait_status(busybox_daemon, "d1", "RUNNING")
    exec_out = c("tasks", "exec", "--exec-id", "e1", "d1", "sh", "-c", "echo from-exec; cat /proc/1/cmdline")
    assert exec_out.returncode == 0, exec_out.stderr
    assert exec_out.stdout.startswith("from-exec\nsleep")
    assert c("tasks", "exec", "--exec-id", "e2", "d1", "sh", "-c", "exit 3").returncode == 3
    pids = c("tasks", "ps", "d1").stdout.split()
    assert "PID" in pids
    info = json.loads(c("containers", "info", "d1").stdout)
    assert (
        info["ID"] == "d1" and info["Image"] == IMAGE and info["Runtime"]["Name"] == "io.containerd.runc.v2"
    )
    assert "d1" in c("containers", "ls", "-q").stdout.split()
    refused = c("containers", "rm", "d1")
    assert refused.returncode != 0  # a container with a running task
    assert c("tasks", "kill", "-s", "KILL", "d1").returncode == 0
    wait_status(busybox_daemon, "d1", "STOPPED")
    assert c("tasks", "rm", "d1").returncode == 0
    assert c("containers", "rm", "d1").returncode == 0
    assert c("containers", "ls", "-q").stdout.split() == []
    assert c("tasks", "ls", "-q").stdout.split() == []


def test_ctr_events_shows_task_lifecycle(busybox_daemon: RunningDaemon) -> None:
    events = ctr_events(busybox_daemon.address)
    time.sleep(0.5)
    assert busybox_daemon.ctr("run", "--rm", IMAGE, "ev1", "true").returncode == 0
    time.sleep(0.5)
    out = stop_events(events)
    topics = [line.split()[5] for line in out.splitlines() if len(line.split()) > 5]
    for topic in (
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ):
        assert topic in topics, f"{topic} missing from {topics}"
    assert topics.index("/tasks/start") < topics.index("/tasks/exit") < topics.index("/tasks/delete")


def test_tasks_survive_daemon_kill_and_exits_while_down_are_reported(
    busybox_daemon: RunningDaemon, tmp_path: Path
) -> None:
    c = busybox_daemon.ctr
    assert c("run", "-d", IMAGE, "long", "sleep", "1000").returncode == 0
    assert c("run", "-d", IMAGE, "short", "sh", "-c", "sleep 2; exit 5").returncode == 0
    assert (
        c(
            "run",
            "-d",
            IMAGE,
            "writer",
            "sh",
            "-c",
            "for i in $(seq 1 40); do echo line $i; sleep 0.05; done; sleep 1000",
        ).returncode
        == 0
    )
    for task in ("long", "short", "writer"):
        wait_status(busybox_daemon, task, "RUNNING")
    pids = {row.split()[0]: int(row.split()[1]) for row in c("tasks", "ls").stdout.splitlines()[1:]}
    busybox_daemon.proc.send_signal(signal.SIGKILL)
    busybox_daemon.proc.wait()
    time.sleep(3)  # "short" exits while no daemon runs
    for task in ("long", "writer"):
        os.kill(pids[task], 0)  # still alive without their daemon
    restarted = start_daemon(tmp_path)
    busybox_daemon.proc = restarted.proc
    events = ctr_events(restarted.address)
    wait_status(restarted, "short", "STOPPED")
    wait_status(restarted, "long", "RUNNING")
    rows = {r.split()[0]: r.split() for r in restarted.ctr("tasks", "ls").stdout.splitlines()[1:]}
    assert int(rows["long"][1]) == pids["long"]
    exec_out = restarted.ctr("tasks", "exec", "--exec-id", "after", "long", "echo", "still-here")
    assert exec_out.stdout == "still-here\n", exec_out.stderr
    deleted = restarted.ctr("tasks", "rm", "short")
    assert deleted.returncode == 0, deleted.stderr
    assert "5" in deleted.stdout + deleted.stderr  # ctr reports the recorded exit status
    time.sleep(0.5)
    out = stop_events(events)
    assert "/tasks/delete" in out


def test_runc_as_the_runtime(tmp_path: Path) -> None:
    import protos

    protos.load()
    config = tmp_path / "config.toml"
    config.write_text('[runtimes]\n"io.containerd.runc.v2" = "/usr/sbin/runc"\n')
    (tmp_path / "d").mkdir()
    daemon = start_daemon(tmp_path / "d", ["--config", str(config)])
    try:
        assert daemon.ctr("images", "import", str(BUSYBOX)).returncode == 0
        done = daemon.ctr(
            "run", "--rm", IMAGE, "viarunc", "sh", "-c", "echo via-runc; cat /proc/1/cgroup | head -1"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("via-runc\n")
        logs = list((tmp_path / "d" / "state").rglob("log.json"))
        assert logs == []  # cleaned up with the task
    finally:
        stop_daemon(daemon)
    assert not ours(tmp_path), ours(tmp_path)


def test_ctr_listings_after_import(busybox_daemon: RunningDaemon) -> None:
    c = busybox_daemon.ctr
    images = c("images", "ls").stdout.splitlines()
    assert images[1].split()[0] == IMAGE
    assert "sha256:a546b3c538bb39f65803f3e072942a70a6666295555ac80a501ecb04585891e9" in images[1]
    digests = set(c("content", "ls", "-q").stdout.split())
    assert "sha256:80cbd88a5f7ef9f87fe0d5a3bd512e7bcb1e27f31a79208585f0f78cf4ab5824" in digests  # the config
    assert len(digests) == 3  # manifest, config, one layer
    snapshots = c("snapshots", "ls").stdout.splitlines()[1:]
    assert [s.split()[-1] for s in snapshots] == ["Committed"]
    check = c("images", "check").stdout
    assert "complete" in check and "true" in check.splitlines()[1]


def test_ctr_run_with_a_terminal(busybox_daemon: RunningDaemon) -> None:
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(
            "ctr",
            [
                "ctr",
                "--address",
                str(busybox_daemon.address),
                "run",
                "-t",
                "--rm",
                IMAGE,
                "tty1",
                "sh",
                "-c",
                "tty; exit 6",
            ],
        )
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"/dev/pts/0" in out, out
    assert os.waitstatus_to_exitcode(status) == 6
