"""`docker exec` against pydockerd, driven by the real Docker CLI (v28) and the docker SDK for
Python: interactive sessions on a pty (size, resize, detach keys), piped stdin, detached
execs, options (-e -w -u), exit codes and the runtime's error for a command that cannot run,
the exec inspect document, the container's ExecIDs, events, and the errors for execs into
containers that do not run. The expectations are what the reference dockerd (20.10) does
(checked by pointing this module's fixture at tests/dockerd_ref.py's reference_dockerd).

One pydockerd per module; the harness fails the module on any leaked process, cgroup,
mount or FIFO directory (exec FIFOs live in the container's FIFO directory).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from tests.cli.cli_helpers import PtySession
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until

DOCKER = "/usr/local/bin/docker"
PROMPT = r"/ # "


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


class CLI:
    def __init__(self, engine: PyDockerd) -> None:
        self.engine = engine
        self.tag = uuid.uuid4().hex[:8]
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(engine.workdir),
            "DOCKER_CONFIG": str(engine.workdir / f"cli-{self.tag}"),
            "LANG": "C.UTF-8",
        }
        self.names: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, "-H", f"unix://{self.engine.socket}", *args]

    def __call__(
        self, *args: str, input: bytes = b"", timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*args), input=input, capture_output=True, timeout=timeout, env=self.env
        )

    def ok(self, *args: str, input: bytes = b"") -> str:
        done = self(*args, input=input)
        assert done.returncode == 0, (
            f"docker {' '.join(args)} -> {done.returncode}: {done.stderr!r}\n{self.engine.log_tail()}"
        )
        return done.stdout.decode()

    def sleeper(self, label: str) -> str:
        name = f"ex-{label}-{self.tag}"
        self.names.append(name)
        self.ok("run", "-d", "--name", name, "busybox", "sleep", "600")
        return name

    def tty(self, *args: str, rows: int = 24, cols: int = 80) -> PtySession:
        return PtySession(self.argv(*args), self.env, rows, cols)


@pytest.fixture
def cli(engine: PyDockerd) -> Iterator[CLI]:
    c = CLI(engine)
    yield c
    if c.names:
        c("rm", "-f", *c.names)


@pytest.fixture
def sdk(engine: PyDockerd) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41")
    yield client
    client.close()


def exec_ids(cli: CLI, name: str) -> list[str]:
    return json.loads(cli.ok("inspect", "-f", "{{json .ExecIDs}}", name)) or []


# --- the Docker CLI -------------------------------------------------------------------------


def test_exec_it_size_env_workdir_resize_and_exit_code(cli: CLI) -> None:
    name = cli.sleeper("it")
    s = cli.tty("exec", "-it", "-e", "PDX=from-exec", "-w", "/etc", name, "sh", rows=33, cols=91)
    try:
        s.expect(r"/etc # ")
        s.send(b"echo $PDX $TERM; pwd; tty\r")
        s.expect(r"from-exec xterm\r\n/etc\r\n/dev/pts/\d+\r\n")
        s.expect_size(33, 91)
        s.resize(20, 70)  # SIGWINCH -> the CLI posts /exec/{id}/resize
        s.expect_size(20, 70, previous=(33, 91))
        s.send(b"exit 7\r")
        assert s.wait() == 7
    finally:
        s.close()
    assert exec_ids(cli, name) == []


def test_exec_detach_keys_leave_the_process_running(cli: CLI, sdk: docker.DockerClient) -> None:
    name = cli.sleeper("det")
    s = cli.tty("exec", "-it", name, "sh")
    try:
        s.expect(PROMPT)
        s.send(b"echo before-detach\r")
        s.expect(r"before-detach\r\n")
        s.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert s.wait() == 1
        assert "read escape sequence" in s.text()
    finally:
        s.close()
    (left,) = exec_ids(cli, name)
    info = sdk.api.exec_inspect(left)
    assert info["Running"] is True and info["ExitCode"] is None and info["Pid"] > 0
    assert info["ProcessConfig"] == {"tty": True, "entrypoint": "sh", "arguments": [], "privileged": False}

    s = cli.tty("exec", "-it", "--detach-keys", "ctrl-x,y", name, "sh")
    try:
        s.expect(PROMPT)
        s.send(b"\x10\x11echo still-here\r")  # the default keys mean nothing now
        s.expect(r"still-here\r\n")
        s.send(b"\x18y")
        assert s.wait() == 1
    finally:
        s.close()
    assert len(exec_ids(cli, name)) == 2


def test_exec_output_streams_and_exit_codes(cli: CLI) -> None:
    name = cli.sleeper("codes")
    res = cli("exec", name, "sh", "-c", "echo to-out; echo to-err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, b"to-out\n", b"to-err\n")
    res = cli("exec", name, "pdx-no-such-command")
    assert res.returncode == 126
    assert res.stdout.startswith(b"OCI runtime exec failed: ") and res.stdout.endswith(b": unknown\r\n")
    assert b'"pdx-no-such-command": executable file not found in $PATH' in res.stdout
    res = cli("exec", name, "/etc")
    assert res.returncode == 126 and res.stdout.startswith(b"OCI runtime exec failed: ")
    big = cli("exec", name, "sh", "-c", "head -c 3000000 /dev/zero")
    assert big.returncode == 0 and big.stdout == bytes(3000000)


def test_exec_options_env_workdir_user(cli: CLI) -> None:
    name = f"ex-opts-{cli.tag}"
    cli.names.append(name)
    cli.ok(
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "KEEP=container",
        "-e",
        "OVER=container",
        "-w",
        "/tmp",
        "busybox",
        "sleep",
        "600",
    )
    out = cli.ok(
        "exec", "-e", "OVER=exec", "-e", "NEW=1", name, "sh", "-c", "echo $KEEP $OVER $NEW $TERM; pwd; id -u"
    )
    assert out == "container exec 1\n/tmp\n0\n"  # no TERM without -t; the container's working dir
    assert (
        cli.ok("exec", "-w", "/etc", "-u", "nobody", name, "sh", "-c", "pwd; id -u; id -g")
        == "/etc\n65534\n65534\n"
    )
    assert cli.ok("exec", "-u", "1234:5678", name, "id") == "uid=1234 gid=5678 groups=5678\n"
    caps = cli.ok("exec", "-u", "nobody", name, "grep", "CapEff", "/proc/self/status")
    assert caps.split() == ["CapEff:", "0000000000000000"]
    root_caps = cli.ok("exec", name, "grep", "CapEff", "/proc/self/status")
    assert root_caps.split()[1] != "0000000000000000"
    res = cli("exec", "-u", "pdx-nobody-at-all", name, "true")
    assert res.returncode == 126
    assert b"unable to find user pdx-nobody-at-all: no matching entries in passwd file" in res.stdout


def test_exec_stdin_pipe(cli: CLI) -> None:
    name = cli.sleeper("in")
    assert cli.ok("exec", "-i", name, "cat", input=b"x\n") == "x\n"
    assert (
        cli.ok("exec", "-i", name, "sh", "-c", "tr a-z A-Z; echo after-eof", input=b"piped\n")
        == "PIPED\nafter-eof\n"
    )
    blob = bytes(range(256)) * 4096  # 1 MiB, ctrl-p ctrl-q included: only a terminal detaches
    big = cli("exec", "-i", name, "cat", input=blob)
    assert big.returncode == 0 and big.stdout == blob
    # Without -i the exec's stdin is empty, whatever the CLI was given.
    assert cli.ok("exec", name, "cat", input=b"ignored\n") == ""


def test_exec_detached(cli: CLI, sdk: docker.DockerClient) -> None:
    name = cli.sleeper("d")
    assert cli.ok("exec", "-d", name, "sh", "-c", "echo detached > /tmp/mark; sleep 2") == ""
    until("the detached exec's file", lambda: cli("exec", name, "cat", "/tmp/mark").stdout == b"detached\n")
    (running,) = exec_ids(cli, name)
    assert sdk.api.exec_inspect(running)["Running"] is True
    until("the detached exec's end", lambda: exec_ids(cli, name) == [])
    info = sdk.api.exec_inspect(running)
    assert (info["Running"], info["ExitCode"], info["CanRemove"]) == (False, 0, False)


def test_background_process_does_not_hold_the_session(cli: CLI) -> None:
    """As dockerd: once the exec's own process exits, output still held open by a child is
    waited for two seconds, then the session ends with the exit code."""
    name = cli.sleeper("bg")
    started = time.monotonic()
    res = cli("exec", name, "sh", "-c", "sleep 60 & echo forked; exit 4")
    assert (res.returncode, res.stdout) == (4, b"forked\n")
    assert time.monotonic() - started < 10


def test_exec_ends_when_the_container_dies(cli: CLI) -> None:
    name = cli.sleeper("die")
    proc = subprocess.Popen(
        cli.argv("exec", name, "sleep", "300"), env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        # Created is not yet running: kill only once the exec's process is there.
        until("the exec to run", lambda: "sleep 300" in cli.ok("top", name))
        cli.ok("kill", name)
        assert proc.wait(timeout=30) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert exec_ids(cli, name) == []


def test_exec_into_containers_that_do_not_run(cli: CLI) -> None:
    created = f"ex-created-{cli.tag}"
    cli.names.append(created)
    cid = cli.ok("create", "--name", created, "busybox", "sleep", "600").strip()
    res = cli("exec", created, "true")
    assert res.returncode == 1
    assert res.stderr == f"Error response from daemon: Container {cid} is not running\n".encode()
    paused = cli.sleeper("paused")
    cli.ok("pause", paused)
    res = cli("exec", paused, "true")
    assert (
        res.stderr
        == f"Error response from daemon: Container {paused} is paused, unpause the container before exec\n".encode()
    )
    cli.ok("unpause", paused)
    res = cli("exec", f"ex-absent-{cli.tag}", "true")
    assert res.returncode == 1 and b"No such container: ex-absent-" in res.stderr


def test_exec_events(cli: CLI) -> None:
    name = cli.sleeper("ev")
    since = str(time.time() - 1)
    assert cli("exec", name, "sh", "-c", "exit 5").returncode == 5
    until_ts = str(time.time() + 1)

    def events() -> list[dict[str, Any]]:
        out = cli.ok(
            "events",
            "--since",
            since,
            "--until",
            until_ts,
            "--filter",
            f"container={name}",
            "--format",
            "{{json .}}",
        )
        return [json.loads(line) for line in out.splitlines()]

    until("exec_die", lambda: any(e["Action"] == "exec_die" for e in events()), timeout=10)
    seen = [e for e in events() if e["Action"].startswith("exec_")]
    assert [e["Action"] for e in seen] == [
        "exec_create: sh -c exit 5",
        "exec_start: sh -c exit 5",
        "exec_die",
    ]
    exec_id = seen[0]["Actor"]["Attributes"]["execID"]
    assert len(exec_id) == 64
    for e in seen:
        attrs = e["Actor"]["Attributes"]
        assert attrs["execID"] == exec_id and attrs["name"] == name and attrs["image"] == "busybox"
        assert e["Type"] == "container" and e["status"] == e["Action"]
    assert seen[2]["Actor"]["Attributes"]["exitCode"] == "5"


# --- attach, whose stdin plumbing exec start shares -------------------------------------------


def test_run_i_stdin_through_attach(cli: CLI) -> None:
    """`docker run -i` attaches before the container starts: stdin waits for the task, and the
    client's EOF reaches the container (StdinOnce) while its output still comes back."""
    res = cli(
        "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z; echo after-eof; exit 4", input=b"hello\n"
    )
    assert (res.returncode, res.stdout) == (4, b"HELLO\nafter-eof\n")
    blob = bytes(range(256)) * 4096
    big = cli("run", "-i", "--rm", "busybox", "cat", input=blob)
    assert big.returncode == 0 and big.stdout == blob


def test_run_it_detach_and_attach_again(cli: CLI) -> None:
    name = f"ex-att-{cli.tag}"
    cli.names.append(name)
    s = cli.tty("run", "-it", "--name", name, "busybox", "sh", rows=30, cols=100)
    try:
        s.expect(PROMPT)
        s.send(b"echo $((6*7))\r")
        s.expect(r"42\r\n")
        s.expect_size(30, 100)
        s.send(b"\x10\x11")
        assert s.wait() == 0
    finally:
        s.close()
    assert cli.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"
    s = cli.tty("attach", name)
    try:
        time.sleep(0.5)
        s.send(b"echo again-$((1+1))\r")
        s.expect(r"again-2\r\n")
        s.send(b"\x10\x11")
        assert s.wait() == 1 and "read escape sequence" in s.text()  # the CLI's own exit code for a detach
    finally:
        s.close()
    s = cli.tty("attach", name)
    try:
        time.sleep(0.5)
        s.send(b"exit 5\r")
        assert s.wait() == 5
    finally:
        s.close()
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name) == "exited 5\n"


# --- the docker SDK for Python --------------------------------------------------------------


def test_sdk_exec_run(sdk: docker.DockerClient, cli: CLI) -> None:
    c = sdk.containers.get(cli.sleeper("sdk"))
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.exit_code, r.output) == (3, b"out\nerr\n")
    r = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert (r.exit_code, r.output) == (0, (b"out\n", b"err\n"))
    r = c.exec_run(
        ["sh", "-c", "echo $A; pwd; id -u"], environment={"A": "va"}, workdir="/tmp", user="nobody"
    )
    assert (r.exit_code, r.output) == (0, b"va\n/tmp\n65534\n")
    r = c.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"], stream=True)
    assert b"".join(r.output) == b"1\n2\n3\n"
    r = c.exec_run(["tty"], tty=True)
    assert r.exit_code == 0 and r.output.startswith(b"/dev/pts/") and r.output.endswith(b"\r\n")
    r = c.exec_run(["pdx-no-such-command"])
    assert r.exit_code == 126 and r.output.startswith(b"OCI runtime exec failed: ")
    r = c.exec_run(["sleep", "1"], detach=True)
    assert (r.exit_code, r.output) == (None, "")


def test_sdk_exec_socket_stdin(sdk: docker.DockerClient, cli: CLI) -> None:
    c = sdk.containers.get(cli.sleeper("sock"))
    r = c.exec_run(["sh", "-c", "cat; echo eof-seen"], stdin=True, socket=True)
    sock = r.output._sock
    try:
        sock.sendall(b"via socket\n")
        sock.shutdown(socket.SHUT_WR)  # a half-close is the exec's stdin EOF
        data = b""
        sock.settimeout(30)
        while chunk := sock.recv(65536):
            data += chunk
    finally:
        sock.close()
    # Multiplexed frames (no tty): stream 1, three zero bytes, a big-endian length, the bytes.
    payload = b""
    while data:
        assert data[:4] == b"\x01\x00\x00\x00", data
        size = int.from_bytes(data[4:8], "big")
        payload, data = payload + data[8 : 8 + size], data[8 + size :]
    assert payload == b"via socket\neof-seen\n"


def test_sdk_exec_inspect_and_errors(sdk: docker.DockerClient, cli: CLI) -> None:
    name = cli.sleeper("insp")
    c = sdk.containers.get(name)
    api = sdk.api
    created = api.exec_create(
        c.id, ["sh", "-c", "sleep 1; exit 9"], tty=True, user="nobody", environment=["X=1"], workdir="/tmp",
        detach_keys="ctrl-a",
    )  # fmt: skip
    eid = created["Id"]
    assert len(eid) == 64
    info = api.exec_inspect(eid)
    assert info == {
        "ID": eid, "Running": False, "ExitCode": None,
        "ProcessConfig": {"tty": True, "entrypoint": "sh", "arguments": ["-c", "sleep 1; exit 9"], "privileged": False, "user": "nobody"},
        "OpenStdin": False, "OpenStderr": True, "OpenStdout": True, "CanRemove": False, "ContainerID": c.id,
        "DetachKeys": base64.b64encode(b"\x01").decode(), "Pid": 0,
    }  # fmt: skip
    assert exec_ids(cli, name) == [eid]  # listed from its creation
    api.exec_start(eid, detach=True)
    info = api.exec_inspect(eid)
    assert info["Running"] is True and info["Pid"] > 0
    api.exec_resize(eid, height=10, width=40)
    with pytest.raises(docker.errors.APIError) as again:
        api.exec_start(eid, detach=True)
    assert again.value.status_code == 409 and f"Exec command {eid} is already running" in str(
        again.value.explanation
    )
    until("exit 9", lambda: api.exec_inspect(eid)["ExitCode"] == 9)
    assert api.exec_inspect(eid)["Running"] is False
    assert exec_ids(cli, name) == []
    with pytest.raises(docker.errors.APIError) as ran:
        api.exec_start(eid, detach=True)
    assert (
        ran.value.status_code == 409 and ran.value.explanation == f"Error: Exec command {eid} has already run"
    )

    with pytest.raises(docker.errors.APIError) as missing:
        api.exec_inspect("pdx-no-such-exec")
    assert (
        missing.value.status_code == 404
        and missing.value.explanation == "No such exec instance: pdx-no-such-exec"
    )
    with pytest.raises(docker.errors.APIError) as empty:
        api.exec_create(c.id, [])
    assert empty.value.status_code == 400 and empty.value.explanation == "No exec command specified"
    with pytest.raises(docker.errors.APIError) as keys:
        api.exec_create(c.id, ["true"], detach_keys="bad")
    # dockerd answers this bad input with a 500; pydockerd's rule is a 400 for the client's errors.
    assert (
        keys.value.status_code in (400, 500)
        and keys.value.explanation == "Invalid escape keys (bad) provided"
    )
    with pytest.raises(docker.errors.APIError) as bad:
        api.exec_start(api.exec_create(c.id, ["pdx-no-such-command"])["Id"], detach=True)
    assert bad.value.status_code == 400 and "executable file not found" in str(bad.value.explanation)
    c.stop(timeout=0)
    with pytest.raises(docker.errors.APIError) as stopped:
        c.exec_run(["true"])
    assert (
        stopped.value.status_code == 409 and stopped.value.explanation == f"Container {c.id} is not running"
    )
