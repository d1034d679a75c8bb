"""`pydocker network ...` against the engine, side by side with the Docker CLI 28 on the same
engine: create with IPAM and options (what the engine stored, through inspect), ls (table,
-q, --no-trunc, filters, json, templates), inspect (-f, -v, missing networks), rm (several,
-f, errors), prune, connect/disconnect of a container; and `run --network` with an address
and aliases reaching the container's own interfaces."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.cli.cli_helpers import CLI, Names, explain, needs_engine_feature
from tests.dockerd_ref import without_host_warnings

pytestmark = needs_engine_feature("networks")


def same(cli: CLI, *args: str, input: str = "") -> str:
    """pydocker's and the Docker CLI's (status, stdout, stderr) for ARGS must be equal; return stdout."""
    got = cli.run(*args, input=input)
    want = cli.daemon.docker(*args, input=input)
    got_err = without_host_warnings(got.stderr).replace("pydocker", "docker")
    assert (got.returncode, got.stdout, got_err) == (
        want.returncode,
        want.stdout,
        without_host_warnings(want.stderr),
    ), (
        explain(got)
        + f"\n--- docker ---\nrc={want.returncode}\nstdout={want.stdout!r}\nstderr={want.stderr!r}"
    )
    return got.stdout


def stored(cli: CLI, name: str) -> dict[str, Any]:
    """What the engine keeps of a network, without what differs between two creations."""
    data: dict[str, Any] = json.loads(cli.daemon.docker_ok("network", "inspect", name))[0]
    for key in ("Name", "Id", "Created"):
        data.pop(key)
    return data


def test_create_as_docker_does(cli: CLI, names: Names) -> None:
    opts = ["--subnet", "10.91.0.0/24", "--gateway", "10.91.0.1", "--ip-range", "10.91.0.128/25",
            "--aux-address", "a=10.91.0.5", "--label", "x=y", "--label", "z", "-o", "com.docker.network.mtu=1400",
            "--internal", "--attachable", "--ipam-opt", "foo=bar"]  # fmt: skip
    ours, theirs = names.network("ours"), names.network("theirs")
    nid = cli.ok("network", "create", *opts, ours).strip()
    assert re.fullmatch("[0-9a-f]{64}", nid)
    other = [o.replace("10.91.", "10.92.") for o in opts]  # (subnets must not overlap)
    cli.daemon.docker_ok("network", "create", *other, theirs)
    mine, docker = stored(cli, ours), stored(cli, theirs)
    assert mine["IPAM"]["Config"] == [
        {
            "Subnet": "10.91.0.0/24",
            "IPRange": "10.91.0.128/25",
            "Gateway": "10.91.0.1",
            "AuxiliaryAddresses": {"a": "10.91.0.5"},
        }
    ]
    assert docker["IPAM"]["Config"] == [
        {
            "Subnet": "10.92.0.0/24",
            "IPRange": "10.92.0.128/25",
            "Gateway": "10.92.0.1",
            "AuxiliaryAddresses": {"a": "10.92.0.5"},
        }
    ]
    mine["IPAM"]["Config"] = docker["IPAM"]["Config"] = []
    assert mine == docker
    assert mine["Internal"] and mine["Attachable"] and mine["Labels"] == {"x": "y", "z": ""}
    # a second network of that name is refused as the Docker CLI reports it
    same(cli, "network", "create", ours)


def test_ls_and_inspect(cli: CLI, names: Names) -> None:
    first, second = names.network("ls"), names.network("ls")
    cli.ok("network", "create", "--label", "pdc=1", first)  # one label: Docker joins several in random order
    cli.ok("network", "create", "--ipv6", "--subnet", "fd00:91::/64", second)
    for args in (
        [],
        ["-q"],
        ["--no-trunc"],
        ["-f", "driver=bridge"],
        ["-f", f"name={names.tag}", "-q", "--no-trunc"],
        ["-f", "label=pdc=1", "--format", '{{.Name}} {{.Labels}} {{.Label "pdc"}} {{.Label "b"}}'],
        ["--format", "json"],
        ["--format", "{{json .}}"],
        ["--format", "table {{.Name}}\t{{.IPv6}}\t{{.Internal}}\t{{.Scope}}\t{{.Driver}}"],
        ["--filter", "bogus=1"],
    ):
        same(cli, "network", "ls", *args)
    assert cli.ok("network", "ls", "-f", f"name={names.tag}", "--format", "{{.Name}}").split() == [
        first,
        second,
    ]
    # .Labels: Docker joins them in its map's (random) order, pydocker sorted
    third = names.network("ls")
    cli.ok("network", "create", "--label", "pdc=3", "--label", "b=2", third)
    assert cli.ok("network", "ls", "-f", "label=pdc=3", "--format", "{{.Labels}}") == "b=2,pdc=3\n"
    same(cli, "network", "inspect", first)
    same(cli, "network", "inspect", "-f", "{{.Name}} {{.EnableIPv6}} {{json .Labels}}", first, second)
    same(cli, "network", "inspect", "-v", second)
    same(cli, "network", "inspect", "--format", "json", first)
    same(cli, "network", "inspect", first, "pdc-no-such-network")
    same(cli, "network", "inspect", "pdc-no-such-network")


def test_rm_and_prune(cli: CLI, names: Names) -> None:
    a, b = names.network("rm"), names.network("rm")
    cli.ok("network", "create", a)
    cli.ok("network", "create", b)
    res = cli.run("network", "rm", a, "pdc-no-such-network", b)
    assert res.returncode == 1, explain(res)
    assert res.stdout == f"{a}\n{b}\n"
    assert res.stderr == "Error response from daemon: network pdc-no-such-network not found\nexit status 1\n"
    same(cli, "network", "rm", "pdc-no-such-network")
    same(cli, "network", "rm", "-f", "pdc-no-such-network")
    c = names.network("prune")
    cli.ok("network", "create", "--label", f"pdc-prune={names.tag}", c)
    assert cli.ok("network", "prune", "--filter", f"label=pdc-prune={names.tag}", input="n\n") == (
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    assert (
        cli.ok("network", "prune", "-f", "--filter", f"label=pdc-prune={names.tag}")
        == f"Deleted Networks:\n{c}\n\n"
    )
    assert cli.daemon.docker("network", "inspect", c).returncode == 1
    assert cli.ok("network", "prune", "-f", "--filter", f"label=pdc-prune={names.tag}") == ""


def test_connect_and_disconnect(cli: CLI, names: Names) -> None:
    net = names.network("conn")
    cli.ok("network", "create", "--subnet", "10.93.0.0/24", net)
    ours, theirs = names.container("conn"), names.container("conn")
    for name in (ours, theirs):
        cli.ok("create", "--name", name, "busybox", "true")
    opts = [
        "--alias",
        "a1",
        "--alias",
        "a2,a3",
        "--ip",
        "10.93.0.77",
        "--driver-opt",
        "k=v",
        "--link",
        f"{theirs}:web",
    ]
    assert cli.ok("network", "connect", *opts, net, ours) == ""
    cli.daemon.docker_ok("network", "connect", *opts[:5], "10.93.0.78", *opts[6:], net, theirs)
    mine = json.loads(
        cli.ok("inspect", "-f", f'{{{{json (index .NetworkSettings.Networks "{net}")}}}}', ours)
    )
    docker = json.loads(
        cli.ok("inspect", "-f", f'{{{{json (index .NetworkSettings.Networks "{net}")}}}}', theirs)
    )
    assert mine["IPAMConfig"] == {"IPv4Address": "10.93.0.77"}
    assert mine["Aliases"][:3] == ["a1", "a2", "a3"] and mine["DriverOpts"] == {"k": "v"}
    assert mine["Links"] == [f"{theirs}:web"]
    for data in (mine, docker):
        data.pop("IPAMConfig")
        data["Aliases"] = data["Aliases"][:3]
    assert mine == docker
    same(cli, "network", "connect", net, ours)  # already connected: the engine's refusal, as Docker prints it
    assert cli.ok("network", "disconnect", net, ours) == ""
    assert net not in cli.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}", ours)
    same(cli, "network", "disconnect", net, ours)
    same(cli, "network", "disconnect", "-f", net, ours)


def test_run_on_a_network(cli: CLI, names: Names) -> None:
    net = names.network("run")
    cli.ok("network", "create", "--subnet", "10.94.0.0/24", net)
    res = cli.run(
        "run", "--rm", "--name", names.container("run"), "--network", net, "--ip", "10.94.0.9",
        "--network-alias", "pdc-alias", "--dns", "10.94.0.53", "--dns-search", "pdc.example", "--dns-option", "ndots:3",
        "--add-host", "pdc-host:10.1.2.3", "busybox", "sh", "-c",
        "ip -4 -o addr show eth0 | awk '{print $4}'; grep -v '^#' /etc/resolv.conf; grep pdc-host /etc/hosts",
    )  # fmt: skip
    assert res.returncode == 0, explain(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "10.94.0.9/24"
    assert "search pdc.example" in lines and "options ndots:3" in lines
    assert lines[-1].split() == ["10.1.2.3", "pdc-host"]
    inspect = cli.run("ps", "-a", "--filter", f"network={net}", "-q")
    assert inspect.stdout == ""  # --rm removed it
