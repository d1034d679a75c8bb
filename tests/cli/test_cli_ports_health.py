"""Published ports and healthchecks seen through pydocker, side by side with the Docker CLI 28
on the same container: `port` (all, one, by protocol, errors), the PORTS column with its
grouped ranges, `ps --filter publish=/expose=/network=/volume=/health=`, and a container's
health going from starting to healthy (and unhealthy) with `--health-*`."""

from __future__ import annotations

import json
import time

from tests.cli.cli_helpers import CLI, Names, explain, needs_engine_feature
from tests.cli.test_cli_networks import same


@needs_engine_feature("networks", "ports")
def test_port_and_ps_ports(cli: CLI, names: Names) -> None:
    net = names.network("ports")
    cli.ok("network", "create", "--subnet", "10.95.0.0/24", net)
    name = names.container("ports")
    cli.ok(
        "run", "-d", "--name", name, "--network", net, "-p", "127.0.0.1:18080:80", "-p", "19000-19002:9000-9002/udp",
        "-p", "53", "--expose", "7000-7001", "busybox", "sleep", "300",
    )  # fmt: skip
    out = same(cli, "port", name)
    assert "80/tcp -> 127.0.0.1:18080\n" in out and "9001/udp -> 0.0.0.0:19001\n" in out
    for args in (["80"], ["80/tcp"], ["9002/udp"], ["53"], ["7000"], ["80/udp"], ["abc"], ["99999"]):
        same(cli, "port", name, *args)
    same(cli, "port", "pdc-no-such-container")
    ports = same(cli, "ps", "--filter", f"name={name}", "--format", "{{.Ports}}")
    # consecutive ports are grouped only where host and container port are the same
    assert ports.startswith(
        "7000-7001/tcp, 0.0.0.0:32768->53/tcp, 127.0.0.1:18080->80/tcp, 0.0.0.0:19000->9000/udp"
    ), ports
    for flt in ("publish=18080", "publish=19001/udp", "publish=5", "expose=7001", "expose=7000-7001/tcp",
                f"network={net}", "network=pdc-no-such-network"):  # fmt: skip
        same(
            cli,
            "ps",
            "--filter",
            flt,
            "--filter",
            f"name={names.tag}",
            "--format",
            "{{.Names}} {{.Networks}}",
        )
    assert cli.ok("ps", "-q", "--filter", "publish=18080", "--filter", f"name={name}") != ""


@needs_engine_feature("volumes")
def test_ps_filter_volume(cli: CLI, names: Names) -> None:
    vol = names.volume("psv")
    name = names.container("psv")
    cli.ok("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true")
    for flt in (f"volume={vol}", "volume=/data", "volume=pdc-no-such-volume"):
        same(
            cli,
            "ps",
            "-a",
            "--filter",
            flt,
            "--filter",
            f"name={names.tag}",
            "--format",
            "{{.Names}} {{.Mounts}}",
        )
    assert cli.ok("ps", "-a", "--filter", f"volume={vol}", "--format", "{{.Names}}") == f"{name}\n"


def _health(cli: CLI, name: str) -> str:
    return cli.ok("inspect", "-f", "{{.State.Health.Status}}", name).strip()


def _until(cli: CLI, name: str, status: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _health(cli, name) != status:
        assert time.monotonic() < deadline, (
            f"{name} not {status}: {cli.ok('inspect', '-f', '{{json .State.Health}}', name)}"
        )
        time.sleep(0.2)


@needs_engine_feature("healthchecks")
def test_healthcheck_flags(cli: CLI, names: Names) -> None:
    good, bad = names.container("healthy"), names.container("unhealthy")
    cli.ok("run", "-d", "--name", good, "--health-cmd", "test -e /tmp/ready", "--health-interval", "200ms",
           "--health-retries", "2", "--health-timeout", "2s", "--health-start-period", "1m", "busybox", "sh", "-c",
           "sleep 1; touch /tmp/ready; sleep 300")  # fmt: skip
    cli.ok("run", "-d", "--name", bad, "--health-cmd", "exit 1", "--health-interval", "200ms", "--health-retries", "1",
           "busybox", "sleep", "300")  # fmt: skip
    config = json.loads(cli.ok("inspect", "-f", "{{json .Config.Healthcheck}}", good))
    assert config == {"Test": ["CMD-SHELL", "test -e /tmp/ready"], "Interval": 200_000_000, "Timeout": 2_000_000_000,
                      "StartPeriod": 60_000_000_000, "Retries": 2}  # fmt: skip
    _until(cli, good, "healthy")
    _until(cli, bad, "unhealthy")
    for status, name in (("healthy", good), ("unhealthy", bad)):
        listed = cli.ok(
            "ps", "--filter", f"health={status}", "--filter", f"name={names.tag}", "--format", "{{.Names}}"
        )
        assert listed == f"{name}\n", listed
        assert f"({status})" in cli.ok("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    same(cli, "ps", "--filter", "health=bogus")
    none = names.container("nohealth")
    cli.ok("create", "--name", none, "--no-healthcheck", "busybox", "true")
    assert json.loads(cli.ok("inspect", "-f", "{{json .Config.Healthcheck}}", none)) == {"Test": ["NONE"]}
    res = cli.run("ps", "-a", "--filter", "health=none", "--filter", f"name={none}", "--format", "{{.Names}}")
    assert res.stdout == f"{none}\n", explain(res)
