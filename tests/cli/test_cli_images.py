"""Image verbs against the reference engine: save + load round trip, images listing and
formats, tag/rmi, history, image inspect, import of an exported filesystem, prune, df."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

from tests.cli.cli_helpers import CLI, Names, explain
from tests.tarread import member


def test_save_and_load_round_trip(cli: CLI, names: Names, tmp_path: Path) -> None:
    tag = names.image("rt")
    cli.ok("tag", "busybox", tag)
    archive = tmp_path / "saved.tar"
    cli.ok("save", "-o", str(archive), tag)
    with tarfile.open(archive) as tar:
        manifest = json.load(member(tar, "manifest.json"))
    assert manifest[0]["RepoTags"] == [tag]
    image_id = cli.ok("image", "inspect", "-f", "{{.Id}}", tag).strip()
    assert cli.ok("rmi", tag) == f"Untagged: {tag}\n"
    assert cli.run("image", "inspect", tag).returncode == 1
    assert cli.ok("load", "-i", str(archive)) == f"Loaded image: {tag}\n"
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", tag).strip() == image_id
    # stdout/stdin variants: save to a pipe, load from stdin (the archive goes up chunked)
    saved = cli.run_bytes("save", tag)
    assert saved.returncode == 0 and len(saved.stdout) > 1_000_000
    cli.ok("rmi", tag)
    loaded = cli.run_bytes("load", input=saved.stdout)
    assert loaded.returncode == 0 and loaded.stdout == f"Loaded image: {tag}\n".encode()
    # the reference CLI reads what pydocker saved
    cli.ok("rmi", tag)
    cli.daemon.docker_ok("load", "-i", str(archive))
    assert cli.ok("images", "-q", tag) == image_id.split(":")[1][:12] + "\n"


def test_images_listing_and_formats(cli: CLI, names: Names) -> None:
    tag = names.image("ls")
    cli.ok("tag", "busybox", tag)
    repo, _, label = tag.partition(":")
    table = cli.ok("images", repo).splitlines()
    assert re.match(r"REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$", table[0])
    assert re.match(rf"{repo}\s+{label}\s+[0-9a-f]{{12}}\s+.+ ago\s+[\d.]+[kMG]?B$", table[1]), table
    assert cli.ok("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo) == f"{tag}\n"
    row = json.loads(cli.ok("images", "--format", "json", repo))
    assert row["Repository"] == repo and row["Tag"] == label and len(row["ID"]) == 12
    full = cli.ok("images", "--no-trunc", "-q", repo).strip()
    assert full.startswith("sha256:") and len(full) == 71
    by_filter = cli.ok("images", "--filter", f"reference={repo}", "--format", "{{.Tag}}")
    assert by_filter == f"{label}\n"
    digests = cli.ok("images", "--digests", repo).splitlines()[0]
    assert "DIGEST" in digests


def test_tag_and_rmi(cli: CLI, names: Names) -> None:
    a, b = names.image("ta"), names.image("tb")
    cli.ok("tag", "busybox", a)
    cli.ok("image", "tag", a, b)
    ids = {cli.ok("image", "inspect", "-f", "{{.Id}}", ref).strip() for ref in ("busybox", a, b)}
    assert len(ids) == 1
    res = cli.run("image", "rm", a, b, "pdc-absent-image")
    assert res.returncode == 1, explain(res)
    assert res.stdout == f"Untagged: {a}\nUntagged: {b}\n"
    assert "No such image: pdc-absent-image" in res.stderr


def test_history_and_inspect(cli: CLI) -> None:
    hist = cli.ok("history", "busybox").splitlines()
    assert re.match(r"IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$", hist[0])
    assert 'CMD ["sh"]' in hist[1] and "<missing>" in hist[2]
    assert cli.ok("image", "history", "-q", "busybox").splitlines()[1] == "<missing>"
    raw = cli.ok("history", "-H=false", "--format", "{{.Size}}", "busybox").split()
    assert all(s.isdigit() for s in raw)
    data = json.loads(cli.ok("image", "inspect", "busybox"))
    assert data[0]["RepoTags"] == ["busybox:latest"] and data[0]["Config"]["Cmd"] == ["sh"]


def test_import_exported_filesystem(cli: CLI, names: Names, tmp_path: Path) -> None:
    src = names.container("exp")
    cli.ok("run", "--name", src, "busybox", "sh", "-c", "echo imported-marker > /marker")
    fs = tmp_path / "fs.tar"
    cli.ok("export", "-o", str(fs), src)
    target = names.image("imp")
    out = cli.ok("import", "-c", 'CMD ["cat", "/marker"]', "-m", "from pydocker", str(fs), target)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    assert cli.ok("run", "--rm", target) == "imported-marker\n"
    assert cli.ok("image", "history", "--format", "{{.Comment}}", target).splitlines()[0] == "from pydocker"
    target2 = names.image("imp2")
    out2 = cli.run_bytes("image", "import", "-", target2, input=fs.read_bytes())
    assert out2.returncode == 0 and out2.stdout.startswith(b"sha256:")
    assert cli.ok("run", "--rm", target2, "cat", "/marker") == "imported-marker\n"


def test_image_prune_and_system_df(cli: CLI) -> None:
    out = cli.ok("image", "prune", "-f")
    assert out.endswith("Total reclaimed space: 0B\n") or "Deleted Images:" in out
    df = cli.ok("system", "df").splitlines()
    assert re.match(r"TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$", df[0])
    assert [line.split()[0] for line in df[1:]] == ["Images", "Containers", "Local", "Build"]
    assert cli.ok("system", "df", "--format", "{{.Type}}").splitlines()[0] == "Images"
    verbose = cli.ok("system", "df", "-v")
    assert "Images space usage:" in verbose and "busybox" in verbose
