"""pydockerd driven by the real Docker CLI (v28 at /usr/local/bin/docker), over its own
pycontainerd, on temp roots. Covers what pydockerd serves so far: load, images, run with
attached output and exit codes, run -d + logs + stop, inspect, rm, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.unixsock import accepting

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "images"
PYDOCKERD = REPO / ".venv" / "bin" / "pydockerd"


class Engine:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.sock = base / "docker.sock"

    def docker(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", f"unix://{self.sock}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    base = Path(os.path.realpath(tmp_path))
    log = open(base / "pydockerd.log", "wb")  # the daemon writes it
    proc = subprocess.Popen(
        [
            str(PYDOCKERD),
            "-H",
            f"unix://{base}/docker.sock",
            "--data-root",
            str(base / "data"),
            "--exec-root",
            str(base / "exec"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    e = Engine(base)
    deadline = time.monotonic() + 60
    while not accepting(e.sock):
        assert proc.poll() is None and time.monotonic() < deadline, (base / "pydockerd.log").read_text()
        time.sleep(0.1)
    try:
        yield e
    finally:
        ids = e.docker("ps", "-aq").stdout.split()
        if ids:
            e.docker("rm", "-f", *ids)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pidfile = base / "exec" / "containerd" / "pycontainerd.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
        log.close()
    mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if str(base) in line.split()[4]]
    assert not mounts, f"mounts left behind: {mounts}"
    leftovers = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if str(base).encode() in open(f"/proc/{entry}/cmdline", "rb").read():
                    leftovers.append(entry)
            except OSError:
                pass
    assert not leftovers, f"processes left behind: {leftovers}"


def test_load_run_logs_stop_rm_with_the_docker_cli(engine: Engine) -> None:
    for archive in ("busybox.tar", "layered.tar"):
        done = engine.docker("load", "-i", str(SHARED / archive))
        assert done.returncode == 0, done.stderr
        assert "Loaded image:" in done.stdout
    images = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.split("\n")
    assert "busybox:latest 80cbd88a5f7e" in images and "layered:latest 17e3dc93a3aa" in images

    done = engine.docker("run", "--rm", "busybox", "echo", "hello")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr
    done = engine.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    done = engine.docker("run", "--rm", "layered")
    assert done.stdout == "hello from layered\n65534\n/data\n", done.stderr
    done = engine.docker("run", "--rm", "layered", "ls /data/drop; ls /bin/vi")
    assert done.stdout == "b\nk-sym\n" and "ls: /bin/vi: No such file or directory" in done.stderr
    assert engine.docker("ps", "-aq").stdout.split() == []  # --rm removed them

    done = engine.docker(
        "run", "-d", "--name", "bg", "-e", "GREETING=hi", "busybox", "sh", "-c", "echo $GREETING; sleep 1000"
    )
    assert done.returncode == 0, done.stderr
    cid = done.stdout.strip()
    assert len(cid) == 64
    deadline = time.monotonic() + 10
    while "hi" not in engine.docker("logs", "bg").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine.docker("logs", "bg").stdout == "hi\n"
    fmt = "{{.State.Status}} {{.Name}} {{.Config.Image}} {{.State.Running}}"
    assert engine.docker("inspect", "-f", fmt, "bg").stdout.strip() == "running /bg busybox true"
    assert engine.docker("ps", "--format", "{{.Names}}").stdout.split() == ["bg"]
    refused = engine.docker("rm", "bg")
    assert refused.returncode != 0 and "cannot remove a running container" in refused.stderr
    assert engine.docker("stop", "-t", "1", "bg").returncode == 0
    state = engine.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "bg").stdout.strip()
    assert state == "exited 137"
    assert engine.docker("rm", "bg").returncode == 0
    missing = engine.docker("rm", "bg")
    assert missing.returncode != 0 and "No such container: bg" in missing.stderr
    taken = engine.docker("create", "--name", "dup", "busybox")
    assert taken.returncode == 0
    again = engine.docker("create", "--name", "dup", "busybox")
    assert again.returncode != 0 and "is already in use" in again.stderr
    published = engine.docker(
        "run", "--rm", "-p", "127.0.0.1::80", "busybox", "true"
    )  # a random loopback port
    assert published.returncode == 0, published.stderr
