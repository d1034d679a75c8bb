"""Python programs as a user's integration tests drive an engine: testcontainers' DockerContainer
(busybox, a published port, wait_for_logs) and the docker SDK running a Compose-like pair of
containers on a user network. Run against the reference dockerd and pydockerd (strict xfail
while it lacks what they need)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import docker

from tests.cli.cli_helpers import needs_engine_feature
from tests.compose.compose_helpers import PYTHON, REPO, fetch_in_engine_netns
from tests.dockerd_ref import RefDockerd

USER_TEST = Path(__file__).resolve().parent / "clients" / "testcontainers_user_test.py"


@needs_engine_feature("ports")
def test_testcontainers_busybox_with_a_published_port(dockerd: RefDockerd) -> None:
    # The user's test runs where the engine publishes ports: in its network namespace.
    res = subprocess.run(
        ["nsenter", f"--net=/proc/{dockerd.pid}/ns/net", str(PYTHON), str(USER_TEST)],
        env={"PATH": "/usr/bin:/bin", "HOME": str(dockerd.workdir), "PYTHONPATH": str(REPO),
             "DOCKER_HOST": f"unix://{dockerd.socket}", "TESTCONTAINERS_RYUK_DISABLED": "true"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert res.returncode == 0, f"stdout={res.stdout}\nstderr={res.stderr[-3000:]}"
    lines = res.stdout.splitlines()
    assert lines[1].endswith("-> hello from testcontainers") and lines[2] == "container removed", res.stdout


@needs_engine_feature("networks", "dns", "ports")
def test_docker_sdk_service_pair_on_a_user_network(dockerd: RefDockerd) -> None:
    client = docker.DockerClient(base_url=f"unix://{dockerd.socket}", version="1.41", timeout=120)
    net = client.networks.create("pdc-sdk-net", labels={"pydocker.test": "sdk"})
    containers = []
    try:
        web = client.containers.run(
            "busybox", ["sh", "-c", "mkdir -p /w && echo sdk-web > /w/index.html && exec httpd -f -p 80 -h /w"],
            detach=True, network=net.name, name="pdc-sdk-web", ports={"80/tcp": ("127.0.0.1", None)},
            healthcheck={"test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"], "interval": 200_000_000},
        )  # fmt: skip
        containers.append(web)
        probe = client.containers.run(
            "busybox", ["sh", "-c", "nslookup pdc-sdk-web | sed -n '/^Name:/,$ s/^Address: *//p'"],
            network=net.name, remove=True, stderr=True,
        )  # fmt: skip
        web.reload()
        address = web.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        assert probe.decode().split() == [address]
        port = web.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
        assert fetch_in_engine_netns(dockerd, f"http://127.0.0.1:{port}/") == "sdk-web\n"
    finally:
        for c in containers:
            c.remove(force=True)
        net.remove()
        client.close()
