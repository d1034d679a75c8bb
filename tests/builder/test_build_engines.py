"""`docker build` through pydockerd and the reference dockerd side by side: the same contexts
built by the Docker CLI 28 (DOCKER_BUILDKIT=0, and without it: CLI 28 then falls back to the
classic builder, as the daemon's /_ping asks) and docker-py on both engines, compared by what
they print, the images' config and history, and the files of every layer (`docker save`); the
layer cache (every step "Using cache" on a rebuild, a changed file rebuilds from its COPY on),
--cache-from, FROM pulling a missing base image (and pull=1) from pyregistry, bad input with
Docker's messages and exit codes, and nothing left behind on pydockerd.

One reference dockerd and one pydockerd per module, a pyregistry on loopback where a test needs one."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.dockerd_ref import BUSYBOX_TAR, DOCKER_CLI, RefDockerd, reference_dockerd, without_host_warnings
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

ENGINES = ("reference", "pydockerd")
_DEPRECATED = re.compile(r"DEPRECATED: The legacy builder.*?\n\n", re.S)


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, RefDockerd]]:
    # (the reference has no bridge, --bridge=none, and shares the host's loopback: it reaches
    # the tests' registry there)
    with reference_dockerd({}, images=(BUSYBOX_TAR,)) as ref, pydockerd_engine() as ours:
        yield {"reference": ref, "pydockerd": ours}
        _no_leftovers(ours)


def _no_leftovers(engine: RefDockerd) -> None:
    """No container (Docker's or a build's), task or work snapshot of a build remains."""
    assert engine.docker_ok("ps", "-aq") == ""
    if isinstance(engine, PyDockerd):
        from containerd.client import Client

        with Client(str(engine.exec_root / "containerd" / "pycontainerd.sock"), "moby") as client:
            assert [c.id for c in client.containers.list()] == []
            assert [t.container_id for t in client.tasks.list()] == []
            active = [s.name for s in client.snapshots("overlayfs").list() if s.kind != "committed"]
            assert active == [], active


def docker(engine: RefDockerd, *args: str, cwd: Path | None = None, input: bytes = b"", buildkit: str | None = "0",
           timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = dict(engine._cli_env)
    if buildkit is not None:
        env["DOCKER_BUILDKIT"] = buildkit
    res = subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{engine.socket}", *args], input=input, capture_output=True, cwd=cwd, env=env,
        timeout=timeout,
    )  # fmt: skip
    err = without_host_warnings(_DEPRECATED.sub("", res.stderr.decode(errors="replace"), count=1))
    return subprocess.CompletedProcess(res.args, res.returncode, res.stdout.decode(errors="replace"), err)


def generic(text: str) -> str:
    """Build output with IDs made generic (the container lines of every step, config-only
    ones included, are kept: pydockerd prints them where dockerd does)."""
    text = text.replace(" ---> [Warning] IPv4 forwarding is disabled. Networking will not work.\n", "")
    text = re.sub(r"\b[0-9a-f]{64}\b", "<id>", text)
    return re.sub(r"\b[0-9a-f]{12}\b", "<id>", text)


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return root


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


DOCKERFILE = """\
ARG BASE=busybox
FROM ${BASE} AS base
ARG WHO=world
ENV GREETING="hello ${WHO}" PATH=/opt/bin:$PATH
LABEL org.example.a=1 "b c"=d
WORKDIR /app
COPY --chown=1000:1000 files/ ./files/
COPY a.txt b.txt /app/two/
ADD archive.tar /app/unpacked/
RUN mkdir -p /opt/bin && echo "$GREETING" > /app/greeting && chmod 640 /app/greeting && rm /app/files/gone
USER 1000
EXPOSE 8080/tcp 53/udp
VOLUME ["/data"]
HEALTHCHECK --interval=5s --timeout=3s CMD true
STOPSIGNAL SIGUSR1
ONBUILD RUN echo onbuild
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/greeting"]

FROM busybox AS final
COPY --from=base /app /app
RUN ["sh", "-c", "find /app | sort | xargs stat -c '%n %a %u:%g %s' > /listing"]
SHELL ["/bin/sh", "-ec"]
RUN echo "$((1+2))" > /three
CMD cat /listing
"""


def context(root: Path) -> Path:
    return write(root, {
        "Dockerfile": DOCKERFILE, "a.txt": "a\n", "b.txt": "b\n", "files/x": "x\n", "files/sub/y": "y\n",
        "files/gone": "soon gone\n", "archive.tar": _tar({"in/tar.txt": b"from the tar\n"}),
    })  # fmt: skip


def saved_layers(engine: RefDockerd, ref: str) -> list[list[tuple[Any, ...]]]:
    """Each layer of the image (`docker save`) as its entries: name, type, mode, owner, link
    target, and a digest of a file's data (times left out: they are when the build ran)."""
    raw = subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{engine.socket}", "save", ref], capture_output=True, env=engine._cli_env, timeout=120
    ).stdout  # fmt: skip
    outer = tarfile.open(fileobj=io.BytesIO(raw))
    manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
    layers = []
    for path in manifest[0]["Layers"]:
        inner = tarfile.open(fileobj=outer.extractfile(path))
        entries = []
        for m in inner.getmembers():
            data = hashlib.sha256(inner.extractfile(m).read()).hexdigest()[:16] if m.isfile() else ""  # type: ignore[union-attr]
            # The permission bits (Go's tar writer adds the file type's bits to the mode field);
            # a whiteout's are dockerd's 0600 on both (containerd's own differ writes 0).
            mode = oct(m.mode & 0o7777)
            entries.append((m.name.rstrip("/"), m.type, mode, m.uid, m.gid, m.linkname, data))
        layers.append(sorted(entries))
    return layers


def same_layers(engines: dict[str, RefDockerd], ref: str) -> None:
    ours, theirs = saved_layers(engines["pydockerd"], ref), saved_layers(engines["reference"], ref)
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, (
            f"layer {i}: only ours {sorted(set(a) - set(b))}, only theirs {sorted(set(b) - set(a))}"
        )


def image(engine: RefDockerd, ref: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(engine.docker_ok("image", "inspect", ref))[0]
    return found


def history(engine: RefDockerd, ref: str) -> list[tuple[str, bool]]:
    rows = engine.docker_ok("history", "--no-trunc", "--format", "{{json .}}", ref).splitlines()
    return [(json.loads(r)["CreatedBy"], json.loads(r)["Size"] != "0B") for r in rows]


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    # (NetworkDisabled: the reference runs with --bridge=none, which disables its containers'
    # networking, and commit keeps the container's config)
    return {k: v for k, v in config.items() if k not in ("Hostname", "Image", "NetworkDisabled")}


def test_same_dockerfile_same_image_on_both_engines(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    ctx = context(tmp_path / "ctx")
    tag = f"pdb-same-{uuid.uuid4().hex[:8]}"
    out = {}
    for name, engine in engines.items():
        res = docker(engine, "build", "--build-arg", "WHO=both", "-t", tag, ".", cwd=ctx)
        assert res.returncode == 0, f"{name}: {res.stderr}\n{res.stdout}"
        out[name] = generic(res.stdout)
    assert out["pydockerd"] == out["reference"]
    assert " : ADD archive.tar /app/unpacked/\n" in out["pydockerd"]
    ours, theirs = image(engines["pydockerd"], tag), image(engines["reference"], tag)
    assert comparable_config(ours["Config"]) == comparable_config(theirs["Config"])
    assert ours["Config"]["Cmd"] == ["/bin/sh", "-ec", "cat /listing"]
    assert (ours["Os"], ours["Architecture"], len(ours["RootFS"]["Layers"])) == (
        theirs["Os"], theirs["Architecture"], len(theirs["RootFS"]["Layers"]))  # fmt: skip
    # (the COPY entries' checksums too: Docker's tarsum of the sources, from the context and
    # from the base stage)
    assert history(engines["pydockerd"], tag) == history(engines["reference"], tag)
    same_layers(engines, tag)
    # the base stage's image, its ONBUILD, HEALTHCHECK, user, volume, ports
    base_tag = tag + "-base"
    for engine in engines.values():
        assert (
            docker(
                engine,
                "build",
                "-q",
                "--build-arg",
                "WHO=both",
                "--target",
                "base",
                "-t",
                base_tag,
                ".",
                cwd=ctx,
            ).returncode
            == 0
        )
    ours, theirs = image(engines["pydockerd"], base_tag), image(engines["reference"], base_tag)
    assert comparable_config(ours["Config"]) == comparable_config(theirs["Config"])
    assert ours["Config"]["OnBuild"] == ["RUN echo onbuild"] and ours["Config"]["User"] == "1000"
    same_layers(engines, base_tag)
    for engine in engines.values():
        run = engine.docker("run", "--rm", tag)
        assert run.returncode == 0, run.stderr
        assert (
            engine.docker_ok("run", "--rm", "--entrypoint", "cat", base_tag, "/app/greeting")
            == "hello both\n"
        )
    assert engines["pydockerd"].docker_ok("run", "--rm", tag) == engines["reference"].docker_ok(
        "run", "--rm", tag
    )
    for engine in engines.values():
        engine.docker_ok("rmi", tag, base_tag)


def test_cache_hits_and_a_changed_file(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\nENV X=1\n",
        "a.txt": "first\n",
    })  # fmt: skip
    tag = f"pdb-cache-{uuid.uuid4().hex[:8]}"
    for name, engine in engines.items():
        first = docker(engine, "build", "--no-cache", "-t", tag, ".", cwd=ctx)
        assert first.returncode == 0, first.stderr
        assert "Using cache" not in first.stdout
        again = docker(engine, "build", "-t", tag, ".", cwd=ctx)
        assert again.returncode == 0 and again.stdout.count(" ---> Using cache\n") == 4, (name, again.stdout)
        assert image(engine, tag)["Id"][7:19] in again.stdout
        (ctx / "a.txt").write_text("second\n")
        changed = docker(engine, "build", "-t", tag, ".", cwd=ctx)
        (ctx / "a.txt").write_text("first\n")
        # the RUN before the COPY is still cached; the COPY and everything after run again
        assert changed.stdout.count(" ---> Using cache\n") == 1, (name, changed.stdout)
        assert changed.stdout.index("Using cache") < changed.stdout.index("Step 3/5 : COPY")
        assert engine.docker_ok("run", "--rm", tag, "cat", "/copy") == "second\n"
        engine.docker_ok("rmi", tag)
    dangling = engines["reference"].docker("images", "-q", "-f", "dangling=true").stdout.split()
    if dangling:
        engines["reference"].docker("rmi", *dangling)


def test_docker_py_builds_alike(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    import docker as docker_py

    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox AS one\nARG V=0\nRUN echo $V > /v\nFROM one AS two\nLABEL two=1\nRUN false\n",
    })  # fmt: skip
    tag = f"pdb-py-{uuid.uuid4().hex[:8]}"
    configs = {}
    for name, engine in engines.items():
        client = docker_py.DockerClient(base_url=f"unix://{engine.socket}", version="1.41")
        try:
            built, logs = client.images.build(
                path=str(ctx),
                tag=tag,
                rm=True,
                buildargs={"V": "7"},
                target="one",
                labels={"by": "docker-py"},
            )
            text = "".join(chunk.get("stream", "") for chunk in logs)
            assert "Successfully built" in text and f"Successfully tagged {tag}:latest" in text
            assert built.id == image(engine, tag)["Id"]
            configs[name] = comparable_config(built.attrs["Config"])
            assert client.containers.run(tag, "cat /v", remove=True) == b"7\n"
            with pytest.raises(docker_py.errors.BuildError) as failed:
                client.images.build(path=str(ctx), target="two", rm=True)
            assert failed.value.msg == "The command '/bin/sh -c false' returned a non-zero code: 1"
            client.images.remove(tag)
        finally:
            client.close()
    assert configs["pydockerd"] == configs["reference"]
    assert configs["pydockerd"]["Labels"] == {"by": "docker-py"}


BAD = {
    "syntax": ("FROM busybox\nENV A\n", {}),
    "unknown instruction": ("FROM busybox\nBOGUS x\n", {}),
    "missing copy source": ("FROM busybox\nCOPY nothere /x\n", {}),
    "failing run": ("FROM busybox\nRUN echo out; sleep 0.5; echo err >&2; exit 7\n", {}),
    # (an unknown stage name is an image to pull: from a registry on loopback that is not there)
    "unknown stage": ("FROM busybox\nCOPY --from=127.0.0.1:9/nostage /x /x\n", {}),
    "escape the context": ("FROM busybox\nCOPY ../../etc/passwd /p\nRUN cat /p | wc -l\n", {}),
    "symlink out": ("FROM busybox\nCOPY link/passwd /p\n", {"link": "/etc"}),
    "missing base": ("FROM 127.0.0.1:9/pdb-nosuch-image:1\n", {}),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_as_docker(engines: dict[str, RefDockerd], tmp_path: Path, case: str) -> None:
    dockerfile, links = BAD[case]
    ctx = write(tmp_path / "ctx", {"Dockerfile": dockerfile})
    for name, target in links.items():
        (ctx / name).symlink_to(target)
    got = {}
    for name, engine in engines.items():
        before = set(engine.docker_ok("images", "-qa").split())
        res = docker(engine, "build", "--force-rm", ".", cwd=ctx)
        got[name] = (res.returncode, generic(res.stdout), res.stderr)
        new = set(engine.docker_ok("images", "-qa").split()) - before
        if name == "reference" and new:  # the classic builder keeps a failed build's steps as images
            engine.docker("rmi", *new)
        if name == "pydockerd":
            assert not new, new  # no partial image
    assert got["pydockerd"] == got["reference"]
    _no_leftovers(engines["pydockerd"])


def test_cli28_without_buildkit_variable_uses_this_builder(
    engines: dict[str, RefDockerd], tmp_path: Path
) -> None:
    """No DOCKER_BUILDKIT and no buildx: the Docker CLI 28 uses the classic builder after its
    warning, on both engines, and stdin contexts work (a Dockerfile, and a tar)."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo hi\n"})
    assert engines["pydockerd"].docker_ok("version", "--format", "{{.Server.Version}}")  # the API answers
    for name, engine in engines.items():
        res = docker(engine, "build", "-q", ".", cwd=ctx, buildkit=None)
        assert res.returncode == 0 and re.fullmatch(r"sha256:[0-9a-f]{64}\n", res.stdout), (name, res.stderr)
        piped = docker(engine, "build", "-", input=b'FROM busybox\nCMD ["echo", "piped"]\n', cwd=tmp_path)
        assert piped.returncode == 0 and "Successfully built" in piped.stdout, (name, piped.stderr)
        for image_id in {res.stdout.strip(), piped.stdout.split("Successfully built ")[1].split()[0]}:
            engine.docker("rmi", image_id)


def test_from_pulls_then_push_run_on_reference_and_cache_from(
    engines: dict[str, RefDockerd], tmp_path: Path
) -> None:
    from tests.registry.registry_harness import pyregistry

    ours, ref = engines["pydockerd"], engines["reference"]
    (tmp_path / "registry").mkdir()
    with pyregistry(tmp_path / "registry") as registry:
        base = f"{registry.host}/pdb/base:1"
        ours.docker_ok("tag", "busybox", base)
        ours.docker_ok("push", base, timeout=120)
        ours.docker_ok("rmi", base)
        ctx = write(
            tmp_path / "ctx",
            {"Dockerfile": f'FROM {base}\nRUN echo built > /b\nCOPY f /f\nCMD ["cat", "/b"]\n', "f": "f\n"},
        )
        tag = f"{registry.host}/pdb/app:{uuid.uuid4().hex[:6]}"
        out = {}
        for name, engine in engines.items():
            res = docker(engine, "build", "-t", tag, ".", cwd=ctx)
            assert res.returncode == 0, (name, res.stderr, res.stdout)
            assert f"Step 1/4 : FROM {base}\n1: Pulling from pdb/base\n" in res.stdout, (name, res.stdout)
            assert f"Status: Downloaded newer image for {base}\n" in res.stdout, (name, res.stdout)
            out[name] = generic(res.stdout)
            # pull=1 asks the registry again, even though the image is here now
            again = docker(engine, "build", "--pull", "-q", ".", cwd=ctx)
            assert again.returncode == 0, (name, again.stderr)
            engine.docker("rmi", base)
        assert out["pydockerd"] == out["reference"]
        assert history(ours, tag) == history(ref, tag)
        # what pydockerd built runs on the reference engine, pulled from the registry
        ours.docker_ok("push", tag, timeout=120)
        built = image(ours, tag)["Id"]
        ref.docker_ok("rmi", tag)
        ref.docker_ok("pull", tag, timeout=120)
        assert image(ref, tag)["Id"] == built
        assert ref.docker_ok("run", "--rm", tag) == "built\n"
        # --cache-from: with no build cache and no local images of the build, the pulled image's
        # history stands in for every step, and the result is that image
        for name, engine in engines.items():
            engine.docker_ok("rmi", tag)
            engine.docker_ok("image", "prune", "-f")  # the reference's local cache: its intermediate images
            if name == "pydockerd":
                engine.docker_ok("builder", "prune", "-a", "-f")
            engine.docker_ok("pull", tag, timeout=120)
            res = docker(engine, "build", "--cache-from", tag, "-t", tag + "-again", ".", cwd=ctx)
            assert res.returncode == 0, (name, res.stderr)
            assert res.stdout.count(" ---> Using cache\n") == 3, (name, res.stdout.splitlines()[-12:])
            assert image(engine, tag + "-again")["Id"] == image(engine, tag)["Id"] == built
            engine.docker_ok("rmi", tag, tag + "-again", base)


def test_commit_as_docker(engines: dict[str, RefDockerd]) -> None:
    tag = f"pdb-commit-{uuid.uuid4().hex[:8]}"
    changes = [
        "-c",
        "ENV B=2",
        "-c",
        'CMD ["cat", "/f"]',
        "-c",
        "EXPOSE 80",
        "-m",
        "a message",
        "-a",
        "pdb <p@d.b>",
    ]
    for engine in engines.values():
        name = f"{tag}-c"
        engine.docker_ok(
            "run",
            "--name",
            name,
            "-e",
            "A=1",
            "--label",
            "l=1",
            "busybox",
            "sh",
            "-c",
            "echo hi > /f && rm /etc/group",
        )
        out = engine.docker_ok("commit", *changes, name, tag)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out), out
        engine.docker_ok("rm", name)
    ours, theirs = image(engines["pydockerd"], tag), image(engines["reference"], tag)
    assert comparable_config(ours["Config"]) == comparable_config(theirs["Config"])
    assert (
        (ours["Comment"], ours["Author"])
        == (theirs["Comment"], theirs["Author"])
        == ("a message", "pdb <p@d.b>")
    )
    assert history(engines["pydockerd"], tag) == history(engines["reference"], tag)
    same_layers(engines, tag)
    bad = {
        name: engine.docker("commit", "-c", "BOGUS x", "pdb-no-such-container")
        for name, engine in engines.items()
    }
    assert (bad["pydockerd"].returncode, bad["pydockerd"].stderr) == (
        bad["reference"].returncode,
        bad["reference"].stderr,
    )
    for engine in engines.values():
        assert engine.docker_ok("run", "--rm", tag) == "hi\n"
        # a running container is paused while its layer is taken, and runs on afterwards
        running = f"{tag}-r"
        engine.docker_ok("run", "-d", "--name", running, "busybox", "sh", "-c", "echo r > /r; exec sleep 100")
        committed = engine.docker_ok("commit", running).strip()
        state = json.loads(engine.docker_ok("inspect", "-f", "{{json .State}}", running))
        assert state["Running"] and not state["Paused"]
        assert engine.docker_ok("run", "--rm", committed, "cat", "/r") == "r\n"
        engine.docker_ok("rm", "-f", running)
        engine.docker_ok("rmi", tag, committed)


def test_network_modes_and_extra_hosts(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    import os

    ctx = write(
        tmp_path / "ctx",
        {
            "Dockerfile": "FROM busybox\nRUN ls /sys/class/net | sort > /nets; grep pdb /etc/hosts > /hosts || true\n"
        },
    )
    # (the host's interfaces that stay: other work on this machine adds and removes others meanwhile)
    host_links = {n for n in os.listdir("/sys/class/net") if n in ("lo", "eth0")}
    for engine in engines.values():
        for mode, want in (("none", {"lo"}), ("host", host_links)):
            tag = f"pdb-net-{mode}-{uuid.uuid4().hex[:6]}"
            res = docker(
                engine,
                "build",
                "--no-cache",
                "-q",
                "--network",
                mode,
                "--add-host",
                "pdb.example:10.1.2.3",
                "-t",
                tag,
                ".",
                cwd=ctx,
            )
            assert res.returncode == 0, res.stderr
            nets = set(engine.docker_ok("run", "--rm", tag, "cat", "/nets").split())
            assert nets == want if mode == "none" else want <= nets and len(nets) > 1, (mode, nets)
            if mode == "none":
                assert engine.docker_ok("run", "--rm", tag, "cat", "/hosts") == "10.1.2.3\tpdb.example\n"
            engine.docker_ok("rmi", tag)
    # pydockerd: RUN on its default bridge, and on a user-defined network (the reference here
    # runs without a bridge, --bridge=none, so only pydockerd's)
    ours = engines["pydockerd"]
    net = f"pdb-net-{uuid.uuid4().hex[:6]}"
    ours.docker_ok("network", "create", net)
    try:
        for args in ((), ("--network", net)):
            tag = f"pdb-bridge-{uuid.uuid4().hex[:6]}"
            res = docker(ours, "build", "--no-cache", "-q", *args, "-t", tag, ".", cwd=ctx)
            assert res.returncode == 0, res.stderr
            assert ours.docker_ok("run", "--rm", tag, "cat", "/nets").split() == ["eth0", "lo"]
            ours.docker_ok("rmi", tag)
    finally:
        ours.docker_ok("network", "rm", net)
    missing = {
        name: docker(engine, "build", "--no-cache", "--network", "pdb-no-such-net", ".", cwd=ctx)
        for name, engine in engines.items()
    }
    assert (missing["pydockerd"].returncode, missing["pydockerd"].stderr) == (1, missing["reference"].stderr)


def test_rm_false_output_and_reproducible_builds(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    ctx = write(
        tmp_path / "ctx",
        {"Dockerfile": "FROM busybox\nARG SOURCE_DATE_EPOCH\nRUN echo x > /x\nCOPY f /f\n", "f": "f\n"},
    )
    out = {}
    for name, engine in engines.items():
        res = docker(engine, "build", "--no-cache", "--rm=false", ".", cwd=ctx)
        assert res.returncode == 0, res.stderr
        assert "Removing intermediate container" not in res.stdout
        out[name] = generic(res.stdout)
        kept = engine.docker_ok("ps", "-aq").split()
        if name == "reference":  # dockerd keeps its build containers with rm=0; pydockerd's are not Docker's
            engine.docker_ok("rm", *kept)
        else:
            assert kept == []
        engine.docker("rmi", res.stdout.split("Successfully built ")[1].split()[0])
    assert out["pydockerd"] == out["reference"]
    # SOURCE_DATE_EPOCH: two builds without the cache, the same image (pydockerd only)
    ours = engines["pydockerd"]
    ids = []
    for _ in range(2):
        res = docker(
            ours, "build", "--no-cache", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", ".", cwd=ctx
        )
        assert res.returncode == 0, res.stderr
        ids.append(res.stdout.strip())
    assert ids[0] == ids[1]
    assert image(ours, ids[0])["Created"] == "2023-11-14T22:13:20Z"
    ours.docker_ok("rmi", ids[0])


def test_cache_survives_a_daemon_restart(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    from tests.pydockerd_harness import start_pydockerd, stop_pid, wait_ready

    ours = engines["pydockerd"]
    assert isinstance(ours, PyDockerd)
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo kept > /k\nCOPY f /f\n", "f": "f\n"})
    first = docker(ours, "build", "-q", ".", cwd=ctx)
    assert first.returncode == 0, first.stderr
    assert stop_pid(ours.pid)
    wait_ready(ours, start_pydockerd(ours))
    again = docker(ours, "build", ".", cwd=ctx)
    assert again.returncode == 0 and again.stdout.count(" ---> Using cache\n") == 2, again.stdout
    assert f"Successfully built {first.stdout.strip()[7:19]}\n" in again.stdout
    ours.docker_ok("rmi", first.stdout.strip())


CONFIG_STEPS = """\
FROM busybox
ARG A=1
ENV X=1
LABEL a=b
WORKDIR /w
WORKDIR /w
USER 0
EXPOSE 80
VOLUME /v
STOPSIGNAL SIGINT
SHELL ["/bin/sh", "-c"]
HEALTHCHECK CMD true
ONBUILD RUN true
ENTRYPOINT ["sh"]
COPY Dockerfile /d
RUN true
CMD ["x"]
"""


@pytest.mark.parametrize("args", [(), ("--rm=false",), ("--force-rm",)], ids=["rm", "no-rm", "force-rm"])
def test_config_only_steps_print_as_dockerd(
    engines: dict[str, RefDockerd], tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Each step but COPY/ADD prints dockerd's container lines ("Running in", and "Removing
    intermediate container" unless rm=0), config-only steps and WORKDIR included; a cached
    rebuild prints none; -q prints the image ID alone."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": CONFIG_STEPS})
    out: dict[str, tuple[str, ...]] = {}
    for name, engine in engines.items():
        cold = docker(engine, "build", "--no-cache", *args, ".", cwd=ctx)
        assert cold.returncode == 0, (name, cold.stderr)
        lines = cold.stdout.splitlines()
        assert sum(line.startswith(" ---> Running in ") for line in lines) == 15, (name, cold.stdout)
        cached = docker(engine, "build", *args, ".", cwd=ctx)
        quiet = docker(engine, "build", "-q", *args, ".", cwd=ctx)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", quiet.stdout), (name, quiet.stdout)
        out[name] = (generic(cold.stdout), generic(cached.stdout), cold.stderr, cached.stderr, quiet.stderr)
        if name == "reference":
            kept = engine.docker_ok("ps", "-aq").split()
            if kept:
                engine.docker_ok("rm", *kept)
        image_id = quiet.stdout.strip()
        images_made = {image_id, cold.stdout.split("Successfully built ")[1].split()[0]}
        engine.docker("rmi", *images_made)
    assert out["pydockerd"] == out["reference"]
    _no_leftovers(engines["pydockerd"])


FAILING_STEPS = {
    "workdir over a file": "FROM busybox\nENV A=1\nRUN touch /f\nWORKDIR /f/x\n",
    "failing run": "FROM busybox\nLABEL a=b\nRUN echo out; sleep 0.5; echo err >&2; exit 3\n",
}


@pytest.mark.parametrize("case", list(FAILING_STEPS))
@pytest.mark.parametrize("args", [(), ("--force-rm",), ("-q",)], ids=["rm", "force-rm", "quiet"])
def test_failing_steps_print_as_dockerd(
    engines: dict[str, RefDockerd], tmp_path: Path, case: str, args: tuple[str, ...]
) -> None:
    ctx = write(tmp_path / "ctx", {"Dockerfile": FAILING_STEPS[case]})
    got = {}
    for name, engine in engines.items():
        before = set(engine.docker_ok("images", "-qa").split())
        res = docker(engine, "build", "--no-cache", *args, ".", cwd=ctx)
        # (WORKDIR's error names the path in the engine's own mount of the step's root)
        err = re.sub(r"lstat /\S+/f/x:", "lstat <root>/f/x:", res.stderr)
        got[name] = (res.returncode, generic(res.stdout), generic(err))
        if name == "reference":  # its failed build's steps stay as images and containers
            kept = engine.docker_ok("ps", "-aq").split()
            if kept:
                engine.docker_ok("rm", *kept)
            new = set(engine.docker_ok("images", "-qa").split()) - before
            if new:
                engine.docker("rmi", *new)
    assert got["pydockerd"] == got["reference"]
    assert got["pydockerd"][0] != 0
    _no_leftovers(engines["pydockerd"])


def test_whiteouts_as_dockerd_writes_them(engines: dict[str, RefDockerd], tmp_path: Path) -> None:
    """A RUN that deletes files: the layer's whiteouts are files of mode 0600 owned by 0:0,
    dated about when the step ran (dockerd's overlay2 tar writer; containerd's writes 0 and the
    epoch), in the same places on both engines."""
    ctx = write(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nRUN mkdir -p /d/s && touch /d/a /d/s/b /d/keep\nRUN rm /bin/ls /d/a && rm -r /d/s\n",
    })  # fmt: skip
    tag = f"pdb-wh-{uuid.uuid4().hex[:8]}"
    found = {}
    for name, engine in engines.items():
        res = docker(engine, "build", "--no-cache", "-t", tag, ".", cwd=ctx)
        assert res.returncode == 0, res.stderr
        raw = subprocess.run(
            [DOCKER_CLI, "-H", f"unix://{engine.socket}", "save", tag], capture_output=True, env=engine._cli_env,
            timeout=120,
        ).stdout  # fmt: skip
        outer = tarfile.open(fileobj=io.BytesIO(raw))
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        created = json.load(outer.extractfile(manifest[0]["Config"]))["created"]  # type: ignore[arg-type]
        built = datetime.fromisoformat(created.split(".")[0].rstrip("Z")).replace(tzinfo=UTC).timestamp()
        inner = tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][-1]))
        whiteouts = [m for m in inner.getmembers() if m.name.rsplit("/", 1)[-1].startswith(".wh.")]
        found[name] = sorted((m.name, m.type, m.mode, m.uid, m.gid, m.size) for m in whiteouts)
        for m in whiteouts:
            assert abs(m.mtime - built) < 120, (name, m.name, m.mtime, created)
        engine.docker_ok("rmi", tag)
    assert found["pydockerd"] == found["reference"]
    assert found["pydockerd"] == [
        ("bin/.wh.ls", tarfile.REGTYPE, 0o600, 0, 0, 0), ("d/.wh.a", tarfile.REGTYPE, 0o600, 0, 0, 0),
        ("d/.wh.s", tarfile.REGTYPE, 0o600, 0, 0, 0),
    ]  # fmt: skip
