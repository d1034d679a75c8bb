"""Upgrade from the previous release to this build under running containers (issue 19).

The previous release (tests/upgrade/previous.py: tag v0.1.0, or the commit named there) runs
pydockerd, its pycontainerd, shims and pyrunc from its own checkout and virtualenv on temporary
roots. Containers: `ticker` (a numbered line a second, followed by `logs -f`), `done3` (exited
with 3 before the upgrade), `seven` (prints "bye" and exits 7 while no daemon runs: the test
releases it once both old daemons are gone), `always`
(--restart=always, exits 3 every two seconds), `unless` (--restart=unless-stopped, sleeping).
Then both old daemons are stopped (SIGTERM; and in the other run kill -9) and this build's
pydockerd starts on the same roots, with a pycontainerd of this build, which reconnects to the
old release's shims. Checked: same pids, ps/inspect/logs continuous (every line once, in
order), the exit code of what exited in between, exec/stop/wait/restart through the old shims,
restart policies going on, new containers, and every store migrated to the current layout.

Published ports and volumes are not in the previous release (its routers refuse them), so they
join this test with the release after the one that brings them.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.dockerd_ref import DOCKER_CLI
from tests.pydockerd_harness import PyDockerd, inspect, pydockerd_engine, start_pydockerd, until, wait_ready
from tests.upgrade import previous

TICKER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 1; done"
# `seven` exits when the test says so, not after a delay: on a loaded machine a delay can run out
# while the old daemons still run, and a kill -9 then lands in the middle of their handling its
# exit (the task deleted, the exit not yet recorded), which loses the exit status in Docker too.
RELEASE = "/released"
SEVEN = f"until [ -e {RELEASE} ]; do sleep 0.1; done; echo bye; exit 7"
REPO = Path(__file__).resolve().parents[2]


def _json_log(d: PyDockerd, name: str) -> list[str]:
    path = Path(inspect(d, name)["LogPath"])
    return [json.loads(line)["log"] for line in path.read_text().splitlines()]


def _docker_popen(d: PyDockerd, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [DOCKER_CLI, "-H", f"unix://{d.socket}", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=d._cli_env,
    )  # fmt: skip


def _read_lines(
    proc: subprocess.Popen[str], until_line: Callable[[str], bool], timeout: float = 20.0
) -> list[str]:
    """PROC's output lines until one satisfies UNTIL_LINE (PROC keeps running)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while not lines or not until_line(lines[-1]):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; got {lines!r}")
        if select.select([proc.stdout], [], [], remaining)[0]:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"output ended; got {lines!r}")
            lines.append(line)
    return lines


def _stop(pid: int, sig: int) -> None:
    os.kill(pid, sig)
    try:
        os.waitpid(pid, 0)  # pydockerd is our child; pycontainerd is not
    except ChildProcessError:
        pass
    until(f"pid {pid} to go", lambda: not os.path.exists(f"/proc/{pid}"), timeout=40)


def _release(pid: int) -> None:
    """Let `seven` (init PID) go on to its exit: the file it waits for, made in its own root."""
    Path(f"/proc/{pid}/root{RELEASE}").touch()


def _started_since(d: PyDockerd, name: str, started_at: str) -> bool:
    state = inspect(d, name)["State"]
    assert not state["Error"], state
    return bool(state["StartedAt"] != started_at)


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0") if part]


def _numbers(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


@pytest.mark.timeout(900)  # a cold cache builds the previous release first (a minute or two)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_upgrade_from_the_previous_release(stop_signal: int) -> None:
    old = previous.build()
    with pydockerd_engine(program=old.bin / "pydockerd", cwd=old.source) as d:
        try:
            old_containerd = d.containerd_pid
            assert old_containerd and _cmdline(old_containerd)[0].startswith(str(old.bin)), (
                "not the old release's"
            )
            d.docker_ok("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKER)
            assert (
                d.docker("run", "--name", "done3", "busybox", "sh", "-c", "echo done; exit 3").returncode == 3
            )
            d.docker_ok("run", "-d", "--name", "seven", "busybox", "sh", "-c", SEVEN)
            d.docker_ok(
                "run", "-d", "--name", "always", "--restart=always", "busybox", "sh", "-c", "sleep 2; exit 3"
            )
            d.docker_ok(
                "run", "-d", "--name", "unless", "--restart=unless-stopped", "busybox", "sleep", "600"
            )
            follower = _docker_popen(d, "logs", "-f", "ticker")
            seen_before = _read_lines(follower, lambda line: line == "line 2\n")
            pids = {name: inspect(d, name)["State"]["Pid"] for name in ("ticker", "seven", "unless")}
            restarts_before = inspect(d, "always")["RestartCount"]
            shims = {name: _shim_pid(d, name) for name in ("ticker", "unless")}
            assert all(str(old.source) in " ".join(_cmdline(pid)) for pid in shims.values()), shims

            # The old daemons go: pydockerd, then the pycontainerd it left running.
            assert os.path.exists(f"/proc/{pids['seven']}"), "`seven` exited before the daemons went"
            always_started = inspect(d, "always")["State"]["StartedAt"]
            _stop(d.pid, stop_signal)
            _stop(old_containerd, stop_signal)
            follower.wait(timeout=20)  # its daemon went away
            assert follower.stdout is not None
            seen_before += follower.stdout.readlines()
            _release(pids["seven"])
            until(
                "`seven` to exit while no daemon runs",
                lambda: not os.path.exists(f"/proc/{pids['seven']}"),
                timeout=30,
            )
            assert all(os.path.exists(f"/proc/{pid}") for pid in (pids["ticker"], pids["unless"]))

            # This build on the same roots.
            wait_ready(d, start_pydockerd(d))
            build = d.docker_ok(
                "version", "--format", "{{.Server.Platform.Name}} {{.Server.GitCommit}}"
            ).strip()
            assert build == f"pydocker 0.1.0 {_head()}", build  # the build that runs now
            assert d.docker_ok("info", "--format", "{{.LiveRestoreEnabled}}").strip() == "true"
            new_containerd = d.containerd_pid
            assert new_containerd and new_containerd != old_containerd
            assert _cmdline(new_containerd)[0].startswith(str(REPO / ".venv")), _cmdline(new_containerd)
            # The old release's shims serve on, reconnected.
            assert {name: _shim_pid(d, name) for name in shims} == shims

            # Same processes, shown running.
            for name in ("ticker", "unless"):
                state = inspect(d, name)["State"]
                assert (state["Status"], state["Pid"]) == ("running", pids[name]), (name, state)
            rows = dict(
                line.split(" ", 1)
                for line in d.docker_ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
            )
            assert rows["ticker"].startswith("Up") and rows["unless"].startswith("Up"), rows
            assert rows["done3"].startswith("Exited (3)") and rows["seven"].startswith("Exited (7)"), rows
            # What exited in between: its code, when, and its last words.
            seven = inspect(d, "seven")["State"]
            assert (seven["Status"], seven["ExitCode"]) == ("exited", 7), seven
            assert d.docker_ok("logs", "seven") == "bye\n"
            assert d.docker_ok("wait", "seven").strip() == "7"
            assert d.docker_ok("logs", "done3") == "done\n" and inspect(d, "done3")["State"]["ExitCode"] == 3
            # Restart policies go on: `always` is restarted by this build.
            until(
                "`always` to be restarted",
                lambda: inspect(d, "always")["RestartCount"] > restarts_before,
                timeout=60,
            )
            # ... and started: a restart that failed (as when a kill -9 caught it created, not started,
            # and the sandbox its restart made was released as stale: exit 126) starts nothing.
            until("`always` to start again", lambda: _started_since(d, "always", always_started), timeout=60)

            # Logs: continuous. What the follower saw before is the start of the log, every line
            # once and in order, and a new follower goes on from there.
            new_follower = _docker_popen(d, "logs", "-f", "--tail", "1", "ticker")
            try:
                last = _numbers(_read_lines(new_follower, lambda line: True))[0]
                _read_lines(new_follower, lambda line: int(line.split()[1]) >= last + 2)
            finally:
                new_follower.kill()
                new_follower.communicate()
            logged = d.docker_ok("logs", "ticker").splitlines(keepends=True)
            assert _numbers(logged) == list(range(len(logged))), logged
            assert logged[: len(seen_before)] == seen_before
            assert _numbers(logged)[-1] >= last + 2 and len(logged) > len(seen_before)

            # exec, stop, wait and restart through the old release's shims.
            res = d.docker("exec", "ticker", "sh", "-c", "echo in $(hostname); exit 4")
            assert (
                res.returncode == 4 and res.stdout == f"in {inspect(d, 'ticker')['Config']['Hostname']}\n"
            ), res
            waiter = _docker_popen(d, "wait", "ticker")
            d.docker_ok("stop", "-t", "1", "ticker")
            assert waiter.communicate(timeout=30)[0].strip() == "137"
            assert inspect(d, "ticker")["State"]["Status"] == "exited"
            d.docker_ok("restart", "-t", "1", "unless")
            restarted = inspect(d, "unless")["State"]
            assert restarted["Running"] and restarted["Pid"] != pids["unless"]
            assert d.docker_ok("run", "--rm", "busybox", "echo", "new container") == "new container\n"

            # Every store now in the current layout.
            data = d.data_root
            for record in (data / "containers").glob("*/config.v2.json"):
                assert json.loads(record.read_text())["Version"] == 1, record
            for database in (
                data / "containerd" / "metadata.db",
                data / "containerd" / "snapshots" / "overlayfs" / "metadata.db",
            ):
                with sqlite3.connect(database) as conn:
                    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1, database
        except BaseException:
            _print_logs(d)  # shown with the failure: the daemons' logs go with their roots
            raise


def _print_logs(d: PyDockerd) -> None:
    for bundle in sorted((d.exec_root / "containerd" / "state" / "tasks").glob("*/*")):
        print(f"bundle {bundle.name[:12]}: {sorted(p.name for p in bundle.iterdir())}")
    for log in (d.log_path, d.exec_root / "containerd" / "pycontainerd.log"):
        if log.exists():
            print(
                f"--- {log} ---\n" + "".join(log.read_text(errors="replace").splitlines(keepends=True)[-150:])
            )


def _shim_pid(d: PyDockerd, name: str) -> int:
    """The pid of the shim serving container NAME (its pid file in pycontainerd's state)."""
    cid = inspect(d, name)["Id"]
    (pid_file,) = (d.exec_root / "containerd" / "state" / "tasks").glob(f"*/{cid}/shim.pid")
    return int(pid_file.read_text())


def _head() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip()
