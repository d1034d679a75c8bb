"""Interactive sessions on a real pseudo-terminal: `run -it`, `exec -it`, `attach`, the
terminal size and its changes (SIGWINCH -> resize), and the detach keys."""

from __future__ import annotations

import json
import time

from tests.cli.cli_helpers import CLI, Names, PtySession

PROMPT = r"/ # "


def _session(cli: CLI, *args: str, rows: int = 24, cols: int = 80) -> PtySession:
    return cli.tty(*args, rows=rows, cols=cols)


def test_run_it_stdin_size_resize_and_exit_code(cli: CLI, names: Names) -> None:
    name = names.container("it")
    s = _session(cli, "run", "-it", "--rm", "--name", name, "busybox", "sh", rows=30, cols=100)
    try:
        s.expect(PROMPT)
        s.send(b"echo $((6*7))\r")
        s.expect(r"42\r\n")
        s.expect_size(30, 100)
        s.resize(40, 120)  # the kernel sends SIGWINCH to pydocker, which resizes the container
        s.expect_size(40, 120, previous=(30, 100))
        s.send(b"tty; exit 3\r")
        s.expect(r"/dev/pts/\d+")
        assert s.wait() == 3
    finally:
        s.close()
    assert cli.ok("ps", "-aq", "--filter", f"name={name}") == ""


def test_run_it_detach_keys_leave_container_running(cli: CLI, names: Names) -> None:
    name = names.container("det")
    s = _session(cli, "run", "-it", "--name", name, "busybox", "sh")
    try:
        s.expect(PROMPT)
        s.send(b"echo before-detach\r")
        s.expect("before-detach\r\n")
        s.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert s.wait() == 0
    finally:
        s.close()
    assert cli.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"

    # attach again, see the same shell, detach with custom keys from the config file
    cli.config_dir.mkdir()
    (cli.config_dir / "config.json").write_text(json.dumps({"detachKeys": "ctrl-x,y"}))
    s = _session(cli, "attach", name)
    try:
        s.until_answered(b"echo attached-$((1+1))\r", "attached-2\r\n")
        s.send(b"\x18y")  # ctrl-x y
        assert s.wait() == 1
        assert "read escape sequence" in s.text()
    finally:
        s.close()
    assert cli.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"

    # and a third time, leaving by exiting the shell: attach reports its exit code
    s = _session(cli, "attach", "--detach-keys", "ctrl-a", name)
    try:
        s.until_answered(b"echo attached-$((1+2))\r", "attached-3\r\n")
        s.send(b"exit 5\r")
        assert s.wait() == 5
    finally:
        s.close()
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name) == "exited 5\n"


def test_exec_it(cli: CLI, names: Names) -> None:
    name = names.container("ex")
    cli.ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    s = _session(cli, "exec", "-it", "-e", "PDC=exec-env", "-w", "/etc", name, "sh", rows=33, cols=91)
    try:
        s.expect(PROMPT.replace("/", "/etc"))
        s.send(b"echo $PDC; pwd\r")
        s.expect(r"exec-env\r\n/etc\r\n")
        s.expect_size(33, 91)
        s.resize(20, 70)
        s.expect_size(20, 70, previous=(33, 91))
        s.send(b"exit 7\r")
        assert s.wait() == 7
    finally:
        s.close()


def test_exec_without_tty(cli: CLI, names: Names) -> None:
    name = names.container("ex2")
    cli.ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    res = cli.run("exec", name, "sh", "-c", "echo o; echo e >&2; exit 2")
    assert (res.returncode, res.stdout, res.stderr) == (2, "o\n", "e\n")
    assert (
        cli.ok("exec", "-i", "-u", "nobody", name, "sh", "-c", "cat; id -u", input="piped\n")
        == "piped\n65534\n"
    )
    assert cli.run("exec", name, "pdc-no-such-command").returncode in (126, 127)
    assert cli.ok("exec", "-d", name, "touch", "/tmp/from-detached-exec") == ""
    deadline = time.monotonic() + 10
    while cli.run("exec", name, "test", "-e", "/tmp/from-detached-exec").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_input_device_not_a_tty(cli: CLI) -> None:
    res = cli.run("run", "-it", "--rm", "busybox", "true", input="")
    assert res.returncode == 1 and res.stderr == "the input device is not a TTY\n"
