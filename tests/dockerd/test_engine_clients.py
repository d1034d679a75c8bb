"""Proof by real clients: the Docker CLI 28 (/usr/local/bin/docker, negotiates the API down to
1.41), Debian's docker client 20.10 (/usr/bin/docker) and the docker SDK for Python, each
pointed at pydockerd's socket, doing what a Docker user does every day.

One pydockerd per module (busybox and layered loaded); every test names its containers
uniquely and removes them. The harness fails the module on any leaked process, cgroup,
mount or FIFO directory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk  # as: the `docker` fixture below is the CLI
import pytest

from tests.cli.cli_helpers import PtySession
from tests.dockerd_ref import SHARED_IMAGES, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until

CLIENTS = {"docker28": "/usr/local/bin/docker", "docker20": "/usr/bin/docker"}


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine(images=(SHARED_IMAGES / "busybox.tar", SHARED_IMAGES / "layered.tar")) as daemon:
        yield daemon


class Docker:
    """One docker CLI binary against pydockerd; containers it names are removed afterwards."""

    def __init__(self, binary: str, engine: PyDockerd) -> None:
        self.binary = binary
        self.engine = engine
        self.tag = uuid.uuid4().hex[:8]
        self.names: list[str] = []
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(engine.workdir),
            "DOCKER_CONFIG": str(engine.workdir / f"cli-{self.tag}"),
            "LANG": "C.UTF-8",
        }

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "-H", f"unix://{self.engine.socket}", *args]

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), input=input or "", capture_output=True, text=True, timeout=timeout, env=self.env
        )

    def ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        done = self(*args, input=input, timeout=timeout)
        assert done.returncode == 0, (
            f"docker {' '.join(args)} -> {done.returncode}: {done.stderr}\n{self.engine.log_tail()}"
        )
        return done.stdout

    def name(self, label: str) -> str:
        n = f"{label}-{self.tag}-{len(self.names)}"
        self.names.append(n)
        return n

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env
        )

    def tty(self, *args: str) -> PtySession:
        return PtySession(self.argv(*args), self.env, 24, 80)

    def cleanup(self) -> None:
        for n in self.names:
            self("rm", "-f", n)


@pytest.fixture(params=sorted(CLIENTS))
def docker(request: pytest.FixtureRequest, engine: PyDockerd) -> Iterator[Docker]:
    d = Docker(CLIENTS[request.param], engine)
    yield d
    d.cleanup()


# --- the CLIs ------------------------------------------------------------------------------


def test_load_every_fixture(docker: Docker) -> None:
    for archive in ("busybox.tar", "layered.tar", "layered-oci.tar"):
        out = docker.ok("load", "-i", str(SHARED_IMAGES / archive))
        assert "Loaded image" in out, out
    ids = docker.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")
    assert "busybox:latest 80cbd88a5f7e" in ids and "layered:latest 17e3dc93a3aa" in ids


def test_run_rm_output_and_exit_code(docker: Docker) -> None:
    done = docker("run", "--rm", "layered")
    assert (done.returncode, done.stdout) == (0, "hello from layered\n65534\n/data\n"), done.stderr
    done = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    done = docker("run", "--rm", "busybox", "no-such-command")
    assert done.returncode == 127 and "no-such-command" in done.stderr


def test_run_d_logs_follow_stop(docker: Docker) -> None:
    name = docker.name("follow")
    docker.ok(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; i=0; while true; do echo line$i; i=$((i+1)); sleep 0.2; done",
    )
    follower = docker.popen("logs", "-f", name)
    assert follower.stdout is not None
    # Lines written after `logs -f` began arrive while the container runs.
    assert [follower.stdout.readline() for _ in range(4)] == ["line0\n", "line1\n", "line2\n", "line3\n"]
    docker.ok("stop", "-t", "5", name)
    rest, _ = follower.communicate(timeout=20)
    assert follower.returncode == 0
    lines = rest.splitlines()
    assert lines[-1] == "bye" and lines[:-1] == [f"line{4 + i}" for i in range(len(lines) - 1)]
    assert docker.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name) == "exited 0\n"


def test_run_it_through_a_pty(docker: Docker) -> None:
    name = docker.name("it")
    session = docker.tty("run", "-it", "--name", name, "busybox", "sh")
    try:
        session.expect("# ")
        session.send(b"echo typed-$((6*7))\r")
        session.expect("typed-42")
        session.expect_size(24, 80)
        session.send(b"exit 5\r")
        assert session.wait() == 5
    finally:
        session.close()


def test_exec_it(docker: Docker) -> None:
    name = docker.name("exec")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    session = docker.tty("exec", "-it", name, "sh")
    try:
        session.expect("# ")
        session.send(b"echo in-$((1+2)); tty\r")
        session.expect("in-3")
        session.expect("/dev/pts/")
        session.send(b"exit 4\r")
        assert session.wait() == 4
    finally:
        session.close()
    assert docker.ok("exec", name, "echo", "plain") == "plain\n"
    assert docker("exec", name, "sh", "-c", "exit 9").returncode == 9


def test_attach_and_detach_keys(docker: Docker) -> None:
    name = docker.name("attach")
    docker.ok("run", "-dit", "--name", name, "busybox", "sh")
    session = docker.tty("attach", name)
    try:
        session.send(b"echo attached-$((2*21))\r")
        session.expect("attached-42")
        session.send(b"\x10\x11")  # ctrl-p ctrl-q
        # As against the reference: the CLI reports the detach and exits 1.
        assert session.wait() == 1
        assert "read escape sequence" in session.text()
    finally:
        session.close()
    assert docker.ok("inspect", "-f", "{{.State.Running}}", name) == "true\n"


def test_cp_both_ways(docker: Docker, tmp_path: Path) -> None:
    name = docker.name("cp")
    docker.ok(
        "run", "-d", "--name", name, "busybox", "sh", "-c", "mkdir /work; echo inside > /work/a; sleep 1000"
    )
    until(
        "the file in the container", lambda: docker("exec", name, "cat", "/work/a").stdout == "inside\n", 15.0
    )
    docker.ok("cp", f"{name}:/work/a", str(tmp_path / "a"))
    assert (tmp_path / "a").read_text() == "inside\n"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "b").write_text("from host\n")
    docker.ok("cp", str(tmp_path / "dir"), f"{name}:/work/")
    assert docker.ok("exec", name, "cat", "/work/dir/b") == "from host\n"


def test_wait_kill_pause_rename(docker: Docker) -> None:
    name, renamed = docker.name("life"), docker.name("renamed")
    docker.ok(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 42' USR1; while true; do sleep 0.1; done",
    )
    docker.ok("pause", name)
    assert docker.ok("inspect", "-f", "{{.State.Status}}", name) == "paused\n"
    docker.ok("unpause", name)
    docker.ok("rename", name, renamed)
    waiter = docker.popen("wait", renamed)
    docker.ok("kill", "-s", "USR1", renamed)
    out, _ = waiter.communicate(timeout=20)
    assert out == "42\n"
    fields = docker.ok(
        "inspect", "-f", "{{.Name}} {{.State.ExitCode}} {{.State.Running}} {{.Config.Image}}", renamed
    )
    assert fields == f"/{renamed} 42 false busybox\n"


def test_ps_filter_events_top_stats_rm_f(docker: Docker) -> None:
    name = docker.name("obs")
    since = str(int(time.time()) - 1)
    docker.ok("run", "-d", "--name", name, "--label", f"run={docker.tag}", "busybox", "sleep", "1000")
    assert docker.ok("ps", "--filter", f"label=run={docker.tag}", "--format", "{{.Names}}") == f"{name}\n"
    assert (
        docker.ok("ps", "-a", "--filter", "status=exited", "--filter", f"label=run={docker.tag}", "-q") == ""
    )
    events = docker.ok(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={name}",
        "--format",
        "{{.Action}}",
    )
    assert events.split() == ["create", "start"]
    top = docker.ok("top", name)
    assert "sleep 1000" in top and "PID" in top.splitlines()[0]
    stats = json.loads(docker.ok("stats", "--no-stream", "--format", "{{json .}}", name))
    assert stats["Name"] == name and stats["PIDs"] == "1"
    docker.ok("rm", "-f", name)
    assert docker("inspect", name).returncode == 1


def test_save_loads_into_the_reference_engine(docker: Docker, tmp_path: Path) -> None:
    archive = tmp_path / "saved.tar"
    docker.ok("save", "-o", str(archive), "layered", "busybox")
    with reference_dockerd({}, images=()) as ref:
        assert "Loaded image: layered:latest" in ref.docker_ok("load", "-i", str(archive))
        assert ref.docker_ok("run", "--rm", "layered") == "hello from layered\n65534\n/data\n"


# --- the docker SDK for Python -------------------------------------------------------------


@pytest.fixture
def sdk(engine: PyDockerd) -> Iterator[docker_sdk.DockerClient]:
    client = docker_sdk.DockerClient(base_url=f"unix://{engine.socket}", version="auto")
    made: list[str] = []
    client.made = made
    yield client
    for cid in made:
        try:
            client.containers.get(cid).remove(force=True)
        except docker_sdk.errors.NotFound:
            pass
    client.close()


def test_sdk_run_logs_wait_inspect(sdk: docker_sdk.DockerClient) -> None:
    assert sdk.ping() is True
    out = sdk.containers.run("layered", remove=True)
    assert out == b"hello from layered\n65534\n/data\n"
    c = sdk.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.3; echo two; exit 6"], detach=True)
    sdk.made.append(c.id)
    assert [line for line in c.logs(stream=True, follow=True)] in ([b"one\n", b"two\n"], [b"one\ntwo\n"])
    assert c.wait()["StatusCode"] == 6
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 6 and c.status == "exited"
    assert c.image.tags == ["busybox:latest"]


def test_sdk_exec_attach_socket_pause_rename(sdk: docker_sdk.DockerClient) -> None:
    c = sdk.containers.run(
        "busybox", ["sh"], detach=True, stdin_open=True, tty=False, name=f"sdk-{uuid.uuid4().hex[:8]}"
    )
    sdk.made.append(c.id)
    code, out = c.exec_run(["sh", "-c", "echo $X; pwd"], environment={"X": "exec-env"}, workdir="/tmp")
    assert (code, out) == (0, b"exec-env\n/tmp\n")
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    raw.sendall(b"echo via-socket\n")
    data = b""
    deadline = time.monotonic() + 10
    raw.settimeout(1)
    while b"via-socket" not in data and time.monotonic() < deadline:
        try:
            data += raw.recv(4096)
        except TimeoutError:
            pass
    sock.close()
    assert b"via-socket" in data
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    new_name = f"sdk-renamed-{uuid.uuid4().hex[:8]}"
    c.rename(new_name)
    c.reload()
    assert c.name == new_name
    c.kill("SIGKILL")
    assert c.wait()["StatusCode"] == 137


def test_sdk_archive_top_stats_events(sdk: docker_sdk.DockerClient) -> None:
    since = int(time.time()) - 1
    c = sdk.containers.run("busybox", ["sleep", "1000"], detach=True)
    sdk.made.append(c.id)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        payload = b"sdk payload\n"
        info = tarfile.TarInfo("put.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    stream, stat = c.get_archive("/tmp/put.txt")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("put.txt")
        assert member is not None and member.read() == b"sdk payload\n"
    assert stat["name"] == "put.txt" and stat["size"] == 12
    top = c.top()
    assert any("sleep" in " ".join(p) for p in top["Processes"])
    stats = c.stats(stream=False)
    assert stats["pids_stats"]["current"] == 1 and stats["memory_stats"]["usage"] > 0
    c.remove(force=True)
    seen: list[str] = []
    ev = sdk.events(since=since, until=int(time.time()) + 1, decode=True, filters={"container": c.id})
    for event in ev:
        if (
            event["Type"] == "container"
        ):  # (the filter selects its network's connect/disconnect too, as dockerd's)
            seen.append(event["Action"])
    assert seen[:2] == ["create", "start"] and "destroy" in seen


def test_sdk_errors(sdk: docker_sdk.DockerClient) -> None:
    with pytest.raises(docker_sdk.errors.NotFound, match="No such container: nope"):
        sdk.containers.get("nope")
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        sdk.images.get("no-such-image:latest")
    name = f"sdk-dup-{uuid.uuid4().hex[:8]}"
    c = sdk.containers.create("busybox", ["true"], name=name)
    sdk.made.append(c.id)
    with pytest.raises(docker_sdk.errors.APIError) as info:
        sdk.containers.create("busybox", ["true"], name=name)
    assert info.value.status_code == 409


def test_events_stream_during_a_run(docker: Docker) -> None:
    name = docker.name("ev")
    watcher = docker.popen("events", "--filter", f"container={name}", "--format", "{{.Action}}")
    lines: list[str] = []

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            lines.append(line.strip())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(0.5)
        docker.ok("run", "--rm", "--name", name, "busybox", "true")
        until("the destroy event", lambda: "destroy" in lines, 15.0)
    finally:
        watcher.terminate()
        watcher.wait()
    assert lines[:3] == ["create", "attach", "start"] and "die" in lines
