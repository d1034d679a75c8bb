"""What pydocker sends, compared with what the Docker CLI 28 sends for the same command line:
both run through a recording proxy in front of the engine (tests/cli/recorder.py) and the
request bodies and queries must agree (zero values aside: Go sends every field of its
structs, pydocker only what is set). Also the errors the Docker CLI raises before any request
(status, stdout and stderr equal, the program's name aside). Runs against both engines: the
request is what is compared, not whether the engine accepts it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_helpers import CLI, Names, docker_via, explain
from tests.cli.recorder import Recorder, Request, recording_proxy

# Config and HostConfig keys the networking, storage and healthcheck options fill.
CONFIG_KEYS = ("ExposedPorts", "Healthcheck", "Volumes", "NetworkingConfig")
HOST_KEYS = (
    "PortBindings", "PublishAllPorts", "NetworkMode", "Dns", "DnsSearch", "DnsOptions", "ExtraHosts", "Links",
    "Mounts", "Binds", "VolumesFrom", "VolumeDriver",
)  # fmt: skip


def pruned(value: Any) -> Any:
    """Go's zero values dropped (the Docker CLI sends them, pydocker leaves them out); lists
    whose order comes from a Go map iteration (Binds, IPAM configs) sorted."""
    if isinstance(value, dict):
        out = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", 0, False, [], {})}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def create_view(req: Request) -> dict[str, Any]:
    body = req.json()
    host = body.get("HostConfig") or {}
    view = {
        "Config": {k: body.get(k) for k in CONFIG_KEYS},
        "HostConfig": {k: host.get(k) for k in HOST_KEYS},
    }
    out: dict[str, Any] = pruned(view)
    if "Binds" in out.get("HostConfig", {}):
        out["HostConfig"]["Binds"].sort()  # a set in the Docker CLI
    return out


@pytest.fixture
def rec(cli: CLI) -> Iterator[Recorder]:
    with recording_proxy(cli.daemon.socket) as recorder:
        yield recorder


def both(
    cli: CLI,
    rec: Recorder,
    *args: str,
    method: str,
    route: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    input: str = "",
) -> tuple[Request, Request]:
    """Run the Docker CLI, then pydocker, through the proxy; return the request each made."""
    rec.take()
    docker_via(cli.daemon, rec.socket, *args, env=env, cwd=cwd, input=input)
    theirs = rec.find(method, route)
    rec.take()
    cli.run_via(rec.socket, *args, env=env, cwd=cwd, input=input)
    ours = rec.find(method, route)
    rec.take()
    assert len(theirs) == 1, f"docker {args}: {theirs}"
    assert len(ours) == 1, f"pydocker {args}: {ours}"
    return theirs[0], ours[0]


CREATE_CASES = [
    ["-p", "80", "-p", "8080:80/udp", "-p", "127.0.0.1:9000-9001:9000-9001", "-p", "[::1]:53:53/udp",
     "-p", "127.0.0.1::99", "-p", "8000-8001:81", "-p", "published=8443,target=443,protocol=tcp"],
    ["--expose", "7000-7002/tcp", "--expose", "5000", "-P"],
    ["--dns", "1.1.1.1", "--dns", "0:0:0:0:0:0:0:1", "--dns-search", "example.com", "--dns-option", "ndots:2",
     "--dns-opt", "timeout:1"],
    ["--add-host", "h1:10.0.0.1", "--add-host", "h2=host-gateway", "--add-host", "h3:::1", "--add-host", "h4=[::2]"],
    ["--network", "pdc-net-x", "--ip", "10.99.0.200", "--ip6", "fd00::5", "--network-alias", "al1",
     "--link", "other:zz", "--link-local-ip", "169.254.1.1"],
    ["--network", "pdc-net-x", "--network", "name=pdc-net-y,alias=y1,ip=10.98.0.4,driver-opt=k=v"],
    ["--net", "none"],
    ["--network", "host"],
    ["--network", "container:pdc-other"],
    ["--ip", "10.1.2.3", "--link", "a:b"],
    ["--mount", "type=volume,src=v1,dst=/data,volume-label=a=b,volume-driver=local,volume-opt=o=x,volume-nocopy",
     "--mount", "type=bind,src=/tmp,dst=/mnt,ro,bind-propagation=rslave",
     "--mount", "type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770", "--mount", "type=volume,dst=/anon",
     "--mount", "type=bind,source=.,target=/here,readonly=false,bind-recursive=disabled",
     "--mount", "type=volume,src=v2,dst=/sub,volume-subpath=a/b,consistency=cached"],
    ["-v", "v2:/v2:ro", "-v", "/data2", "-v", "/tmp:/tmp2:rw,z", "-v", "./rel:/rel", "-v", "a::b",
     "--volumes-from", "other:ro", "--volume-driver", "local"],
    ["--health-cmd", "true", "--health-interval", "5s", "--health-timeout", "2.5s", "--health-retries", "3",
     "--health-start-period", "1m30s"],
    ["--no-healthcheck"],
    ["--health-retries", "2"],
]  # fmt: skip


@pytest.mark.parametrize("opts", CREATE_CASES, ids=lambda o: " ".join(o)[:60])
def test_create_body_as_docker_builds_it(
    cli: CLI, rec: Recorder, names: Names, tmp_path: Path, opts: list[str]
) -> None:
    theirs, ours = both(
        cli, rec, "create", *opts, "--name", names.container("req"), "busybox", "true",
        method="POST", route="/containers/create", cwd=tmp_path,
    )  # fmt: skip
    assert create_view(ours) == create_view(theirs)


NETWORK_CASES = [
    [],
    ["--subnet", "10.99.0.0/24", "--gateway", "10.99.0.1", "--ip-range", "10.99.0.128/25", "--aux-address",
     "a=10.99.0.5", "--label", "x=y", "--label", "z", "-o", "com.docker.network.bridge.name=pdbr0", "--internal",
     "--attachable", "--ipam-opt", "foo=bar", "--ipam-driver", "default"],
    ["--ipv6", "--subnet", "fd00:1::/64", "--subnet", "10.97.0.0/24,10.96.0.0/24", "--gateway", "10.96.0.1"],
    ["-d", "nosuchdriver", "--scope", "local", "--config-from", "other"],
]  # fmt: skip


@pytest.mark.parametrize("opts", NETWORK_CASES, ids=lambda o: " ".join(o)[:60])
def test_network_create_body(cli: CLI, rec: Recorder, names: Names, opts: list[str]) -> None:
    name = names.network("req")
    theirs, ours = both(cli, rec, "network", "create", *opts, name, method="POST", route="/networks/create")
    cli.daemon.docker("network", "rm", name)
    want, got = pruned(theirs.json()), pruned(ours.json())
    for body in (want, got):
        body.get("IPAM", {}).get("Config", []).sort(key=lambda c: c["Subnet"])
    assert got == want


def test_network_connect_and_disconnect_bodies(cli: CLI, rec: Recorder) -> None:
    args = ["--alias", "a1", "--alias", "a2,a3", "--ip", "10.99.0.77", "--ip6", "fd00::7", "--link", "r1:web",
            "--driver-opt", "k=v", "--link-local-ip", "169.254.2.2", "pdc-nonet", "pdc-nocontainer"]  # fmt: skip
    theirs, ours = both(
        cli, rec, "network", "connect", *args, method="POST", route="/networks/pdc-nonet/connect"
    )
    assert pruned(ours.json()) == pruned(theirs.json())
    for flag in ([], ["-f"]):
        theirs, ours = both(
            cli, rec, "network", "disconnect", *flag, "pdc-nonet", "pdc-nocontainer",
            method="POST", route="/networks/pdc-nonet/disconnect",
        )  # fmt: skip
        assert ours.json() == theirs.json()


@pytest.mark.parametrize(
    "opts", [[], ["--name", "pdv-req-x"], ["-d", "local", "--label", "a=b", "--label", "c", "-o", "type=tmpfs",
                                            "-o", "device=tmpfs", "-o", "o=size=1m", "pdv-req-y"]],
    ids=["anonymous", "--name", "options"],
)  # fmt: skip
def test_volume_create_body(cli: CLI, rec: Recorder, opts: list[str]) -> None:
    before = set(cli.daemon.docker("volume", "ls", "-q").stdout.split())
    theirs, ours = both(cli, rec, "volume", "create", *opts, method="POST", route="/volumes/create")
    made = set(cli.daemon.docker("volume", "ls", "-q").stdout.split()) - before
    if made:
        cli.daemon.docker("volume", "rm", "-f", *made)
    assert ours.json() == theirs.json()


@pytest.mark.parametrize(
    "args",
    [
        [
            "commit",
            "-c",
            "ENV A=b",
            "-c",
            'CMD ["cat","/f"]',
            "-m",
            "msg",
            "-a",
            "me",
            "pdc-nocontainer",
            "pdcommit:t1",
        ],
        ["commit", "pdc-nocontainer"],
        ["commit", "-p=false", "pdc-nocontainer", "registry.local:5000/team/img"],
    ],
    ids=["changes", "no-reference", "no-pause"],
)
def test_commit_query(cli: CLI, rec: Recorder, args: list[str]) -> None:
    theirs, ours = both(cli, rec, *args, method="POST", route="/commit")
    assert parse_query(ours.query) == parse_query(theirs.query)


def parse_query(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return sorted(parse_qsl(query, keep_blank_values=True))


@pytest.mark.parametrize(
    "args",
    [
        ["image", "prune", "-f"],
        ["image", "prune", "-f", "--filter", "until=1h", "--filter", "label=x"],
        [
            "image",
            "prune",
            "-a",
            "-f",
            "--filter",
            "label=pdc-no-image-has-this",
        ],  # never busybox: others need it
        ["builder", "prune", "-f"],
        ["builder", "prune", "-a", "-f", "--filter", "until=1h", "--keep-storage", "1m"],
        ["network", "prune", "-f", "--filter", "label=x"],
        ["volume", "prune", "-f", "--filter", "label=x"],
    ],
    ids=lambda a: " ".join(a),
)
def test_prune_queries_and_output(cli: CLI, rec: Recorder, args: list[str]) -> None:
    route = {
        "image": "/images/prune",
        "builder": "/build/prune",
        "network": "/networks/prune",
        "volume": "/volumes/prune",
    }
    rec.take()
    want = docker_via(cli.daemon, rec.socket, *args, env={"DOCKER_BUILDKIT": "0"})
    theirs = rec.find("POST", route[args[0]])
    rec.take()
    got = cli.run_via(rec.socket, *args)
    ours = rec.find("POST", route[args[0]])
    assert len(theirs) == len(ours) == 1
    assert parse_query(ours[0].query) == parse_query(theirs[0].query)
    assert (got.returncode, got.stdout) == (want.returncode, want.stdout), explain(got)


def test_build_query(cli: CLI, rec: Recorder, names: Names, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    args = ["build", "--target", "one", "--pull", "--rm=false", "--force-rm", "--no-cache", "--network", "none",
            "--add-host", "a:1.2.3.4", "--add-host", "b=::1", "--shm-size", "1m", "-m", "64m", "--memory-swap", "-1",
            "--cpu-shares", "2", "--cpuset-cpus", "0", "--cpuset-mems", "0", "--cpu-period", "100000",
            "--cpu-quota", "50000", "--ulimit", "nofile=10:20", "--cgroup-parent", "x", "--isolation", "default",
            "--label", "a=b", "--label", "c", "--build-arg", "PDC_FROM_ENV", "--build-arg", "PDC_UNSET",
            "--build-arg", "Y=1", "-t", names.image("q"), "-t", names.image("q"), "--cache-from", "busybox",
            "--security-opt", "seccomp=unconfined", "."]  # fmt: skip
    env = {"DOCKER_BUILDKIT": "0", "PDC_FROM_ENV": "zz"}
    theirs, ours = both(cli, rec, *args, method="POST", route="/build", cwd=tmp_path, env=env)
    assert parse_query(ours.query) == parse_query(theirs.query)
    assert ours.headers.get("content-type") == theirs.headers.get("content-type") == "application/x-tar"


# ---- refused by the CLI itself ---------------------------------------------------------------
CLI_ERRORS = [
    ["create", "--no-healthcheck", "--health-cmd", "x", "busybox"],
    ["create", "--health-interval=-1s", "--health-cmd", "x", "busybox"],
    ["create", "--health-timeout", "abc", "busybox"],
    ["create", "--health-retries=-1", "--health-cmd", "x", "busybox"],
    ["create", "--health-start-interval", "1s", "busybox"],
    ["create", "--network-alias", "x", "busybox"],
    ["create", "--network", "host", "--network", "pdc-user-net", "busybox"],
    ["create", "--network", "pdc-n", "--network", "pdc-n", "busybox"],
    ["create", "--mac-address", "02:42:ac:11:00:99", "busybox"],
    ["create", "--mac-address", "zz:zz", "busybox"],
    ["run", "--rm", "--mac-address", "02:42:ac:11:00:99", "busybox", "true"],
    ["run", "--rm", "--health-start-interval", "1s", "busybox", "true"],
    ["run", "--rm", "-v", "", "--dns", "x", "busybox", "true"],
    ["create", "-p", "70000", "busybox"],
    ["create", "-p", "1.2.3.4:80", "busybox"],
    ["create", "-p", "tcp://1:2", "busybox"],
    ["create", "-p", "80/xyz", "busybox"],
    ["create", "-p", "8000-8001:80-82", "busybox"],
    ["create", "-p", "published=1,bogus", "busybox"],
    ["run", "--rm", "-p", "abc", "busybox", "true"],
    ["create", "--expose", "80-70", "busybox"],
    ["create", "--expose", "1:2", "busybox"],
    ["create", "--mount", "foo=bar", "busybox"],
    ["create", "--mount", "type=bind", "busybox"],
    ["create", "--mount", "dst=/x,bogus", "busybox"],
    ["create", "--mount", "type=tmpfs,dst=/t,bind-propagation=shared", "busybox"],
    ["create", "--mount", "type=bind,src=/a,dst=/b,bind-recursive=readonly", "busybox"],
    ["create", "--mount", "type=tmpfs,dst=/t,tmpfs-mode=999", "busybox"],
    ["create", "--mount", "type=volume,dst=/t,ro=maybe", "busybox"],
    ["create", "--dns", "notanip", "busybox"],
    ["create", "--dns-search", "bad_domain!", "busybox"],
    ["create", "--add-host", "bad", "busybox"],
    ["create", "--add-host", "h:notip", "busybox"],
    ["create", "--link", "a:b:c", "busybox"],
    ["network", "create"],
    ["network", "create", "--gateway", "10.1.0.1", "pdc-n"],
    ["network", "create", "--subnet", "10.1.0.0/16", "--subnet", "10.1.2.0/24", "pdc-n"],
    ["network", "create", "--subnet", "10.1.0.0/16", "--gateway", "10.2.0.1", "pdc-n"],
    ["network", "create", "--subnet", "10.1.0.0/16", "--ip-range", "10.1.2.0/24", "--ip-range", "10.1.3.0/24", "pdc-n"],
    ["network", "create", "--subnet", "bad", "pdc-n"],
    ["network", "create", "--subnet", "10.1.0.0/16", "--aux-address", "x=10.9.9.9", "pdc-n"],
    ["network", "connect", "pdc-n"],
    ["network", "connect", "--driver-opt", "bad", "pdc-n", "pdc-c"],
    ["network", "ls", "extra"],
    ["network", "inspect"],
    ["network", "rm"],
    ["volume", "create", "a", "b"],
    ["volume", "create", "--name", "x", "y"],
    ["volume", "inspect"],
    ["volume", "prune", "-a", "-f"],
    ["commit"],
    ["commit", "pdc-c", "BAD"],
    ["commit", "pdc-c", "a@sha256:0123456789012345678901234567890123456789012345678901234567890123"],
    ["port"],
    ["port", "pdc-nocontainer", "80", "extra"],
    ["build"],
    ["build", "-t", "BAD TAG", "."],
    ["build", "/nonexistent/pdc-context"],
    ["build", "-f", "nope", "."],
    ["build", "Dockerfile"],
    ["builder", "prune", "extra"],
]  # fmt: skip


@pytest.mark.parametrize("args", CLI_ERRORS, ids=lambda a: " ".join(a)[:70])
def test_cli_errors_as_docker(cli: CLI, tmp_path: Path, args: list[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "Dockerfile").write_text("FROM busybox\n")
    want = docker_via(cli.daemon, cli.daemon.socket, *args, cwd=work, env={"DOCKER_BUILDKIT": "0"})
    got = cli.run(*args, cwd=work)
    assert got.returncode != 0
    deprecated = want.stderr.find("DEPRECATED: The legacy builder")
    want_err = want.stderr
    if deprecated >= 0:  # the Docker CLI's notice about BuildKit, which pydocker does not have
        want_err = want_err[want_err.index("\n\n", deprecated) + 2 :]
    assert (got.returncode, got.stdout, got.stderr.replace("pydocker", "docker")) == (
        want.returncode, want.stdout, want_err,
    ), explain(got)  # fmt: skip
    assert os.listdir(work) == ["Dockerfile"]


# ---- help: the Docker CLI's flags, with their value types --------------------------------------
# Flags of swarm (cluster volumes, ingress) and of BuildKit-only or Windows-only features that
# pydocker does not offer; everything else the Docker CLI lists must be there.
NOT_OFFERED = {
    "volume create": {"--availability", "--group", "--limit-bytes", "--required-bytes", "--scope", "--secret",
                      "--sharing", "--topology-preferred", "--topology-required", "--type"},
    "volume ls": {"--cluster"},
    "build": {"--disable-content-trust", "--squash"},
}  # fmt: skip
_FLAG = re.compile(r"^\s+(?:-(\w), )?--([\w-]+)(?: (\w+))?\s{2,}", re.M)


def _flags(text: str) -> dict[str, tuple[str, str]]:
    return {f"--{m.group(2)}": (m.group(1) or "", m.group(3) or "") for m in _FLAG.finditer(text)}


@pytest.mark.parametrize(
    "command",
    ["network create", "network ls", "network inspect", "network rm", "network prune", "network connect",
     "network disconnect", "volume create", "volume ls", "volume inspect", "volume rm", "volume prune", "build",
     "commit", "builder prune", "port"],
)  # fmt: skip
def test_help_offers_dockers_flags(cli: CLI, command: str) -> None:
    want = docker_via(cli.daemon, cli.daemon.socket, *command.split(), "--help", env={"DOCKER_BUILDKIT": "0"})
    got = cli.run(*command.split(), "--help", host=False)
    assert got.returncode == want.returncode == 0
    theirs = {k: v for k, v in _flags(want.stdout).items() if k not in NOT_OFFERED.get(command, set())}
    ours = _flags(got.stdout)
    ours.pop("--help", None)
    theirs.pop("--help", None)
    assert {k: ours.get(k) for k in theirs} == theirs
    summary = want.stdout.split("\n\n")[1]
    assert got.stdout.split("\n\n")[1] == summary.replace("docker", "pydocker")


MY_RUN_FLAGS = (
    "--add-host", "--dns", "--dns-option", "--dns-search", "--expose", "--ip", "--ip6", "--link", "--link-local-ip",
    "--mac-address", "--network", "--network-alias", "--publish", "--publish-all", "--mount", "--volume",
    "--volume-driver", "--volumes-from", "--health-cmd", "--health-interval", "--health-retries",
    "--health-start-interval", "--health-start-period", "--health-timeout", "--no-healthcheck",
)  # fmt: skip


@pytest.mark.parametrize("command", ["run", "create"])
def test_run_help_networking_storage_health_flags(cli: CLI, command: str) -> None:
    # (with no daemon to ask: the Docker CLI hides flags the engine's API version lacks, pydocker never asks)
    theirs = _flags(docker_via(cli.daemon, Path("/nonexistent/pdc.sock"), command, "--help").stdout)
    ours = _flags(cli.run(command, "--help", host=False).stdout)
    assert {f: ours.get(f) for f in MY_RUN_FLAGS} == {f: theirs.get(f) for f in MY_RUN_FLAGS}


def test_create_refused_by_the_engine(cli: CLI) -> None:
    """`create` reports the engine's refusal as any command does (status 1); `run` says 125."""
    for verb, status, prefix in (
        ("create", 1, "Error response from daemon: "),
        ("run", 125, "docker: Error response"),
    ):
        args = [verb, "--pull", "never", "pdc-no-such-image:x"]
        want = cli.daemon.docker(*args)
        got = cli.run(*args)
        assert (got.returncode, got.stdout) == (want.returncode, want.stdout) == (status, ""), explain(got)
        assert got.stderr.replace("pydocker", "docker").startswith(prefix) and want.stderr.startswith(prefix)
