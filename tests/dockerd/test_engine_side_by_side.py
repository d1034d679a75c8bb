"""What the Docker CLI 28 shows, asked of the reference dockerd (20.10) and of pydockerd at the
same time, with the same steps, and compared: image and history sizes, a container between
restarts of its restart policy, the IMAGE column once the image's tag is gone, rmi's lines,
export's tar headers, `rm -f` of a missing container (issue 10).

Both engines run for the whole module; each test does its steps on both and compares what the
CLI printed (stdout: the reference warns about the host on stderr), so dockerd's answer is the
expectation, never a value written into the test.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.dockerd_ref import BUSYBOX_TAR, DOCKER_CLI, RefDockerd, reference_dockerd, without_host_warnings
from tests.pydockerd_harness import pydockerd_engine

LAYERED_TAR = BUSYBOX_TAR.parent / "layered.tar"
PYDOCKER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pydocker"


@dataclass
class Engine:
    """One engine and what a test made on it (removed at the end of the test)."""

    name: str
    daemon: RefDockerd
    tag: str
    containers: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.daemon.docker(*args, input=input, timeout=120)

    def ok(self, *args: str, input: str | None = None) -> str:
        res = self.run(*args, input=input)
        assert res.returncode == 0, (
            f"[{self.name}] docker {' '.join(args)} exited {res.returncode}: {res.stderr}"
        )
        return res.stdout

    def raw(self, *args: str, input: bytes = b"") -> bytes:
        res = subprocess.run(
            [DOCKER_CLI, "-H", f"unix://{self.daemon.socket}", *args],
            input=input, capture_output=True, timeout=120, env=self.daemon._cli_env,
        )  # fmt: skip
        assert res.returncode == 0, f"[{self.name}] docker {' '.join(args)}: {res.stderr.decode()}"
        return res.stdout

    def container(self, what: str) -> str:
        name = f"sbs-{what}-{self.tag}"
        self.containers.append(name)
        return name

    def image(self, what: str) -> str:
        """A unique image reference (with a tag), removed at the end of the test."""
        name = f"sbs-{what}-{self.tag}:1"
        self.images.append(name)
        return name

    def inspect(self, ref: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.ok("inspect", ref))
        return found[0]

    def cleanup(self) -> None:
        if self.containers:
            self.run("rm", "-f", *self.containers)
        for image in self.images:
            self.run("rmi", "-f", image)


@pytest.fixture(scope="module")
def daemons() -> Iterator[tuple[RefDockerd, RefDockerd]]:
    images = (BUSYBOX_TAR, LAYERED_TAR)
    with ExitStack() as stack:
        ref = stack.enter_context(reference_dockerd({}, images=images))
        ours = stack.enter_context(pydockerd_engine(images))
        yield ref, ours


@pytest.fixture
def both(daemons: tuple[RefDockerd, RefDockerd]) -> Iterator[list[Engine]]:
    tag = uuid.uuid4().hex[:8]
    engines = [Engine("reference", daemons[0], tag), Engine("pydockerd", daemons[1], tag)]
    yield engines
    for engine in engines:
        engine.cleanup()


@contextlib.contextmanager
def sdk(e: Engine) -> Iterator[Any]:
    """docker-py against the engine."""
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=f"unix://{e.daemon.socket}", version="1.41")
    try:
        yield client
    finally:
        client.close()


def same(both: list[Engine], step: Callable[[Engine], object]) -> object:
    """Run STEP on both engines; assert the answers are equal; return the reference's."""
    ref, ours = (step(engine) for engine in both)
    assert ours == ref, f"pydockerd differs from the reference: {_first_difference(ref, ours)}"
    return ref


def _first_difference(ref: object, ours: object, where: str = "") -> str:
    """Where two answers first differ, and how (answers can be whole tar listings)."""
    if isinstance(ref, dict) and isinstance(ours, dict) and ref.keys() != ours.keys():
        return f"{where}: keys {sorted(ours.keys() - ref.keys())} not the reference's, {sorted(ref.keys() - ours.keys())} missing"
    if isinstance(ref, dict) and isinstance(ours, dict):
        key = next(k for k in ref if ref[k] != ours[k])
        return _first_difference(ref[key], ours[key], f"{where}[{key!r}]")
    if isinstance(ref, (list, tuple)) and isinstance(ours, (list, tuple)):
        for i, (a, b) in enumerate(zip(ref, ours, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{where}[{i}]")
        return f"{where}: {len(ours)} items, the reference {len(ref)}"
    if isinstance(ref, bytes) and isinstance(ours, bytes) and len(ref) == len(ours):
        at = [i for i, (a, b) in enumerate(zip(ref, ours, strict=True)) if a != b]
        return f"{where}: bytes {at[0]}..{at[-1]}: {ours.rstrip(bytes(1))!r}, the reference {ref.rstrip(bytes(1))!r}"
    return f"{where}: {ours!r}, the reference {ref!r}"


# --- image sizes: the apparent bytes of each layer, as dockerd's layer store counts them ---------


def _odd_layer() -> bytes:
    """A one-layer rootfs whose apparent size differs from its disk usage: a file with a hard
    link (counted once), symlinks (their target's length), empty files and directories (nothing)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mode, info.mtime = (
                kind,
                len(data),
                link,
                0o755,
                1700000000,
            )
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("bin", tarfile.DIRTYPE)
        add("bin/big", data=b"x" * 5000)
        add("bin/same", tarfile.LNKTYPE, link="bin/big")
        add("bin/short", tarfile.SYMTYPE, link="big")
        add("bin/long", tarfile.SYMTYPE, link="/a/target/of/some/length/here")
        add("empty")
        add("seven", data=b"7" * 7)
    return out.getvalue()


def _cli(*args: str) -> Callable[[Engine], str]:
    """A step: the Docker CLI's stdout for ARGS."""
    return lambda e: e.ok(*args)


def test_history_and_image_sizes_are_dockers(both: list[Engine]) -> None:
    for image in ("busybox", "layered"):
        same(both, _cli("history", "--no-trunc", "--format", "{{.ID}} {{.Size}} {{.CreatedBy}}", image))
        same(both, _cli("history", "--human=false", "--format", "{{.Size}}", image))
        same(both, _cli("image", "inspect", "--format", "{{.Size}}", image))
    same(both, lambda e: e.ok("images", "--format", "{{.Repository}} {{.Size}}"))

    layer = _odd_layer()
    for engine in both:
        engine.raw("import", "-", engine.image("odd"), input=layer)
    same(both, lambda e: e.ok("image", "inspect", "--format", "{{.Size}}", e.images[0]))
    same(both, lambda e: e.ok("history", "--human=false", "--format", "{{.Size}}", e.images[0]))


# --- a container between restarts of its restart policy ------------------------------------------


def _between_restarts(e: Engine) -> dict[str, object]:
    """What `inspect` and `ps` show of a container its policy restarts, caught in a back-off of
    seconds (the seventh restart waits 6.4 s), a second or more after its last exit."""
    name = e.container("restarting")
    e.ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 60
    while True:
        found = e.inspect(name)
        if found["State"]["Restarting"] and found["RestartCount"] >= 7:
            break
        assert time.monotonic() < deadline, found["State"]
        time.sleep(0.05)
    time.sleep(1.2)
    state = e.inspect(name)["State"]
    listed = e.ok("ps", "--filter", f"name={name}", "--format", "{{.Names}}|{{.State}}|{{.Status}}").strip()
    listed = re.sub(
        r"\) (1 second|[0-9]+ seconds) ago$", ") N seconds ago", listed
    )  # how many: the machine's load
    filtered = {
        s: e.ok("ps", "-q", "--filter", f"name={name}", "--filter", f"status={s}") != ""
        for s in ("running", "restarting")
    }
    return {
        "state": {
            k: state[k] for k in ("Status", "Running", "Restarting", "Paused", "Pid", "ExitCode", "Dead")
        },
        "ps": listed.replace(name, "NAME"),
        "filters": filtered,
        "rm": without_host_warnings(e.run("rm", name).stderr).replace(e.inspect(name)["Id"], "ID"),
    }


def test_a_container_between_restarts(both: list[Engine]) -> None:
    shown = same(both, _between_restarts)
    assert isinstance(shown, dict) and shown["ps"] == "NAME|restarting|Restarting (3) N seconds ago", shown


# --- images: the IMAGE column once the tag is gone, rmi's lines -----------------------------------


def _image_column(e: Engine) -> list[str]:
    """`ps`'s IMAGE of containers whose tag was removed, moved to another image, or kept."""
    gone, moved = e.image("gone"), e.image("moved")
    e.ok("tag", "layered", gone)
    e.ok("tag", "busybox", moved)
    for what, image in (("gone", gone), ("moved", moved), ("kept", "busybox"), ("byid", "80cbd88a5f7e")):
        e.ok("create", "--name", e.container(what), image, "true")
    e.ok("rmi", "-f", gone)
    e.ok("tag", "layered", moved)
    rows = []
    for flags in ((), ("--no-trunc",)):
        listed = e.ok("ps", "-a", *flags, "--filter", f"name={e.tag}", "--format", "{{.Names}} {{.Image}}")
        rows += sorted(listed.replace(e.tag, "TAG").splitlines())
    with sdk(e) as client:
        listed_py = client.api.containers(all=True, filters={"name": e.tag})
    rows += sorted(f"{c['Names'][0].replace(e.tag, 'TAG')} {c['Image']}" for c in listed_py)
    return rows


def test_ps_shows_the_image_id_once_the_tag_is_gone(both: list[Engine]) -> None:
    rows = same(both, _image_column)
    assert (
        isinstance(rows, list)
        and "/sbs-gone-TAG sha256:17e3dc93a3aac88064162a794f72b60e3d47f77c7a84819f0fa85bc639735d42" in rows
    )


def _rmi_lines(e: Engine) -> dict[str, object]:
    """rmi of a three-layer image on busybox's layer (the layers busybox shares stay), of a
    one-layer import, and an image prune: the CLI's lines and the API's records."""
    name = e.image("rmi")
    e.ok("tag", "layered", name)
    try:
        untag = e.ok("rmi", "layered")
        removed = e.ok("rmi", name)
    finally:
        e.ok("load", "-i", str(LAYERED_TAR))  # the module's other tests use it
    layer = _odd_layer()
    imported = e.raw("import", "-", e.image("imported"), input=layer).decode().strip()
    with sdk(e) as client:
        records = client.api.remove_image(e.images[-1])
    records_text = json.dumps(records).replace(imported, "IMPORTED")
    labelled = (
        e.raw("import", "-c", f"LABEL sbs={e.tag}", "-", e.image("pruned"), input=layer).decode().strip()
    )
    pruned = e.ok("image", "prune", "-a", "-f", "--filter", f"label=sbs={e.tag}").replace(labelled, "PRUNED")
    return {"untag": untag, "rmi": removed, "api": records_text, "prune": pruned}


def test_rmi_lists_every_deleted_layer(both: list[Engine]) -> None:
    shown = same(both, _rmi_lines)
    assert isinstance(shown, dict) and str(shown["rmi"]).count("Deleted: ") == 3, shown


# --- export's tar headers ------------------------------------------------------------------------

MADE = (
    "mkfifo /tmp/fifo; ln -s /bin /tmp/bb; echo hi > /tmp/f; ln /tmp/f /tmp/f2; mkdir /tmp/d; chmod 4755 /tmp/f; "
    "chmod 1777 /tmp/d; chown 65534:65534 /tmp/d; mknod /tmp/nul c 1 3; mknod /tmp/blk b 7 200; touch /tmp/u; "
    "chown 12345:100 /tmp/u; touch -d @1600000000 /tmp/old; mkdir -p /tmp/" + "long" * 40
)


def _headers(raw: bytes, since: float) -> list[tuple[object, ...]]:
    """Every member's header as tarfile reads it, times of files made after SINCE (the
    container's own) as "new", and each header block's bytes but for mtime and checksum."""
    out: list[tuple[object, ...]] = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar:
            block = bytearray(raw[m.offset : m.offset + tarfile.BLOCKSIZE])
            block[136:156] = b"\0" * 20
            fields = (
                m.name,
                m.type,
                oct(m.mode),
                m.uid,
                m.gid,
                m.uname,
                m.gname,
                m.size,
                m.linkname,
                m.devmajor,
                m.devminor,
            )
            out.append((*fields, "new" if m.mtime >= since else m.mtime, m.pax_headers, bytes(block)))
    return out


def _export(e: Engine) -> dict[str, object]:
    since = time.time() - 1
    name = e.container("export")
    e.ok("run", "-u", "0", "--name", name, "layered", MADE)
    raw = e.raw("export", name)
    return {"length": len(raw), "headers": _headers(raw, since), "end": raw[-1024:] == b"\0" * 1024}


def test_export_headers_are_dockers(both: list[Engine]) -> None:
    shown = same(both, _export)
    assert isinstance(shown, dict)
    headers = {h[0]: h for h in shown["headers"]}
    assert headers["tmp/d"][2:7] == (oct(0o41777), 65534, 65534, "nobody", "nogroup"), headers["tmp/d"]


# --- pydocker rm -f of a missing container ------------------------------------------------------


def _rm_forced(e: Engine, program: str) -> list[tuple[int, str, str]]:
    """`rm -f` of a missing container, alone and beside one that exists, and `rm` without -f."""
    env = {
        **e.daemon._cli_env,
        "HOME": str(e.daemon.workdir),
        "PYDOCKER_CONFIG": str(e.daemon.workdir / "pydocker"),
    }
    answers = []
    missing = f"sbs-missing-{e.tag}"
    present = e.container("present")
    e.ok("create", "--name", present, "busybox", "true")
    for args in (
        ("rm", "-f", missing),
        ("rm", "-f", missing, present),
        ("rm", missing),
        ("rm", "--force", missing, missing),
    ):
        res = subprocess.run(
            [program, "-H", f"unix://{e.daemon.socket}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        answers.append((res.returncode, res.stdout, without_host_warnings(res.stderr)))
    return answers


def test_pydocker_rm_force_of_a_missing_container(both: list[Engine]) -> None:
    docker_cli = same(both, lambda e: _rm_forced(e, DOCKER_CLI))
    assert same(both, lambda e: _rm_forced(e, str(PYDOCKER))) == docker_cli


# --- kill: dockerd's wording, and a container between restarts -----------------------------------


def _kills(e: Engine) -> list[object]:
    stopped = e.container("stopped")
    stopped_id = e.ok("create", "--name", stopped, "busybox", "true").strip()
    answers: list[object] = []
    for args in (
        ("kill", f"sbs-missing-{e.tag}"),
        ("kill", stopped),
        ("kill", "-s", "BOGUS", stopped),
        ("kill", "-s", "99", stopped),
    ):
        res = e.run(*args)
        answers.append(
            (
                res.returncode,
                res.stdout,
                without_host_warnings(res.stderr).replace(e.tag, "TAG").replace(stopped_id, "ID"),
            )
        )
    flapping = e.container("flapping")
    e.ok("run", "-d", "--name", flapping, "--restart", "always", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 60
    while (
        not (found := e.inspect(flapping))["State"]["Restarting"] or found["RestartCount"] < 6
    ):  # a back-off of seconds
        assert time.monotonic() < deadline, found["State"]
        time.sleep(0.05)
    killed = e.run("kill", flapping)
    answers.append((killed.returncode, killed.stdout.replace(e.tag, "TAG"), killed.stderr))
    time.sleep(2)  # past the back-off it was in: no restart follows
    state = e.inspect(flapping)["State"]
    answers.append({k: state[k] for k in ("Status", "Running", "Restarting", "ExitCode")})
    return answers


def test_kill_answers(both: list[Engine]) -> None:
    same(both, _kills)


# --- a container's writable layer: apparent bytes, as ps -s, inspect -s, df and prune show --------


def _container_sizes(e: Engine) -> list[str]:
    running = e.container("sized")
    e.ok("run", "-d", "--name", running, "busybox", "sh", "-c",
         "head -c 12345 /dev/zero > /big; ln /big /big2; ln -s /etc/passwd /lnk; mkdir -p /d/e; touch /empty; "
         "echo done; sleep 600")  # fmt: skip
    deadline = time.monotonic() + 30
    while e.ok("logs", running) != "done\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    exited = e.container("exited")
    e.ok(
        "run",
        "--name",
        exited,
        "--label",
        f"sbs={e.tag}",
        "busybox",
        "sh",
        "-c",
        "head -c 777 /dev/zero > /tmp/x",
    )
    created = e.container("created")
    e.ok("create", "--name", created, "busybox")
    shown = [
        e.ok("ps", "-a", "-s", "--filter", f"name={e.tag}", "--format", "{{.Names}} {{.Size}}").replace(
            e.tag, "TAG"
        ),
        e.ok(
            "inspect", "-s", "--format", "{{.Name}} {{.SizeRw}} {{.SizeRootFs}}", running, exited, created
        ).replace(e.tag, "TAG"),
        e.ok("container", "prune", "-f", "--filter", f"label=sbs={e.tag}").split("\n\n")[-1],
        e.ok(
            "system",
            "df",
            "-v",
            "--format",
            "{{range .Images}}{{.Repository}} {{.Size}} {{.SharedSize}} {{.UniqueSize}}|{{end}}",
        ),
    ]
    return shown


def test_container_sizes_are_apparent_bytes(both: list[Engine]) -> None:
    shown = same(both, _container_sizes)
    assert isinstance(shown, list) and "/sbs-sized-TAG 12356 " in shown[1], shown


# --- the daemon's security options ------------------------------------------------------------------

PROFILE = Path(__file__).resolve().parents[2] / "dockerd" / "profiles" / "seccomp-default.json"
PYDOCKERD = PYDOCKER.parent / "pydockerd"


@pytest.mark.parametrize(
    "flags",
    [(), ("--no-new-privileges",), ("--seccomp-profile", "PROFILE")],
    ids=["default", "nnp", "profile"],
)
def test_info_security_options(flags: tuple[str, ...], tmp_path: Path) -> None:
    """`docker info`'s SecurityOptions as the reference reports them on this host (no AppArmor,
    SELinux or cgroup namespaces here; no-new-privileges is not listed by dockerd 20.10)."""
    profile = tmp_path / "profile.json"
    profile.write_bytes(PROFILE.read_bytes())  # a path of its own: dockerd shows the path
    args = [str(profile) if f == "PROFILE" else f for f in flags]
    answers = []
    for engine in (
        reference_dockerd({}, images=(), extra_args=args),
        pydockerd_engine(images=(), extra_args=args),
    ):
        with engine as daemon:
            answers.append(json.loads(daemon.docker_ok("info", "--format", "{{json .SecurityOptions}}")))
    assert answers[1] == answers[0]
    assert answers[0][0] == f"name=seccomp,profile={args[1] if len(args) == 2 else 'default'}"


# --- info and inspect: dockerd's fields ----------------------------------------------------------------


def _shape(e: Engine) -> dict[str, object]:
    name = e.container("shape")
    e.ok("create", "--name", name, "busybox")
    with sdk(e) as client:
        info = client.api.info()
        host_config = client.api.inspect_container(name)["HostConfig"]
    text = e.ok("info")
    wanted = (
        " Swarm:", " Operating System:", " Runtimes:", " Default Runtime:", " Security Options:", "   Profile:",
        " Storage Driver:", "  Backing Filesystem:", "  Supports d_type:", "  Native Overlay Diff:", "  userxattr:",
    )  # fmt: skip
    return {
        "info": sorted(info),
        "swarm": info["Swarm"],
        # The CLI prints the runtimes in Go's map order (random): their set is compared.
        "lines": [
            " ".join(sorted(line.split())) if "Runtimes:" in line else line
            for line in text.splitlines()
            if line.startswith(wanted)
        ],
        "host_config": {k: v for k, v in host_config.items() if k not in ("CgroupParent", "Runtime")},
    }


def test_info_and_host_config_fields(both: list[Engine]) -> None:
    shown = same(both, _shape)
    assert isinstance(shown, dict) and " Swarm: inactive" in shown["lines"], shown


def _image_inspect_answers(e: Engine) -> list[object]:
    with sdk(e) as client:
        graph = client.api.inspect_image("busybox")["GraphDriver"]["Name"]
    missing = e.run("image", "inspect", f"sbs-nope-{e.tag}")
    return [graph, missing.returncode, missing.stdout, missing.stderr.replace(e.tag, "TAG")]


def test_image_inspect_answers(both: list[Engine]) -> None:
    same(both, _image_inspect_answers)


@pytest.mark.parametrize(
    "flags",
    [
        (),
        (
            "--insecure-registry",
            "10.9.0.0/16",
            "--insecure-registry",
            "myreg.example:5000",
            "--registry-mirror",
            "https://mirror.example",
        ),
    ],
    ids=["default", "configured"],
)
def test_info_registry_config(flags: tuple[str, ...]) -> None:
    """`docker info`'s RegistryConfig and its Insecure Registries / Registry Mirrors lines."""
    answers = []
    for engine in (
        reference_dockerd({}, images=(), extra_args=flags),
        pydockerd_engine(images=(), extra_args=flags),
    ):
        with engine as daemon:
            text = daemon.docker_ok("info")
            lines = text.split(" Insecure Registries:")[1].split(" Live Restore Enabled:")[0]
            answers.append(
                (json.loads(daemon.docker_ok("info", "--format", "{{json .RegistryConfig}}")), lines)
            )
    assert answers[1] == answers[0], (
        f"pydockerd differs from the reference: {_first_difference(answers[0], answers[1])}"
    )


# --- image events ------------------------------------------------------------------------------------


def _image_events(e: Engine) -> list[str]:
    since = str(int(time.time()) - 1)
    name = e.image("events")
    e.ok("tag", "layered", name)
    try:
        e.ok("rmi", "layered")
        e.ok("rmi", name)
    finally:
        e.ok("load", "-i", str(LAYERED_TAR))
    imported = (
        e.raw("import", "-c", f"LABEL sbs={e.tag}", "-", e.image("labelled"), input=_odd_layer())
        .decode()
        .strip()
    )
    e.ok("image", "prune", "-a", "-f", "--filter", f"label=sbs={e.tag}")
    until = str(int(time.time()) + 1)
    time.sleep(1.2)
    shown = e.ok("events", "--since", since, "--until", until, "--filter", "type=image",
                 "--format", "{{.Action}} {{.Actor.ID}} {{json .Actor.Attributes}}")  # fmt: skip
    return shown.replace(imported, "IMPORTED").replace(e.tag, "TAG").splitlines()


def test_image_events(both: list[Engine]) -> None:
    shown = same(both, _image_events)
    assert isinstance(shown, list) and any(line.startswith("untag sha256:17e3dc93a3aa") for line in shown), (
        shown
    )
