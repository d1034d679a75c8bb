"""daemon.json `icc: false` (--icc=false on the reference) side by side with the reference dockerd (in a network
namespace of its own, with its default bridge and iptables on, as a stock dockerd).

Containers on the default bridge cannot reach each other, but a port one of them publishes
still answers on the host, and containers of a user-defined network (which `icc` does not
govern) still reach each other: the same on both engines. Traffic goes only to loopback and
into the namespaces of the test's containers.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.dockerd.test_engine_networks import REFERENCE_NETWORKING
from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until

SERVE = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"
# busybox wget has no working -T here: `timeout` bounds a connection that is dropped
FETCH = "timeout 3 wget -q -O- http://{ip}:8080/index.html; echo rc=$?"


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefDockerd]:
    if request.param == "reference":
        with reference_dockerd(
            {}, private_network=True, extra_args=[*REFERENCE_NETWORKING, "--icc=false"]
        ) as ref:
            yield ref
    else:
        config = tmp_path_factory.mktemp("icc") / "daemon.json"  # the daemon.json spelling on this side
        config.write_text(json.dumps({"icc": False}))
        with pydockerd_engine(extra_args=("--config-file", str(config))) as pd:
            yield pd


def on_host(engine: RefDockerd, *argv: str) -> subprocess.CompletedProcess[str]:
    """ARGV on the engine's host: the reference's is its own network namespace."""
    prefix = [] if isinstance(engine, PyDockerd) else ["nsenter", f"--net=/proc/{engine.pid}/ns/net"]
    return subprocess.run(
        [*prefix, *argv], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def ip_of(engine: RefDockerd, name: str, network: str) -> str:
    networks = json.loads(engine.docker_ok("inspect", name))[0]["NetworkSettings"]["Networks"]
    address: str = networks[network]["IPAddress"]
    return address


def test_icc_false_isolates_the_default_bridge_but_not_published_ports(engine: RefDockerd) -> None:
    tag = uuid.uuid4().hex[:8]
    server, net = f"icc-srv-{tag}", f"icc-net-{tag}"
    try:
        engine.docker_ok("run", "-d", "--name", server, "-p", "127.0.0.1::8080", "busybox", "sh", "-c", SERVE)
        ip = ip_of(engine, server, "bridge")
        port = engine.docker_ok("port", server, "8080/tcp").split(":")[-1].strip()

        def published() -> bool:
            res = on_host(engine, "curl", "-s", "-m", "3", f"http://127.0.0.1:{port}/index.html")
            return res.stdout == "hello\n"

        until("the published port to answer", published, 30)
        # the default bridge: dropped between containers
        blocked = engine.docker_ok("run", "--rm", "busybox", "sh", "-c", FETCH.format(ip=ip), timeout=60)
        assert blocked.splitlines()[-1] != "rc=0", blocked
        assert "hello" not in blocked
        # a user-defined network: icc does not apply
        engine.docker_ok("network", "create", net)
        engine.docker_ok("network", "connect", net, server)
        user_ip = ip_of(engine, server, net)
        reached = engine.docker_ok(
            "run", "--rm", "--network", net, "busybox", "sh", "-c", FETCH.format(ip=user_ip)
        )
        assert reached == "hello\nrc=0\n"
        info = json.loads(engine.docker_ok("network", "inspect", "bridge"))[0]["Options"]
        assert info["com.docker.network.bridge.enable_icc"] == "false"
    finally:
        engine.docker("rm", "-f", server)
        engine.docker("network", "rm", net)
