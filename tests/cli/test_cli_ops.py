"""Operations on existing containers: cp both ways, pause/unpause, rename, inspect -f, ps
filters and formats, events, stats, top, diff, export, update, container prune."""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

import pytest

from tests.cli.cli_helpers import CLI, Names, explain


@pytest.fixture
def sleeper(cli: CLI, names: Names) -> str:
    name = names.container("sl")
    cli.ok("run", "-d", "--name", name, "-l", "pdc.role=sleeper", "busybox", "sleep", "600")
    return name


def test_cp_container_to_host(cli: CLI, sleeper: str, tmp_path: Path) -> None:
    cli.ok("exec", sleeper, "sh", "-c", "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b")
    # a file into an existing directory keeps its name
    cli.ok("cp", f"{sleeper}:/data/a", str(tmp_path))
    assert (tmp_path / "a").read_text() == "one\n"
    # a file to a new path takes that name
    cli.ok("cp", f"{sleeper}:/data/a", str(tmp_path / "renamed"))
    assert (tmp_path / "renamed").read_text() == "one\n"
    # a directory to a new path, and into an existing directory
    cli.ok("cp", f"{sleeper}:/data", str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "sub" / "b").read_text() == "two\n"
    (tmp_path / "into").mkdir()
    cli.ok("cp", f"{sleeper}:/data", str(tmp_path / "into"))
    assert (tmp_path / "into" / "data" / "a").read_text() == "one\n"
    # SRC/. copies the contents only
    cli.ok("cp", f"{sleeper}:/data/.", str(tmp_path / "contents"))
    assert sorted(p.name for p in (tmp_path / "contents").iterdir()) == ["a", "sub"]
    # to stdout as a tar stream
    res = cli.run_bytes("cp", f"{sleeper}:/data/sub/b", "-")
    assert res.returncode == 0
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        member = tar.getmember("b")
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"two\n"
    res2 = cli.run("cp", f"{sleeper}:/pdc/none", str(tmp_path))
    assert res2.returncode == 1 and "Error response from daemon" in res2.stderr, explain(res2)


def test_cp_host_to_container(cli: CLI, sleeper: str, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("from host\n")
    tree = tmp_path / "tree"
    (tree / "deep").mkdir(parents=True)
    (tree / "deep" / "x").write_text("x\n")
    (tree / "link").symlink_to("deep/x")
    cli.ok("cp", str(tmp_path / "f.txt"), f"{sleeper}:/tmp")
    cli.ok("cp", str(tmp_path / "f.txt"), f"{sleeper}:/tmp/other-name")
    cli.ok("cp", str(tree), f"{sleeper}:/tmp")
    cli.ok("cp", str(tree), f"{sleeper}:/tmp/tree2")
    cli.ok("cp", f"{tree}/.", f"{sleeper}:/tmp/flat")
    listing = cli.ok("exec", sleeper, "sh", "-c",
                     "cat /tmp/f.txt /tmp/other-name /tmp/tree/deep/x /tmp/tree2/link /tmp/flat/deep/x; readlink /tmp/tree/link")  # fmt: skip
    assert listing == "from host\nfrom host\nx\nx\nx\ndeep/x\n"
    # a tar on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"streamed\n"
        info = tarfile.TarInfo("streamed.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    res = cli.run_bytes("cp", "-", f"{sleeper}:/tmp", input=buf.getvalue())
    assert res.returncode == 0, res.stderr
    assert cli.ok("exec", sleeper, "cat", "/tmp/streamed.txt") == "streamed\n"
    missing = cli.run("cp", str(tmp_path / "absent"), f"{sleeper}:/tmp")
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr


def test_pause_unpause(cli: CLI, sleeper: str) -> None:
    assert cli.ok("pause", sleeper) == f"{sleeper}\n"
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", sleeper) == "paused true\n"
    assert "(Paused)" in cli.ok("ps", "--filter", f"name={sleeper}", "--format", "{{.Status}}")
    assert cli.ok("unpause", sleeper) == f"{sleeper}\n"
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", sleeper) == "running false\n"


def test_rename(cli: CLI, sleeper: str, names: Names) -> None:
    new = names.container("renamed")
    assert cli.ok("rename", sleeper, new) == ""
    assert cli.ok("inspect", "-f", "{{.Name}}", new) == f"/{new}\n"
    assert cli.run("inspect", sleeper).returncode == 1


def test_inspect_format_variants(cli: CLI, sleeper: str) -> None:
    out = cli.ok(
        "inspect", "-f",
        "{{.Name}}|{{.State.Running}}|{{json .Config.Cmd}}|{{index .Config.Labels \"pdc.role\"}}|"
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}|{{if .State.Paused}}p{{else}}np{{end}}|{{len .Id}}|"
        "{{.Config.Cmd}}|{{upper .Config.Image}}",
        sleeper,
    )  # fmt: skip
    assert out == f'/{sleeper}|true|["sleep","600"]|sleeper|pdc.role=sleeper|np|64|[sleep 600]|BUSYBOX\n'
    data = json.loads(cli.ok("container", "inspect", sleeper))
    assert data[0]["Name"] == f"/{sleeper}" and data[0]["State"]["Status"] == "running"
    assert json.loads(cli.ok("inspect", "--format", "{{json .State}}", sleeper))["Running"] is True
    assert json.loads(cli.ok("inspect", "--format", "json", sleeper))["Id"] == data[0]["Id"]
    img = cli.ok("inspect", "--type", "image", "-f", "{{.Config.Cmd}}", "busybox")
    assert img == "[sh]\n"
    bad = cli.run("inspect", "-f", "{{nosuchfunc .Id}}", sleeper)
    assert bad.returncode == 1 and 'function "nosuchfunc" not defined' in bad.stderr


def test_ps_filters_and_formats(cli: CLI, names: Names, sleeper: str) -> None:
    exited = names.container("ex")
    assert (
        cli.run("run", "--name", exited, "-l", "pdc.role=done", "busybox", "sh", "-c", "exit 2").returncode
        == 2
    )
    running = cli.ok("ps", "--format", "{{.Names}}").split()
    assert sleeper in running and exited not in running
    assert exited in cli.ok("ps", "-a", "--format", "{{.Names}}").split()
    assert cli.ok("ps", "-a", "--filter", "label=pdc.role=done", "--filter", f"name={names.tag}",
                  "--format", "{{.Names}} {{.State}}") == f"{exited} exited\n"  # fmt: skip
    assert (
        cli.ok("ps", "-a", "--filter", "exited=2", "--filter", f"name={names.tag}", "--format", "{{.Names}}")
        == f"{exited}\n"
    )
    assert cli.ok("ps", "--filter", "status=running", "--filter", f"name={names.tag}", "-q") == \
        cli.ok("inspect", "-f", "{{.Id}}", sleeper)[:12] + "\n"  # fmt: skip
    assert len(cli.ok("ps", "-q", "--no-trunc", "--filter", f"name={sleeper}").strip()) == 64
    assert cli.ok("ps", "-l", "--format", "{{.Names}}") == f"{exited}\n"
    assert cli.ok("ps", "-n", "2", "--format", "{{.Names}}").split() == [exited, sleeper]
    table = cli.ok("ps", "--filter", f"name={sleeper}").splitlines()
    assert re.match(r"CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$", table[0])
    assert re.match(r"[0-9a-f]{12}\s+busybox\s+\"sleep 600\"\s+.+ ago\s+Up .+\s+" + sleeper + "$", table[1])
    custom = cli.ok(
        "ps", "--filter", f"name={sleeper}", "--format", 'table {{.Names}}\\t{{.Label "pdc.role"}}'
    )
    assert re.match(r"NAMES\s+LABEL\n" + sleeper + r"\s+sleeper\n$", custom), custom
    row = json.loads(cli.ok("ps", "--filter", f"name={sleeper}", "--format", "json"))
    assert row["Names"] == sleeper and row["State"] == "running" and row["Labels"] == "pdc.role=sleeper"
    sized = cli.ok("ps", "-s", "--filter", f"name={sleeper}").splitlines()
    assert sized[0].endswith("SIZE") and "(virtual " in sized[1]


def test_events_during_a_run(cli: CLI, names: Names) -> None:
    name = names.container("ev")
    since = time.time()
    watcher = cli.popen(
        "events",
        "--filter",
        f"container={name}",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    )
    time.sleep(1.0)  # let the events stream connect before the run starts
    cli.ok("run", "--rm", "--name", name, "busybox", "true")
    assert watcher.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while "destroy" not in " ".join(seen):
        assert time.monotonic() < deadline, seen
        line = watcher.stdout.readline().decode().strip()
        if line:
            seen.append(line)
    watcher.terminate()
    watcher.wait(timeout=10)
    actions = [line.split()[1] for line in seen]
    assert actions[:1] == ["create"] and {"start", "die", "destroy"} <= set(actions), seen
    assert all(line.startswith("container ") and line.endswith(f" {name}") for line in seen)
    # the same history, bounded, in Docker's default layout
    past = cli.ok(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}", "--filter", f"container={name}"
    )
    die = [line for line in past.splitlines() if " container die " in line]
    assert len(die) == 1 and re.match(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z container die [0-9a-f]{64} \(", die[0]
    )
    assert f"name={name}" in die[0] and "exitCode=0" in die[0]


def test_stats_no_stream(cli: CLI, sleeper: str) -> None:
    out = cli.ok("stats", "--no-stream", sleeper, timeout=60).splitlines()
    assert re.match(
        r"CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE / LIMIT\s+MEM %\s+NET I/O\s+BLOCK I/O\s+PIDS$", out[0]
    )
    assert re.match(
        rf"[0-9a-f]{{12}}\s+{sleeper}\s+\d+\.\d\d%\s+[\d.]+\w+ / [\d.]+\w+\s+\d+\.\d\d%", out[1]
    ), out[1]
    assert cli.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", sleeper) == f"{sleeper} 1\n"


def test_top(cli: CLI, sleeper: str) -> None:
    lines = cli.ok("top", sleeper).splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"] and lines[0].split()[-1] == "CMD"
    assert lines[1].split()[0] == "root" and lines[1].endswith("sleep 600")
    custom = cli.ok("top", sleeper, "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and custom[1].split()[1] == "sleep"


def test_diff_and_export(cli: CLI, sleeper: str, tmp_path: Path) -> None:
    cli.ok("exec", sleeper, "sh", "-c", "echo x > /tmp/new-file; rm /bin/vi")
    changes = cli.ok("diff", sleeper).splitlines()
    assert "A /tmp/new-file" in changes and "D /bin/vi" in changes and "C /tmp" in changes
    target = tmp_path / "fs.tar"
    cli.ok("export", "-o", str(target), sleeper)
    with tarfile.open(target) as tar:
        names = tar.getnames()
    assert "tmp/new-file" in names and "bin/busybox" in names and "bin/vi" not in names


def test_update_resources(cli: CLI, sleeper: str) -> None:
    assert (
        cli.ok("update", "--pids-limit", "30", "--cpus", "1.5", "--restart", "always", sleeper)
        == f"{sleeper}\n"
    )
    hc = json.loads(cli.ok("inspect", "-f", "{{json .HostConfig}}", sleeper))
    assert (
        hc["PidsLimit"] == 30 and hc["NanoCpus"] == 1_500_000_000 and hc["RestartPolicy"]["Name"] == "always"
    )
    res = cli.run("update", sleeper)
    assert res.returncode == 1 and "provide one or more flags" in res.stderr


def test_container_prune(cli: CLI, names: Names) -> None:
    name = names.container("pr")
    cid = cli.ok("create", "--name", name, "busybox", "true").strip()
    out = cli.ok("container", "prune", "-f", "--filter", "label!=pdc.keep")
    assert cid in out.splitlines() and out.endswith("Total reclaimed space: 0B\n")
    assert cli.run("inspect", name).returncode == 1
    declined = cli.run("container", "prune", input="n\n")
    assert declined.returncode == 0 and "Are you sure you want to continue? [y/N]" in declined.stdout


def test_port_without_mappings(cli: CLI, sleeper: str) -> None:
    assert cli.ok("port", sleeper) == ""
    res = cli.run("port", sleeper, "80")
    assert (
        res.returncode == 1 and res.stderr == f"Error: No public port '80' published for {sleeper}\n"
    )  # as given
