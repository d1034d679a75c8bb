"""`pydocker volume ...` against the engine, side by side with the Docker CLI 28, and the
storage options of run: named and anonymous `-v` volumes keeping data between containers,
`--mount` of each type, `--volumes-from`, `--volume-driver`, a volume in use refused at rm."""

from __future__ import annotations

import json

from tests.cli.cli_helpers import CLI, Names, explain, needs_engine_feature
from tests.cli.test_cli_networks import same

pytestmark = needs_engine_feature("volumes")


def test_create_ls_inspect(cli: CLI, names: Names) -> None:
    a, b = names.volume("ls"), names.volume("ls")
    assert cli.ok("volume", "create", "--label", "pdc=1", a) == f"{a}\n"  # one: Docker joins several randomly
    assert cli.ok("volume", "create", "--name", b, "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
                  "-o", "o=size=1m") == f"{b}\n"  # fmt: skip
    assert cli.ok("volume", "create", a) == f"{a}\n"  # again: the same volume
    data = json.loads(cli.ok("volume", "inspect", b))[0]
    assert (
        data["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"} and data["Driver"] == "local"
    )
    for args in (
        ["-f", f"name={names.tag}"],
        ["-q", "-f", f"name={names.tag}"],
        ["-f", "label=pdc=1", "--format", "{{.Name}} {{.Labels}} {{.Label \"x\"}} {{.Label \"pdc\"}}"],
        ["-f", f"name={names.tag}", "--format", "json"],
        ["-f", f"name={names.tag}", "--format", "{{json .}}"],
        ["-f", f"name={names.tag}", "--format",
         "table {{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Size}}\t{{.Links}}\t{{.Mountpoint}}\t{{.Status}}"],
        ["-f", "dangling=true", "-f", f"name={names.tag}"],
        ["-f", "bogus=1"],
    ):  # fmt: skip
        same(cli, "volume", "ls", *args)
    same(cli, "volume", "inspect", a, b)
    same(cli, "volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{json .Labels}}", a, "pdc-no-such-volume")
    same(cli, "volume", "inspect", "--format", "json", a)
    same(cli, "volume", "inspect", "pdc-no-such-volume")


def test_named_volume_keeps_data_and_rm_refuses_in_use(cli: CLI, names: Names) -> None:
    vol = names.volume("data")
    writer = names.container("w")
    res = cli.run("run", "--name", writer, "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert res.returncode == 0, explain(res)
    res = cli.run("run", "--rm", "--mount", f"type=volume,src={vol},dst=/d,readonly", "busybox", "sh", "-c",
                  "cat /d/f; touch /d/g")  # fmt: skip
    assert res.stdout == "kept\n" and "Read-only file system" in res.stderr, explain(res)
    reader = cli.run("run", "--rm", "--volumes-from", f"{writer}:ro", "busybox", "cat", "/data/f")
    assert reader.stdout == "kept\n", explain(reader)
    assert cli.ok("volume", "ls", "-q", "-f", f"name={vol}") == f"{vol}\n"
    res = cli.run("volume", "rm", vol, "pdc-no-such-volume")
    assert res.returncode == 1 and res.stdout == "", explain(res)
    lines = res.stderr.splitlines()
    assert lines[0].startswith(f"Error response from daemon: remove {vol}: volume is in use - [")
    assert lines[1] == "Error response from daemon: get pdc-no-such-volume: no such volume"
    cli.ok("rm", writer)
    assert cli.ok("volume", "rm", vol) == f"{vol}\n"
    assert cli.ok("volume", "rm", "-f", "pdc-no-such-volume") == "pdc-no-such-volume\n"


def test_anonymous_volume_and_mount_types(cli: CLI, names: Names) -> None:
    name = names.container("anon")
    res = cli.run(
        "run", "--name", name, "-v", "/anon", "--volume-driver", "local",
        "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
        "--mount", "type=bind,src=/etc,dst=/hostetc,readonly",
        "busybox", "sh", "-c", "echo x > /anon/f; stat -c %a /t; grep -c ' /t tmpfs' /proc/mounts; test -s /hostetc/hostname",
    )  # fmt: skip
    assert res.returncode == 0, explain(res)
    assert res.stdout == "1770\n1\n"
    mounts = json.loads(cli.ok("inspect", "-f", "{{json .Mounts}}", name))
    anon = [m for m in mounts if m["Destination"] == "/anon"]
    assert len(anon) == 1 and anon[0]["Type"] == "volume" and anon[0]["Driver"] == "local"
    volume = anon[0]["Name"]
    assert any(m["Type"] == "bind" and m["Destination"] == "/hostetc" and not m["RW"] for m in mounts)
    names.volumes.append(volume)
    assert cli.ok("rm", "-v", name) == f"{name}\n"
    assert cli.daemon.docker("volume", "inspect", volume).returncode == 1  # removed with its container


def test_prune(cli: CLI, names: Names) -> None:
    vol = names.volume("prune")
    cli.ok("volume", "create", "--label", f"pdc-prune={names.tag}", vol)
    assert cli.ok("volume", "prune", "--filter", f"label=pdc-prune={names.tag}", input="n\n") == (
        "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
        "Are you sure you want to continue? [y/N] "
    )
    # before API 1.42 (20.10 and pydockerd speak 1.41) a prune takes unused named volumes too
    out = cli.ok("volume", "prune", "-f", "--filter", f"label=pdc-prune={names.tag}")
    assert out == f"Deleted Volumes:\n{vol}\n\nTotal reclaimed space: 0B\n", out
    assert (
        cli.ok("volume", "prune", "-f", "--filter", f"label=pdc-prune={names.tag}")
        == "Total reclaimed space: 0B\n"
    )
