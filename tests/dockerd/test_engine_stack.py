"""The README's main job: scripts/stack starts a local pyregistry seeded with the default
busybox image, then pydockerd (and with it pycontainerd) with that registry as its default
registry, loads the default image, and `pydocker run --rm busybox echo hello` prints hello;
with the engine's busybox removed, `pull busybox` (pydocker's and the Docker CLI's) and
`run`'s auto-pull fetch it from the local registry, as on an offline machine; `restart` replaces
both daemons under a running container; `stop` ends all three daemons. Run on temporary paths and a free loopback port (the script's PYDOCKER_*
overrides) so a real install is never touched."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYDOCKER = str(REPO / ".venv/bin/pydocker")
# The manifest the stack seeds the registry with (and loads into the engine).
BUSYBOX_DIGEST = json.loads((REPO / "images/busybox-oci/index.json").read_text())["manifests"][0]["digest"]


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> object:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with opener.open(url, timeout=10) as resp:
        return json.load(resp)


def test_stack_start_run_stop() -> None:
    base = Path(tempfile.mkdtemp(prefix="pydocker-stack-", dir="/tmp"))
    addr = f"127.0.0.1:{_free_loopback_port()}"
    sock = f"unix://{base}/pydocker.sock"
    env = dict(
        os.environ,
        PYDOCKER_SOCK=str(base / "pydocker.sock"),
        PYDOCKER_EXEC_ROOT=str(base / "exec"),
        PYDOCKER_DATA_ROOT=str(base / "data"),
        PYDOCKER_LOG=str(base / "pydockerd.log"),
        PYDOCKER_REGISTRY_ADDR=addr,
        PYDOCKER_REGISTRY_ROOT=str(base / "registry"),
        PYDOCKER_REGISTRY_LOG=str(base / "pyregistry.log"),
    )
    env.pop("PYDOCKER_DAEMON_JSON", None)
    stack = str(REPO / "scripts" / "stack")

    def cli(*args: str, program: str = PYDOCKER) -> subprocess.CompletedProcess[str]:
        return subprocess.run([program, "-H", sock, *args], capture_output=True, text=True, timeout=120)

    try:
        started = subprocess.run([stack, "start"], env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        assert f"starting pyregistry on http://{addr}" in started.stderr
        assert "pushing the default image" in started.stderr and "loading the default image" in started.stderr
        assert _get_json(f"http://{addr}/v2/library/busybox/tags/list") == {
            "name": "library/busybox",
            "tags": ["latest"],
        }
        assert json.loads((base / "exec" / "daemon.json").read_text()) == {
            "default-registry": addr,
            "insecure-registries": [addr],
        }
        run = cli("run", "--rm", "busybox", "echo", "hello")
        assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr

        # The engine without busybox, as after `docker rmi`: an unqualified pull comes from the
        # local registry (the seeded manifest's digest, not Docker Hub's index).
        assert cli("rmi", "busybox").returncode == 0
        pulled = cli("pull", "busybox")
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.startswith(
            "Using default tag: latest\nlatest: Pulling from library/busybox\n"
        ), pulled.stdout
        assert pulled.stdout.endswith(
            f"Digest: {BUSYBOX_DIGEST}\nStatus: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n"
        ), pulled.stdout
        docker = shutil.which("docker")
        assert docker is not None, "the Docker CLI is missing: scripts/setup-test installs Debian's docker.io"
        assert cli("rmi", "busybox").returncode == 0
        pulled = cli("pull", "busybox", program=docker)
        assert pulled.returncode == 0, pulled.stderr
        assert (
            f"Digest: {BUSYBOX_DIGEST}\nStatus: Downloaded newer image for busybox:latest\n" in pulled.stdout
        ), pulled.stdout
        assert cli("rmi", "busybox").returncode == 0
        run = cli("run", "--rm", "busybox", "echo", "hi")  # auto-pull
        assert (run.returncode, run.stdout) == (0, "hi\n"), run.stderr
        assert "Unable to find image 'busybox:latest' locally" in run.stderr

        status = subprocess.run([stack, "status"], env=env, capture_output=True, text=True, timeout=30).stdout
        assert "pydockerd: running" in status and "pycontainerd: running" in status
        assert f"on http://{addr}" in status and "pyregistry: running" in status
        again = subprocess.run([stack, "start"], env=env, capture_output=True, text=True, timeout=60)
        assert again.stderr.count("already running") == 2, again.stderr
        assert "loading" not in again.stderr and "pushing" not in again.stderr

        # `restart` (the upgrade step): both daemons are new processes, the container is untouched.
        assert cli("run", "-d", "--name", "kept", "busybox", "sleep", "600").returncode == 0
        kept = cli("inspect", "--format", "{{.State.Pid}}", "kept").stdout.strip()
        daemons = [
            (base / "exec" / name).read_text() for name in ("pydockerd.pid", "containerd/pycontainerd.pid")
        ]
        restarted = subprocess.run([stack, "restart"], env=env, capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        assert "running pydockerd version 20.10.99-pydocker, build " in restarted.stderr, restarted.stderr
        after = [
            (base / "exec" / name).read_text() for name in ("pydockerd.pid", "containerd/pycontainerd.pid")
        ]
        assert all(a != b for a, b in zip(after, daemons, strict=True)), (daemons, after)
        assert (
            cli("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", "kept").stdout
            == f"running {kept}\n"
        )
        assert cli("rm", "-f", "kept").returncode == 0
    finally:
        stopped = subprocess.run([stack, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    status = subprocess.run([stack, "status"], env=env, capture_output=True, text=True, timeout=30).stdout
    assert status == "pydockerd: stopped\npycontainerd: stopped\npyregistry: stopped\n"
    assert not (base / "exec" / "pyregistry.pid").exists()
    assert not (base / "pydocker.sock").exists()  # removed at a clean exit, as dockerd does
    assert _pids_mentioning(str(base)) == []
    assert [line for line in open("/proc/self/mountinfo") if str(base) in line] == []
    subprocess.run(["rm", "-rf", str(base)], check=True)
