"""`pydocker run` and friends against the reference engine: output and exit codes, the
layered fixture image, exit codes 125/126/127, detached runs with logs -f and stop, stdin
through a pipe, run options reaching the container config, --rm, signal proxying."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.cli.cli_helpers import CLI, SHARED_IMAGES, Names, explain
from tests.dockerd_ref import without_host_warnings


def test_run_rm_output_and_exit_code(cli: CLI, names: Names) -> None:
    name = names.container("rm")
    res = cli.run("run", "--rm", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3, explain(res)
    assert res.stdout == "out\n" and without_host_warnings(res.stderr) == "err\n"
    assert cli.ok("ps", "-aq", "--filter", f"name={name}") == ""  # --rm removed it


def test_run_layered_prints_readme_lines(cli: CLI, names: Names) -> None:
    out = cli.ok("load", "-i", str(SHARED_IMAGES / "layered.tar"), timeout=120)
    assert out == "Loaded image: layered:latest\n"
    res = cli.run("run", "--rm", "layered")
    assert res.returncode == 0, explain(res)
    assert res.stdout == "hello from layered\n65534\n/data\n"
    res = cli.run("run", "--rm", "layered", "ls /data/drop; ls /bin/vi")
    assert (
        res.stdout == "b\nk-sym\n"
        and without_host_warnings(res.stderr) == "ls: /bin/vi: No such file or directory\n"
    ), explain(res)
    assert res.returncode == 1


def test_missing_command_127_and_not_executable_126(cli: CLI, names: Names) -> None:
    res = cli.run("run", "--rm", "--name", names.container("nf"), "busybox", "pdc-no-such-command")
    assert res.returncode == 127, explain(res)
    assert without_host_warnings(res.stderr).startswith("pydocker: Error response from daemon: ")
    assert "executable file not found" in res.stderr
    res = cli.run("run", "--rm", "--name", names.container("dir"), "busybox", "/etc")
    assert res.returncode == 126, explain(res)
    # the failed --rm runs leave nothing behind
    assert cli.ok("ps", "-aq", "--filter", f"name={names.tag}") == ""


def test_run_detached_logs_follow_and_stop(cli: CLI, names: Names) -> None:
    name = names.container("logs")
    cid = cli.ok(
        "run", "-d", "--name", name, "busybox", "sh", "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done",
    ).strip()  # fmt: skip
    assert len(cid) == 64
    follower = cli.popen("logs", "-f", name)
    assert follower.stdout is not None
    first = follower.stdout.readline()
    assert first.startswith(b"tick "), first
    assert cli.ok("stop", "-t", "5", name) == f"{name}\n"
    rest, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0
    assert rest.rstrip().endswith(b"bye")  # logs -f ended with the container
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name) == "exited 0\n"
    logs = cli.ok("logs", "--tail", "1", name)
    assert logs == "bye\n"
    stamped = cli.ok("logs", "-t", "--tail", "1", name)
    assert stamped.endswith(" bye\n") and stamped[:4].isdigit() and "T" in stamped[:20]


def test_logs_separates_stdout_and_stderr(cli: CLI, names: Names) -> None:
    name = names.container("split")
    cli.ok("run", "--name", name, "busybox", "sh", "-c", "echo to-out; echo to-err >&2")
    res = cli.run("logs", name)
    assert res.stdout == "to-out\n" and res.stderr == "to-err\n", explain(res)
    assert cli.ok("logs", "--since", "1h", name) == "to-out\n"
    assert cli.ok("logs", "--until", "1h", name) == ""


def test_run_stdin_pipe(cli: CLI, names: Names) -> None:
    res = cli.run("run", "-i", "--rm", "--name", names.container("in"), "busybox", "sh", "-c", "tr a-z A-Z; exit 4",
                  input="hello stdin\n")  # fmt: skip
    assert res.returncode == 4 and res.stdout == "HELLO STDIN\n", explain(res)
    blob = bytes(range(256)) * 4096  # 1 MiB including ctrl-p ctrl-q: only a TTY session detaches
    big = cli.run_bytes("run", "-i", "--rm", "--name", names.container("big"), "busybox", "cat", input=blob)
    assert big.returncode == 0 and big.stdout == blob


def test_run_options_reach_the_container(cli: CLI, names: Names, tmp_path: object) -> None:
    from pathlib import Path

    host_dir = Path(str(tmp_path)) / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host data\n")
    env_file = Path(str(tmp_path)) / "env.list"
    env_file.write_text("# comment\nFROM_FILE=yes\n\n")
    name = names.container("opts")
    res = cli.run(
        "run", "--name", name, "-e", "A=1", "--env-file", str(env_file), "-w", "/tmp", "-u", "1:2",
        "-l", "pdc.label=x", "--hostname", "pdchost", "-m", "64m", "--cpus", "0.5", "--pids-limit", "20",
        "--restart", "on-failure:2", "-v", f"{host_dir}:/mnt/host:ro", "--tmpfs", "/scratch:size=1m",
        "--read-only", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--init", "--stop-signal", "SIGUSR1",
        "--stop-timeout", "7", "--entrypoint", "/bin/sh", "busybox",
        "-c", "echo $A $FROM_FILE; pwd; id -u; hostname; cat /mnt/host/from-host; touch /x 2>/dev/null || echo ro",
    )  # fmt: skip
    assert res.returncode == 0, explain(res)
    assert res.stdout == "1 yes\n/tmp\n1\npdchost\nhost data\nro\n"
    info = json.loads(cli.ok("inspect", name))[0]
    hc, cfg = info["HostConfig"], info["Config"]
    assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 500_000_000 and hc["PidsLimit"] == 20
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert hc["Binds"] == [f"{host_dir}:/mnt/host:ro"] and hc["Tmpfs"] == {"/scratch": "size=1m"}
    assert (
        hc["ReadonlyRootfs"] and hc["Init"] and hc["CapAdd"] == ["NET_ADMIN"] and hc["CapDrop"] == ["CHOWN"]
    )
    assert cfg["StopSignal"] == "SIGUSR1" and cfg["StopTimeout"] == 7 and cfg["Hostname"] == "pdchost"
    assert cfg["Labels"] == {"pdc.label": "x"} and cfg["Entrypoint"] == ["/bin/sh"] and cfg["User"] == "1:2"
    assert "A=1" in cfg["Env"] and "FROM_FILE=yes" in cfg["Env"]


def test_create_then_start_attached(cli: CLI, names: Names) -> None:
    name = names.container("cr")
    cid = cli.ok("create", "--name", name, "busybox", "sh", "-c", "echo started; exit 6").strip()
    assert len(cid) == 64
    assert cli.ok("inspect", "-f", "{{.State.Status}}", name) == "created\n"
    res = cli.run("start", "-a", name)
    assert res.returncode == 6 and res.stdout == "started\n", explain(res)
    name2 = names.container("cri")
    cli.ok("create", "-i", "--name", name2, "busybox", "cat")
    res = cli.run("start", "-ai", name2, input="through start\n")
    assert res.returncode == 0 and res.stdout == "through start\n", explain(res)


def test_sig_proxy_forwards_signals(cli: CLI, names: Names) -> None:
    name = names.container("sig")
    proc = cli.popen("run", "--rm", "--name", name, "busybox", "sh", "-c",
                     "trap 'echo got-term; exit 9' TERM; echo ready; sleep 60 & wait")  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 9 and out == b"got-term\n"


def test_restart_and_rm_force(cli: CLI, names: Names) -> None:
    name = names.container("rs")
    cli.ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    started = cli.ok("inspect", "-f", "{{.State.StartedAt}}", name)
    time.sleep(1.1)
    assert cli.ok("restart", "-t", "0", name) == f"{name}\n"
    assert cli.ok("inspect", "-f", "{{.State.StartedAt}}", name) != started
    res = cli.run("rm", name)
    assert res.returncode == 1 and res.stderr.startswith("Error response from daemon: "), explain(res)
    assert cli.ok("rm", "-f", name) == f"{name}\n"
    assert cli.ok("ps", "-aq", "--filter", f"name={name}") == ""


def test_wait_prints_exit_codes(cli: CLI, names: Names) -> None:
    a, b = names.container("wa"), names.container("wb")
    cli.ok("run", "-d", "--name", a, "busybox", "sh", "-c", "sleep 1; exit 3")
    cli.ok("run", "-d", "--name", b, "busybox", "sh", "-c", "exit 5")
    res = cli.run("wait", a, b)
    assert res.returncode == 0 and res.stdout == "3\n5\n", explain(res)


def test_kill_with_signal(cli: CLI, names: Names) -> None:
    name = names.container("kill")
    cli.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
           "trap 'echo usr1; exit 12' USR1; echo up; while :; do sleep 0.1; done")  # fmt: skip
    _wait_for_log(cli, name, "up")
    assert cli.ok("kill", "-s", "USR1", name) == f"{name}\n"
    assert cli.ok("wait", name) == "12\n"
    assert cli.ok("logs", name) == "up\nusr1\n"
    other = names.container("kill9")
    cli.ok("run", "-d", "--name", other, "busybox", "sleep", "600")
    cli.ok("kill", other)
    assert cli.ok("inspect", "-f", "{{.State.ExitCode}}", other) == "137\n"


def _wait_for_log(cli: CLI, name: str, text: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in cli.ok("logs", name):
        assert time.monotonic() < deadline, f"{text!r} never logged by {name}"
        time.sleep(0.1)


def test_run_missing_image_with_pull_never(cli: CLI) -> None:
    res = subprocess.run(
        cli.argv("run", "--pull", "never", "--rm", "pdc-absent:latest"),
        capture_output=True,
        text=True,
        env=cli.env,
    )
    assert res.returncode == 125 and "No such image" in res.stderr


def test_run_with_stdin_closed(cli: CLI, names: Names) -> None:
    """Started with fd 0 closed (`<&-`), pydocker must not read its own socket as input."""
    import os

    res = subprocess.run(
        cli.argv("run", "-i", "--rm", "--name", names.container("closed"), "busybox", "sh", "-c", "cat; echo done"),
        capture_output=True, text=True, env=cli.env, timeout=60, preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout == "done\n", res
