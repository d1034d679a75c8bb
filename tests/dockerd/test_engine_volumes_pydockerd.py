"""Volumes where only pydockerd can be tested on this machine (issue 13):

* volume plugins: the reference dockerd finds plugins in the host's fixed /run/docker/plugins,
  which tests must not touch, so a plugin (tests/volumes/plugin_server.py, Docker's protocol
  over a unix socket) is given to pydockerd through --volume-plugin-dir, and the Docker CLI 28
  and docker-py drive it: create, ls, inspect, run with -v and --volume-driver, the plugin's
  errors, a plugin that is gone;
* live restore: volumes (a local one and one the local driver mounts, tmpfs) stay with a
  running container across a kill -9 of pydockerd, keep their references (rm refused) and are
  released and unmounted when the container stops; their data survives.

The harness fails a test on any mount, process or cgroup left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.pydockerd_harness import PyDockerd, inspect, pydockerd_engine, start_pydockerd, until, wait_ready
from tests.volumes.plugin_server import RunningPlugin, volume_plugin

PLUGIN = "pdvplug"


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pdv-plugins-", dir="/tmp"))  # short: a socket path lives here
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def plugin(plugin_dir: Path) -> Iterator[RunningPlugin]:
    with volume_plugin(plugin_dir / "data", socket_path=plugin_dir / f"{PLUGIN}.sock") as running:
        yield running


@pytest.fixture
def engine(plugin_dir: Path) -> Iterator[PyDockerd]:
    with pydockerd_engine(extra_args=["--volume-plugin-dir", str(plugin_dir)]) as daemon:
        yield daemon


def _mounts_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path) + "/")]


def test_plugin_volumes_through_the_docker_cli(engine: PyDockerd, plugin: RunningPlugin) -> None:
    assert engine.docker_ok("volume", "create", "-d", PLUGIN, "--opt", "speed=fast", "pv1") == "pv1\n"
    assert ("VolumeDriver.Create", {"Name": "pv1", "Opts": {"speed": "fast"}}) in plugin.state.calls
    assert engine.docker_ok("volume", "ls", "--format", "{{.Driver}} {{.Name}}") == f"{PLUGIN} pv1\n"
    data = json.loads(engine.docker_ok("volume", "inspect", "pv1"))[0]
    assert (data["Driver"], data["Name"], data["Status"]) == (PLUGIN, "pv1", {"opts": {"speed": "fast"}})
    assert PLUGIN in json.loads(engine.docker_ok("info", "--format", "{{json .Plugins.Volume}}"))

    engine.docker_ok("run", "--rm", "-v", "pv1:/data", "busybox", "sh", "-c", "echo through-plugin > /data/f")
    assert (plugin.state.root / "pv1" / "f").read_text() == "through-plugin\n"
    mounts = [req["ID"] for method, req in plugin.state.calls if method == "VolumeDriver.Mount"]
    unmounts = [req["ID"] for method, req in plugin.state.calls if method == "VolumeDriver.Unmount"]
    # mounted for the copy-up at create, then for the run; each released with the id it was mounted with
    assert len(mounts) == 2 and sorted(unmounts) == sorted(mounts)
    # --volume-driver: a volume named by -v is made by the plugin
    engine.docker_ok("run", "--rm", "-v", "px:/data", "--volume-driver", PLUGIN, "busybox", "true")
    assert "px" in plugin.state.volumes
    res = engine.docker("volume", "rm", "pv1", "px")
    assert res.returncode == 0 and not plugin.state.volumes, res


def test_plugin_errors_and_a_plugin_that_is_gone(engine: PyDockerd, plugin: RunningPlugin) -> None:
    plugin.state.behaviour.errors["VolumeDriver.Create"] = "no space on the array"
    res = engine.docker("volume", "create", "-d", PLUGIN, "bad")
    assert res.returncode == 1
    assert res.stderr == "Error response from daemon: create bad: no space on the array\n", res.stderr
    del plugin.state.behaviour.errors["VolumeDriver.Create"]
    engine.docker_ok("volume", "create", "-d", PLUGIN, "pm")
    plugin.state.behaviour.errors["VolumeDriver.Mount"] = "array offline"
    res = engine.docker("run", "--name", "pdv-mountfail", "-v", "pm:/data", "busybox", "true")
    # (mounted first for the copy-up at create: the create fails, and nothing of it stays)
    assert res.returncode == 125 and "array offline" in res.stderr, res.stderr
    assert engine.docker("inspect", "--type", "container", "pdv-mountfail").returncode == 1
    del plugin.state.behaviour.errors["VolumeDriver.Mount"]
    res = engine.docker("volume", "create", "-d", "pdv-nosuch-plugin", "nope")
    assert res.stderr == (
        "Error response from daemon: create nope: error looking up volume plugin pdv-nosuch-plugin: "
        'plugin "pdv-nosuch-plugin" not found\n'
    ), res.stderr
    engine.docker_ok("volume", "rm", "pm")


def test_plugin_gone_fails_its_requests_only(engine: PyDockerd, plugin_dir: Path) -> None:
    with volume_plugin(plugin_dir / "data", socket_path=plugin_dir / f"{PLUGIN}.sock"):
        engine.docker_ok("volume", "create", "-d", PLUGIN, "orphan")
    # the plugin has stopped: its requests fail, the daemon and local volumes carry on
    res = engine.docker("volume", "inspect", "orphan", timeout=120)
    assert res.returncode == 1 and "orphan" in res.stderr, res
    engine.docker_ok("volume", "create", "pdv-local")
    listed = engine.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}", timeout=120)
    assert "local pdv-local" in listed.stdout.splitlines(), listed
    engine.docker_ok("volume", "rm", "pdv-local")
    engine.docker("volume", "rm", "-f", "orphan", timeout=120)


def test_plugin_volumes_through_docker_py(engine: PyDockerd, plugin: RunningPlugin) -> None:
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
    try:
        vol = client.volumes.create("pypv", driver=PLUGIN, labels={"via": "docker-py"})
        assert (vol.attrs["Driver"], vol.attrs["Labels"]) == (PLUGIN, {"via": "docker-py"})
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /p/f; cat /p/f"], remove=True,
                                    volumes={"pypv": {"bind": "/p", "mode": "rw"}})  # fmt: skip
        assert out == b"py\n"
        assert [v.name for v in client.volumes.list(filters={"driver": PLUGIN})] == ["pypv"]
        vol.remove()
        assert "pypv" not in plugin.state.volumes
    finally:
        client.close()


# --- live restore ------------------------------------------------------------------------------


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)  # pydockerd is the harness's child: reaped here
    except ChildProcessError:
        until(f"pid {pid} to go", lambda: not os.path.exists(f"/proc/{pid}"))


def test_volumes_survive_a_daemon_kill_with_their_container_running(engine: PyDockerd) -> None:
    volumes = engine.data_root / "volumes"
    name = f"pdv-live-{uuid.uuid4().hex[:6]}"
    engine.docker_ok(
        "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "pdv-tmpfs"
    )
    engine.docker_ok("run", "-d", "--name", name, "-v", "pdv-data:/data", "-v", "pdv-tmpfs:/t", "-v", "/anon",
                     "busybox", "sh", "-c", "echo before > /data/f; echo t > /t/f; sleep 600")  # fmt: skip
    until(
        "the container to write", lambda: engine.docker("exec", name, "cat", "/data/f").stdout == "before\n"
    )
    assert _mounts_below(volumes) == [str(volumes / "pdv-tmpfs" / "_data")]

    _kill9(engine.pid)
    wait_ready(engine, start_pydockerd(engine))

    assert inspect(engine, name)["State"]["Running"]
    assert engine.docker_ok("exec", name, "cat", "/data/f", "/t/f") == "before\nt\n"
    res = engine.docker("volume", "rm", "pdv-data")
    assert res.returncode == 1 and f"volume is in use - [{inspect(engine, name)['Id']}]" in res.stderr
    assert _mounts_below(volumes) == [str(volumes / "pdv-tmpfs" / "_data")]  # still the container's
    engine.docker_ok("stop", "-t", "1", name)
    until("the tmpfs volume to be unmounted", lambda: _mounts_below(volumes) == [])
    engine.docker_ok("rm", "-v", name)
    # the data outlives the container and the daemon's kill
    assert engine.docker_ok("run", "--rm", "-v", "pdv-data:/data", "busybox", "cat", "/data/f") == "before\n"
    engine.docker_ok("volume", "rm", "pdv-data", "pdv-tmpfs")
    anonymous = [v for v in engine.docker_ok("volume", "ls", "-q").split() if len(v) == 64]
    assert anonymous == []  # rm -v took the anonymous one


def test_volume_data_survives_a_daemon_kill(engine: PyDockerd) -> None:
    engine.docker_ok("run", "--rm", "-v", "pdv-kept:/k", "busybox", "sh", "-c", "echo kept > /k/f")
    _kill9(engine.pid)
    wait_ready(engine, start_pydockerd(engine))
    assert engine.docker_ok("volume", "ls", "-q") == "pdv-kept\n"
    assert engine.docker_ok("run", "--rm", "-v", "pdv-kept:/k", "busybox", "cat", "/k/f") == "kept\n"
    engine.docker_ok("volume", "rm", "pdv-kept")
