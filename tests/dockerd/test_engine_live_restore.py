"""Live restore: kill -9 pydockerd (and pycontainerd too) under running containers, start it
again, and the containers are as a user left them.

Three containers are running when the daemon dies: `ticker` prints a numbered line per second,
`always` (--restart=always) exits after two seconds, `seven` exits with code 7 (after printing
"bye") five seconds in, while the daemon is down; `echoer` echoes its stdin. After the restart:
the ticker still runs with the same pid and its json log holds every line exactly once,
`logs -f` keeps delivering new lines, `attach` reaches the echoer's stdin, `seven` shows exit
code 7 with the time it really exited (and its last words in its log), `always` runs again,
and `exec`, `stop`, `wait`, `inspect`, `ps` answer as usual. With pycontainerd killed too, the new
pydockerd starts a new pycontainerd, which adopts the shims again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dockerd_ref import DOCKER_CLI
from tests.pydockerd_harness import PyDockerd, inspect, pydockerd_engine, start_pydockerd, until, wait_ready

TICKER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"
ZERO_TIME = "0001-01-01T00:00:00Z"


def _json_log(d: PyDockerd, name: str) -> list[str]:
    path = Path(inspect(d, name)["LogPath"])
    return [json.loads(line)["log"] for line in path.read_text().splitlines()]


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)  # pydockerd is our child: reap it
    except ChildProcessError:
        until(f"pid {pid} to go", lambda: not os.path.exists(f"/proc/{pid}"))


def _docker_popen(d: PyDockerd, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DOCKER_CLI, "-H", f"unix://{d.socket}", *args],
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=d._cli_env,
    )


def _readuntil(
    proc: subprocess.Popen[str], predicate: Callable[[str], bool], timeout: float = 20.0
) -> list[str]:
    """Lines from PROC's stdout until one satisfies PREDICATE (then PROC is stopped)."""
    import select

    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {lines!r}")
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if not ready:
                continue
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"output ended; got {lines!r}; stderr {err!r}")
            lines.append(line)
            if predicate(line):
                return lines
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("also_containerd", [False, True], ids=["pydockerd", "pydockerd-and-pycontainerd"])
def test_containers_survive_kill_9(also_containerd: bool) -> None:
    with pydockerd_engine() as d:
        d.docker_ok("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKER)
        d.docker_ok(
            "run", "-d", "--name", "always", "--restart=always", "busybox", "sh", "-c", "sleep 2; exit 3"
        )
        d.docker_ok("run", "-d", "--name", "seven", "busybox", "sh", "-c", "sleep 5; echo bye; exit 7")
        d.docker_ok(
            "run", "-di", "--name", "echoer", "busybox", "sh", "-c", "while read l; do echo got $l; done"
        )
        until("the ticker's first lines", lambda: "line 1\n" in _json_log(d, "ticker"))
        ticker_pid = inspect(d, "ticker")["State"]["Pid"]
        restarts_before = inspect(d, "always")[
            "RestartCount"
        ]  # it may already have cycled on a loaded machine
        containerd_pid = d.containerd_pid
        assert ticker_pid > 0 and containerd_pid

        _kill9(d.pid)
        if also_containerd:
            os.kill(containerd_pid, signal.SIGKILL)
            until("pycontainerd to go", lambda: not os.path.exists(f"/proc/{containerd_pid}"))
        down_since = time.time()
        time.sleep(7)  # `always` and `seven` exit meanwhile; the ticker goes on
        restarted = time.time()
        proc = start_pydockerd(d)
        wait_ready(d, proc)

        if also_containerd:
            assert d.containerd_pid not in (None, containerd_pid), (
                "pydockerd should have started a new pycontainerd"
            )
        # The ticker: same process, still running, listed as such.
        state = inspect(d, "ticker")["State"]
        assert state["Status"] == "running" and state["Running"] and state["Pid"] == ticker_pid
        assert os.path.exists(f"/proc/{ticker_pid}")
        running = d.docker_ok("ps", "--format", "{{.Names}} {{.Status}}").splitlines()
        assert any(line.startswith("ticker Up") for line in running), running
        # `seven` exited while nobody watched: its code, the time it really exited, its last words.
        seven = inspect(d, "seven")["State"]
        assert seven["Status"] == "exited" and seven["ExitCode"] == 7, seven
        assert seven["FinishedAt"] != ZERO_TIME
        finished = _parse_rfc3339(seven["FinishedAt"])
        assert down_since - 1 < finished < restarted, (seven["FinishedAt"], down_since, restarted)
        assert d.docker_ok("logs", "seven") == "bye\n"
        assert d.docker_ok("wait", "seven").strip() == "7"
        exited = d.docker_ok("ps", "-a", "--filter", "name=seven", "--format", "{{.Status}}")
        assert exited.startswith("Exited (7)"), exited
        # `always` exited too, and its restart policy brings it back.
        # Its restart is counted, not caught running: it runs two seconds at a time, which a poll
        # of `docker inspect` can miss on a loaded machine.
        until(
            "`always` to be restarted",
            lambda: inspect(d, "always")["RestartCount"] > restarts_before,
            timeout=60,
        )

        # logs -f goes on with new lines; the json log has every line once, in order.
        before = len(_json_log(d, "ticker"))
        follower = _docker_popen(d, "logs", "-f", "--tail", "1", "ticker")
        got = _readuntil(follower, lambda line: int(line.split()[1]) >= before + 1)
        assert len(got) >= 2, got
        lines = _json_log(d, "ticker")
        assert lines == [f"line {i}\n" for i in range(len(lines))], lines
        assert len(lines) >= before + 2

        # attach reaches the echoer's stdin and brings its output back.
        attacher = _docker_popen(d, "attach", "echoer", stdin=subprocess.PIPE)
        assert attacher.stdin is not None
        attacher.stdin.write("hello\n")
        attacher.stdin.flush()
        assert _readuntil(attacher, lambda line: line == "got hello\n")[-1] == "got hello\n"

        # exec into the adopted container (through the shim pycontainerd reconnected to)
        res = d.docker("exec", "ticker", "sh", "-c", "echo in $(hostname); exit 4")
        assert res.returncode == 4 and res.stdout == f"in {inspect(d, 'ticker')['Config']['Hostname']}\n", res

        # stop and wait work on the adopted container (sh as pid 1 ignores SIGTERM: killed after 1 s).
        d.docker_ok("stop", "-t", "1", "ticker")
        assert d.docker_ok("wait", "ticker").strip() == "137"
        assert not os.path.exists(f"/proc/{ticker_pid}") or _zombie(ticker_pid)
        assert inspect(d, "ticker")["State"]["Status"] == "exited"


def test_pycontainerd_killed_alone_comes_back() -> None:
    """pydockerd supervises the pycontainerd it started (as dockerd does its containerd): kill -9
    it, and pydockerd starts a new one, the containers keep running and an exit that happened
    while it was down is recorded."""
    with pydockerd_engine() as d:
        d.docker_ok("run", "-d", "--name", "sleeper", "busybox", "sleep", "600")
        d.docker_ok("run", "-d", "--name", "five", "busybox", "sh", "-c", "sleep 2; exit 5")
        pid = inspect(d, "sleeper")["State"]["Pid"]
        containerd_pid = d.containerd_pid
        assert containerd_pid
        os.kill(containerd_pid, signal.SIGKILL)
        until("a new pycontainerd", lambda: d.containerd_pid not in (None, containerd_pid), timeout=30)
        until("the exit of `five`", lambda: inspect(d, "five")["State"]["Status"] == "exited", timeout=30)
        assert inspect(d, "five")["State"]["ExitCode"] == 5
        state = inspect(d, "sleeper")["State"]
        assert state["Running"] and state["Pid"] == pid
        assert d.docker_ok("run", "--rm", "busybox", "echo", "still serving") == "still serving\n"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _parse_rfc3339(stamp: str) -> float:
    import calendar

    base, _, frac = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")


def test_restart_policies_at_daemon_start() -> None:
    """As dockerd documents it: an `always` container stopped by hand starts again when the
    daemon starts, an `unless-stopped` one stopped by hand does not; `no` stays as it is."""
    with pydockerd_engine() as d:
        for name, policy in (("always", "always"), ("unless", "unless-stopped"), ("never", "no")):
            d.docker_ok("run", "-d", "--name", name, f"--restart={policy}", "busybox", "sleep", "600")
            d.docker_ok("stop", "-t", "0", name)
        os.kill(d.pid, signal.SIGTERM)
        os.waitpid(d.pid, 0)
        proc = start_pydockerd(d)
        wait_ready(d, proc)
        until("`always` to run again", lambda: inspect(d, "always")["State"]["Running"])
        time.sleep(1)
        assert inspect(d, "unless")["State"]["Status"] == "exited"
        assert inspect(d, "never")["State"]["Status"] == "exited"
        d.docker_ok("stop", "-t", "0", "always")  # and a stop holds again
        time.sleep(1)
        assert inspect(d, "always")["State"]["Status"] == "exited"
