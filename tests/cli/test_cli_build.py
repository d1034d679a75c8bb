"""`pydocker build` (classic builder) and `commit` against the engine, side by side with the
Docker CLI 28 (DOCKER_BUILDKIT=0): the printed stream, `.dockerignore` applied client-side
(both images hold the same files), tags, build args, labels, targets, -q and --iidfile, contexts
and Dockerfiles from stdin and from outside the context, a failing step's exit code; `commit`
with changes, message and author; `builder prune` and `system df -v` as Docker prints them."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

from tests.cli.cli_helpers import CLI, Names, explain, needs_engine_feature
from tests.cli.test_cli_networks import same
from tests.dockerd_ref import without_host_warnings

DOCKER_ENV = {"DOCKER_BUILDKIT": "0"}
_DEPRECATED = re.compile(r"DEPRECATED: The legacy builder.*?\n\n", re.S)


def docker_build(cli: CLI, *args: str, cwd: Path, input: bytes = b"") -> tuple[int, str, str]:
    import subprocess

    from tests.dockerd_ref import DOCKER_CLI

    res = subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{cli.daemon.socket}", "build", *args], input=input, capture_output=True,
        cwd=cwd, env={**cli.daemon._cli_env, **DOCKER_ENV}, timeout=300,
    )  # fmt: skip
    err = _DEPRECATED.sub("", res.stderr.decode(errors="replace"), count=1)
    return res.returncode, res.stdout.decode(errors="replace"), err


def generic(text: str) -> str:
    """Build output with what differs between two builds of the same thing made generic."""
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<id>", text)
    return without_host_warnings(
        text.replace(" ---> [Warning] IPv4 forwarding is disabled. Networking will not work.\n", "")
    )


def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    for rel, text in {
        "keep.txt": "keep", "secret/key": "k", "logs/a.log": "a", "logs/keep.log": "kept", "x.tmp": "t",
        "sub/y.tmp": "t", "sub/deep/z.txt": "z", "docs/README.md": "r", "docs/other.md": "o",
    }.items():  # fmt: skip
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text(text)
    (ctx / ".dockerignore").write_text(
        "# comment\nsecret\nlogs/*.log\n!logs/keep.log\n**/*.tmp\n/docs\n!docs/README.md\nDockerfile\n"
    )
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS base\nARG WHO=nobody\nLABEL stage=base\nRUN echo hello $WHO > /hello\n"
        'FROM base AS final\nCOPY . /ctx\nCMD ["cat", "/hello"]\n'
    )
    return ctx


@needs_engine_feature("build")
def test_build_directory_as_docker(cli: CLI, names: Names, tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    ours, theirs = names.image("b"), names.image("b")
    args = ["--build-arg", "WHO=pdc", "--label", "pdc=1", "--no-cache"]
    got = cli.run("build", *args, "-t", ours, "-t", names.image("b2"), ".", cwd=ctx, timeout=300)
    rc, out, err = docker_build(cli, *args, "-t", theirs, ".", cwd=ctx)
    assert got.returncode == rc == 0, explain(got) + err
    assert got.stdout.startswith("Sending build context to Docker daemon  ")
    assert generic(got.stdout).replace(ours, theirs).replace(
        f"Successfully tagged {names.images[2]}\n", ""
    ) == generic(out)
    listing = "find /ctx | sort"
    files = cli.ok("run", "--rm", "--entrypoint", "sh", ours, "-c", listing).split()
    assert files == cli.ok("run", "--rm", "--entrypoint", "sh", theirs, "-c", listing).split()
    # (the daemon's COPY leaves out what .dockerignore names, the Dockerfile too; the context size
    # in the output above shows the CLI sent what Docker's sends)
    assert files == ["/ctx", "/ctx/.dockerignore", "/ctx/docs", "/ctx/docs/README.md",
                     "/ctx/keep.txt", "/ctx/logs", "/ctx/logs/keep.log", "/ctx/sub", "/ctx/sub/deep",
                     "/ctx/sub/deep/z.txt"]  # fmt: skip
    assert cli.ok("run", "--rm", ours) == "hello pdc\n"
    labels = json.loads(cli.ok("image", "inspect", "-f", "{{json .Config.Labels}}", ours))
    assert labels == {"stage": "base", "pdc": "1"}
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", ours) == cli.ok(
        "image", "inspect", "-f", "{{.Id}}", names.images[2]
    )


@needs_engine_feature("build")
def test_build_quiet_iidfile_target(cli: CLI, names: Names, tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    tag = names.image("q")
    iid = tmp_path / "iid"
    iid.write_text("stale")
    res = cli.run("build", "-q", "--target", "base", "--iidfile", str(iid), "-t", tag, str(ctx), timeout=300)
    assert res.returncode == 0, explain(res)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", res.stdout), res.stdout
    assert iid.read_text() == res.stdout  # newline and all, as the Docker CLI writes it with -q
    assert cli.ok("image", "inspect", "-f", "{{.Id}}", tag) == res.stdout
    assert (
        cli.daemon.docker("run", "--rm", tag, "ls", "/ctx").returncode != 0
    )  # the target stopped before COPY


@needs_engine_feature("build")
def test_build_from_stdin_and_outside_dockerfile(cli: CLI, names: Names, tmp_path: Path) -> None:
    dockerfile = b'FROM busybox\nCOPY . /ctx\nRUN ls /ctx > /listing\nCMD ["cat", "/listing"]\n'
    # a Dockerfile alone on stdin: an empty context
    tag, theirs = names.image("stdin"), names.image("stdin")
    res = cli.run("build", "-t", tag, "-", input=dockerfile, timeout=300)
    rc, out, _ = docker_build(cli, "-t", theirs, "-", cwd=tmp_path, input=dockerfile)
    assert res.returncode == rc == 0, explain(res)
    assert res.stdout.startswith(
        "Sending build context to Docker daemon  2.048kB\r\r\nStep 1/4 : FROM busybox\n"
    )
    assert generic(res.stdout).replace(tag, theirs) == generic(out)
    assert cli.ok("run", "--rm", tag) == "Dockerfile\n"
    # a tar on stdin is the context itself
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile), ("a.txt", b"a")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tag2 = names.image("tar")
    res = cli.run("build", "-q", "-t", tag2, "-", input=buf.getvalue(), timeout=300)
    assert res.returncode == 0, explain(res)
    assert cli.ok("run", "--rm", tag2) == "Dockerfile\na.txt\n"
    # a Dockerfile outside the context, and one given on stdin with a directory context
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "b.txt").write_text("b")
    outside = tmp_path / "Dockerfile.out"
    outside.write_bytes(dockerfile)
    for extra, stdin in ((["-f", str(outside)], b""), (["-f", "-"], dockerfile)):
        tag3 = names.image("out")
        res = cli.run("build", "-t", tag3, *extra, str(ctx), input=stdin, timeout=300)
        assert res.returncode == 0, explain(res)
        # the Dockerfile went in under a random name that .dockerignore hides from COPY
        assert cli.ok("run", "--rm", tag3) == "b.txt\n"


@needs_engine_feature("build")
def test_failing_step_exit_code(cli: CLI, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo before; exit 3\n")
    # --force-rm: the failed step's container goes too (it would show in later tests' listings)
    res = cli.run("build", "--force-rm", str(ctx), timeout=300)
    rc, out, err = docker_build(cli, "--force-rm", str(ctx), cwd=tmp_path)
    assert (res.returncode, generic(res.stdout), res.stderr) == (rc, generic(out), err) == (
        3, generic(out), "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3\n",
    ), explain(res)  # fmt: skip
    (ctx / "Dockerfile").write_text("FROM busybox\nBOGUS x\n")
    res = cli.run("build", "-q", str(ctx), timeout=300)
    rc, out, err = docker_build(cli, "-q", str(ctx), cwd=tmp_path)
    assert (res.returncode, res.stdout, res.stderr) == (rc, out, err), explain(res)
    assert rc != 0 and "unknown instruction" in err.lower()
    dangling = cli.daemon.docker("images", "-q", "-f", "dangling=true").stdout.split()
    if dangling:  # the failed builds' intermediate images
        cli.daemon.docker("rmi", "-f", *dangling)


@needs_engine_feature("commit")
def test_commit(cli: CLI, names: Names) -> None:
    name = names.container("commit")
    cli.ok("run", "--name", name, "busybox", "sh", "-c", "echo committed > /f")
    tag = names.image("commit")
    out = cli.ok(
        "commit",
        "-c",
        "ENV PDC=1",
        "-c",
        'CMD ["cat", "/f"]',
        "-m",
        "a message",
        "-a",
        "pdc <p@d.c>",
        name,
        tag,
    )
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
    data = json.loads(cli.ok("image", "inspect", tag))[0]
    assert data["Id"] == out.strip() and data["Comment"] == "a message" and data["Author"] == "pdc <p@d.c>"
    assert "PDC=1" in data["Config"]["Env"] and data["Config"]["Cmd"] == ["cat", "/f"]
    assert cli.ok("run", "--rm", tag) == "committed\n"
    untagged = cli.ok("commit", "--pause=false", name).strip()
    names.images.append(untagged)
    assert cli.ok("image", "inspect", "-f", "{{.RepoTags}}", untagged) == "[]\n"
    same(cli, "commit", "pdc-no-such-container", "pdc-x")
    same(cli, "commit", "-c", "BOGUS x", name, "pdc-x")


def _relative_times(text: str) -> str:
    """df's table with its "N seconds ago" made generic (the two CLIs run a moment apart), and
    the columns' widths that follow from them."""
    text = re.sub(r"(Less than a second|About a minute|\d+ seconds?|\d+ minutes?) ago", "<t>", text)
    return re.sub(r" {2,}", "  ", text)


def same_df(cli: CLI) -> str:
    """`system df -v` printed alike by pydocker and the Docker CLI (but for relative times)."""
    got, want = cli.run("system", "df", "-v"), cli.daemon.docker("system", "df", "-v")
    assert (got.returncode, _relative_times(got.stdout)) == (want.returncode, _relative_times(want.stdout)), (
        explain(got) + f"\n--- docker ---\n{want.stdout}"
    )
    return got.stdout


def test_builder_prune_and_df_verbose(cli: CLI, names: Names, tmp_path: Path) -> None:
    assert cli.ok("builder", "prune", "--filter", "until=1h", input="n\n") == (
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
    )
    # A build's steps: pydockerd keeps them as build cache records (the reference's classic
    # builder keeps intermediate images, which BuildKit's prune and df do not see).
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo cached > /c\nENV C=1\n")
    tag = names.image("cache")
    assert cli.run("builder", "prune", "-a", "-f").returncode == 0  # what earlier tests' builds left
    rc, _, err = docker_build(cli, "-q", "-t", tag, str(ctx), cwd=tmp_path)
    assert rc == 0, err
    out = same_df(cli)
    pydockerd = "pydocker" in cli.daemon.docker_ok("version", "--format", "{{.Server.Version}}")
    if pydockerd:
        # two records (RUN: its layer, shared with the tagged image; ENV: no layer)
        assert (
            re.search(r"\n[0-9a-f]{12} +regular +8\.19kB .* true\n", out) and out.count(" regular ") >= 2
        ), out
        res = cli.run("builder", "prune", "-a", "-f")
        assert res.returncode == 0 and res.stdout.startswith("Deleted build cache objects:\n"), explain(res)
        # the image still holds the step's layer, so pruning its record frees nothing
        assert res.stdout.endswith("\n\nTotal reclaimed space: 0B\n"), res.stdout
        assert cli.ok("run", "--rm", tag, "cat", "/c") == "cached\n"
    res = cli.run("builder", "prune", "-a", "-f")
    want = cli.daemon.docker("builder", "prune", "-a", "-f")
    assert (
        (res.returncode, res.stdout) == (want.returncode, want.stdout) == (0, "Total reclaimed space: 0B\n")
    )
    out = same_df(cli)
    assert "\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\n" in out
    assert (
        "\nBuild cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
        in out
    )
