"""Hangs and data loss (issue 10), each case through real clients (the Docker CLI 28, docker-py,
plain HTTP on the socket) against the reference dockerd and pydockerd side by side:

* `docker run --rm` never waits forever: what Docker refuses at create is a 400 with nothing
  created, and a container that fails to start is removed (the CLI waits for that) with
  Docker's exit code;
* prune honours its filters (`label`, `label!`, `until`, `dangling`): what a filter excludes
  survives, and a bad filter is the client's error;
* `docker wait` returns at the first stop of a container its restart policy restarts;
* container prune skips a container between two restarts (200, not 409);
* removing an extra tag (or the last one, with force) of an image a running container uses
  untags it, and the image stays for the container;
* an invalid image reference is a 400, never a 500.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.dockerd_ref import RefDockerd, reference_dockerd, without_host_warnings
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until

BUSYBOX_ID = "sha256:80cbd88a5f7ef9f87fe0d5a3bd512e7bcb1e27f31a79208585f0f78cf4ab5824"


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    with reference_dockerd({}) if request.param == "reference" else pydockerd_engine() as daemon:
        yield daemon


@pytest.fixture
def api(engine: RefDockerd) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
    yield client
    client.close()


class Scratch:
    """Unique names for one test's containers and images; whatever carries them is removed after."""

    def __init__(self, engine: RefDockerd) -> None:
        self.engine = engine
        self.tag = uuid.uuid4().hex[:10]

    def name(self, what: str) -> str:
        return f"pdh-{what}-{self.tag}"

    def cleanup(self) -> None:
        ids = self.engine.docker("ps", "-aq", "--filter", f"name={self.tag}").stdout.split()
        if ids:
            self.engine.docker("rm", "-f", *ids)
        images = self.engine.docker("images", "-a", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        mine = [i for i in images if self.tag in i]
        if mine:
            self.engine.docker("rmi", "-f", *mine)


@pytest.fixture
def scratch(engine: RefDockerd) -> Iterator[Scratch]:
    s = Scratch(engine)
    yield s
    s.cleanup()


def http(
    engine: RefDockerd, method: str, path: str, **kwargs: Any
) -> httpx.Response:  # Any: httpx's request options
    transport = httpx.HTTPTransport(uds=str(engine.socket))
    with httpx.Client(transport=transport, base_url="http://engine", timeout=60) as client:
        return client.request(method, path, **kwargs)


def is_pydockerd(engine: RefDockerd) -> bool:
    return isinstance(engine, PyDockerd)


def error_line(res: object) -> str:
    return without_host_warnings(getattr(res, "stderr", "")).split("\n")[0]


def exists(engine: RefDockerd, name: str) -> bool:
    return engine.docker("ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() != ""


def create_events(engine: RefDockerd, since: float, name: str) -> list[str]:
    out = engine.docker_ok(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time() + 0.5:.3f}",
        "--filter", "event=create", "--filter", f"container={name}", "--format", "{{.Actor.Attributes.name}}",
    )  # fmt: skip
    return out.split()


# --- run --rm never waits forever ----------------------------------------------------------


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["-u", "nosuchuser"], 125, "unable to find user nosuchuser: no matching entries in passwd file"),
        (
            ["-v", "/proc/pdh-nope/x:/x"],  # a bind source that cannot be made: fails at start in Docker too
            127,  # (the CLI's exit code for "no such file or directory")
            "error while creating mount source path '/proc/pdh-nope/x': mkdir /proc/pdh-nope: no such file or directory",
        ),
    ],
    ids=["no-such-user", "bind-source"],
)
@pytest.mark.parametrize("stdin", [False, True], ids=["detached-stdin", "attached-stdin"])
def test_run_rm_that_fails_to_start_is_removed_and_exits(
    engine: RefDockerd, scratch: Scratch, args: list[str], code: int, message: str, stdin: bool
) -> None:
    name = scratch.name("nostart")
    since = time.time()
    # A hang shows as the harness's timeout (DockerdRefError), the CLI killed.
    res = engine.docker(
        "run", "--rm", *(["-i"] if stdin else []), "--name", name, *args, "busybox", "true", timeout=40
    )
    assert res.returncode == code, res
    assert error_line(res) == f"docker: Error response from daemon: {message}", res.stderr
    assert "Error waiting for container" not in res.stderr  # the removal's wait answers without an error
    assert create_events(engine, since, name) == [name]  # refused at start (created first), as Docker
    assert not exists(engine, name)


def test_bind_sources_made_at_start_files_kept(engine: RefDockerd, scratch: Scratch, tmp_path: Path) -> None:
    """A missing bind source is made (a directory) when the container starts; a file is bound as it is."""
    existing = tmp_path / "file"
    existing.write_text("kept\n")
    missing = tmp_path / "made" / "here"
    out = engine.docker_ok(
        "run", "--rm", "--name", scratch.name("binds"), "-v", f"{existing}:/f:ro", "-v", f"{missing}:/d",
        "busybox", "sh", "-c", "cat /f; test -d /d && echo dir",
    )  # fmt: skip
    assert out == "kept\ndir\n" and missing.is_dir()


def test_start_failure_without_auto_remove_is_recorded(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch
) -> None:
    name = scratch.name("recorded")
    engine.docker_ok("create", "--name", name, "-u", "nosuchuser", "busybox", "true")
    res = engine.docker("start", name)
    assert res.returncode == 1 and "unable to find user nosuchuser" in res.stderr
    state = api.api.inspect_container(name)["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == (
        "created",
        128,
        "unable to find user nosuchuser: no matching entries in passwd file",
    )
    assert api.api.wait(name, timeout=20) == {
        "Error": {"Message": "unable to find user nosuchuser: no matching entries in passwd file"},
        "StatusCode": 128,
    }


CREATE_REFUSALS = [
    (["--cap-add", "BOGUS"], 'invalid CapAdd: unknown capability: "CAP_BOGUS"'),
    (["--cap-drop", "bogus"], 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
    (
        ["-v", "/tmp:relative"],
        "invalid volume specification: '/tmp:relative': invalid mount config for type \"bind\": "
        "invalid mount path: 'relative' mount path must be absolute",
    ),
    (["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
    (["-v", "/tmp:/x:ro,rw"], "invalid mode: ro,rw"),
    (["-v", "a:b:c:d"], "invalid volume specification: 'a:b:c:d'"),
    (
        ["-v", "/tmp:/"],
        "invalid volume specification: '/tmp:/': invalid mount config for type \"bind\": "
        "invalid specification: destination can't be '/'",
    ),
]


@pytest.mark.parametrize(
    "args, message", CREATE_REFUSALS, ids=lambda v: v if isinstance(v, str) else " ".join(v)
)
def test_run_rm_refused_at_create(
    engine: RefDockerd, scratch: Scratch, args: list[str], message: str
) -> None:
    name = scratch.name("refused")
    since = time.time()
    res = engine.docker("run", "--rm", "--name", name, *args, "busybox", "true", timeout=40)
    assert res.returncode == 125, res
    assert error_line(res) == f"docker: Error response from daemon: {message}"
    assert create_events(engine, since, name) == []  # nothing was created
    created = http(
        engine,
        "POST",
        f"/v1.41/containers/create?name={name}",
        json={"Image": "busybox", "HostConfig": _host(args)},
    )
    # dockerd answers 500 to a bad bind (it fails while it registers the mount); pydockerd says 400.
    dockerd_status = 500 if args[0] == "-v" else 400
    assert (created.status_code, created.json()["message"]) == (
        400 if is_pydockerd(engine) else dockerd_status,
        message,
    )


def _host(args: list[str]) -> dict[str, list[str]]:
    flag, value = args
    return {"--cap-add": {"CapAdd": [value]}, "--cap-drop": {"CapDrop": [value]}, "-v": {"Binds": [value]}}[
        flag
    ]


def test_run_rm_with_volumes_ends_and_keeps_named_ones(engine: RefDockerd, scratch: Scratch) -> None:
    """`run --rm` with a named and an anonymous volume ends; --rm takes the anonymous volume and
    leaves the named one (which a second `run --rm` reads)."""
    name, vol = scratch.name("volume"), scratch.name("vol")
    before = set(engine.docker("volume", "ls", "-q").stdout.split())
    try:
        res = engine.docker("run", "--rm", "--name", name, "-v", f"{vol}:/data", "-v", "/anon", "busybox",
                            "sh", "-c", "echo kept > /data/f; echo gone > /anon/f", timeout=40)  # fmt: skip
        assert res.returncode == 0, res
        assert not exists(engine, name)
        assert set(engine.docker("volume", "ls", "-q").stdout.split()) - before == {vol}
        res = engine.docker("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f", timeout=40)
        assert (res.returncode, res.stdout) == (0, "kept\n"), res
    finally:
        engine.docker("volume", "rm", "-f", vol)


@pytest.mark.parametrize(
    "opt",
    [
        "seccomp=unconfined",
        "apparmor=unconfined",
        "label=disable",
        "systempaths=unconfined",
        "no-new-privileges",
    ],
)
def test_security_options_never_hang_run_rm(engine: RefDockerd, scratch: Scratch, opt: str) -> None:
    """Whatever an engine does with an option (supported or not), `run --rm` ends, leaves nothing,
    and a refusal comes at create: Docker runs all of these, and pydockerd must at least end."""
    name = scratch.name("secopt")
    since = time.time()
    res = engine.docker("run", "--rm", "--name", name, "--security-opt", opt, "busybox", "true", timeout=40)
    assert res.returncode in (0, 125), res
    if res.returncode == 125:
        assert create_events(engine, since, name) == [], res.stderr  # refused at create, not at start
    assert not exists(engine, name)


# --- prune filters --------------------------------------------------------------------------


def _prune_ids(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if len(line) == 64)


def test_container_prune_honours_filters(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch
) -> None:
    key = f"pdh{scratch.tag}"

    def make(what: str, *labels: str) -> str:
        args = [a for label in labels for a in ("--label", label)]
        return engine.docker_ok("create", "--name", scratch.name(what), *args, "busybox", "true").strip()

    keep1, keep0, other = make("k1", f"{key}=1"), make("k0", f"{key}=0"), make("other", f"{key}x=1")
    live = engine.docker_ok(
        "run", "-d", "--name", scratch.name("live"), "--label", f"{key}=1", "busybox", "sleep", "600"
    ).strip()
    assert _prune_ids(engine.docker_ok("container", "prune", "-f", "--filter", f"label={key}=1")) == [keep1]
    assert _prune_ids(engine.docker_ok("container", "prune", "-f", "--filter", f"label={key}=2")) == []
    # label! with a key only: every stopped container without that label (here: `other` alone)
    assert _prune_ids(
        engine.docker_ok("container", "prune", "-f", "--filter", f"label!={key}", "--filter", f"label={key}x")
    ) == [other]
    assert api.containers.prune(filters={"label": [f"{key}=0"]})["ContainersDeleted"] == [keep0]
    assert exists(engine, scratch.name("live")) and live

    # until: a timestamp between two creations, then durations
    early = make("early", f"{key}=t")
    time.sleep(1.5)
    middle = time.time()
    time.sleep(1.5)
    late = make("late", f"{key}=t")
    label = f"label={key}=t"
    assert _prune_ids(
        engine.docker_ok("container", "prune", "-f", "--filter", f"until={middle:.3f}", "--filter", label)
    ) == [early]
    assert (
        _prune_ids(engine.docker_ok("container", "prune", "-f", "--filter", "until=10m", "--filter", label))
        == []
    )
    rfc3339 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    assert api.containers.prune(filters={"until": rfc3339, "label": f"{key}=t"})["ContainersDeleted"] is None
    assert _prune_ids(
        engine.docker_ok("container", "prune", "-f", "--filter", "until=-1m", "--filter", label)
    ) == [late]
    assert exists(engine, scratch.name("live"))


@pytest.mark.parametrize(
    "filters, message, dockerd_status",
    [
        ({"bogus": ["1"]}, "Invalid filter 'bogus'", 400),
        ({"until": ["abc"]}, 'failed to parse value as time or duration: "abc"', 500),
        ({"until": ["1h", "2h"]}, "more than one until filter specified", 500),
        ({"until": ["2020-13-01"]}, 'parsing time "2020-13-01": month out of range', 500),
        ({"label": "a"}, "json: cannot unmarshal string into Go value of type map[string]bool", 400),
        ({"label": [1]}, "json: cannot unmarshal array into Go value of type map[string]bool", 400),
        ({"label": {"a": 1}}, "json: cannot unmarshal number into Go value of type bool", 400),
        (["label"], "json: cannot unmarshal array into Go value of type map[string]map[string]bool", 400),
    ],
    ids=["unknown", "until-word", "two-untils", "bad-month", "string", "numbers", "flag-number", "array"],
)
def test_container_prune_refuses_bad_filters(
    engine: RefDockerd, scratch: Scratch, filters: object, message: str, dockerd_status: int
) -> None:
    victim = scratch.name("survivor")
    engine.docker_ok("create", "--name", victim, "busybox", "true")
    res = http(engine, "POST", "/v1.41/containers/prune", params={"filters": json.dumps(filters)})
    # dockerd answers 500 where a time does not parse; the mistake is the client's: pydockerd says 400.
    assert (res.status_code, res.json()["message"]) == (
        400 if is_pydockerd(engine) else dockerd_status,
        message,
    )
    assert exists(engine, victim)  # nothing pruned


def _tar(tmp_path: Path, content: str) -> Path:
    path = tmp_path / f"{uuid.uuid4().hex}.tar"
    with tarfile.open(path, "w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("hello")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_image_prune_honours_filters(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch, tmp_path: Path
) -> None:
    key = f"pdh{scratch.tag}"
    made: list[str] = []

    def image(label: str, repo: str = "") -> str:
        source = str(_tar(tmp_path, uuid.uuid4().hex))
        made.append(
            engine.docker_ok("import", "-c", f"LABEL {label}", source, *([repo] if repo else [])).strip()
        )
        return made[-1]

    def pruned(report: dict[str, Any]) -> list[str]:
        """The images a prune deleted (dockerd lists their layers after them)."""
        return [e["Deleted"] for e in report["ImagesDeleted"] or [] if e.get("Deleted") in made]

    def present() -> set[str]:
        return set(engine.docker_ok("images", "-aq", "--no-trunc").split())

    try:
        d1, d0, dx = image(f"{key}=1"), image(f"{key}=0"), image(f"{key}x=1")
        tagged = image(f"{key}=1", f"pdh-tagged-{scratch.tag}:t")
        assert pruned(api.images.prune(filters={"label": [f"{key}=1"]})) == [
            d1
        ]  # dangling only: `tagged` stays
        assert pruned(api.images.prune(filters={"label!": [key], "label": [f"{key}x"]})) == [dx]
        out = engine.docker_ok("image", "prune", "-a", "-f", "--filter", f"label={key}=1")
        assert out.startswith(
            f"Deleted Images:\nuntagged: pdh-tagged-{scratch.tag}:t\ndeleted: {tagged}\n"
        ), out
        time.sleep(1.5)
        middle = time.time()
        time.sleep(1.5)
        later = image(f"{key}=0")
        assert pruned(api.images.prune(filters={"until": f"{middle:.3f}", "label": [f"{key}=0"]})) == [d0]
        assert api.images.prune(filters={"until": "10m", "label": [f"{key}=0"]})["ImagesDeleted"] is None
        assert present() >= {later, BUSYBOX_ID} and not present() & {d1, d0, dx, tagged}
        bad = http(
            engine, "POST", "/v1.41/images/prune", params={"filters": json.dumps({"dangling": ["maybe"]})}
        )
        assert (bad.status_code, bad.json()["message"]) == (400, "Invalid filter 'dangling=[maybe]'")
    finally:
        engine.docker("rmi", "-f", *made)


@pytest.mark.parametrize(
    "endpoint, filters, message, dockerd_status",
    [
        ("/volumes/prune", {"until": ["1h"]}, "Invalid filter 'until'", 400),
        ("/volumes/prune", {"bogus": ["1"]}, "Invalid filter 'bogus'", 400),
        ("/networks/prune", {"bogus": ["1"]}, "Invalid filter 'bogus'", 400),
        ("/networks/prune", {"until": ["soon"]}, 'failed to parse value as time or duration: "soon"', 500),
        (
            "/build/prune",
            {"bogus": ["1"], "until": ["x"]},
            "failed to prune build cache: Invalid filter 'bogus'",
            400,
        ),
        (
            "/build/prune",
            {"until": ["1h", "2h"]},
            "failed to prune build cache: filters expect only one value",
            400,
        ),
        (
            "/build/prune",
            {"until": ["1h"], "unused-for": ["2h"]},
            'failed to prune build cache: conflicting filters: "until" and "unused-for"',
            400,
        ),
        (
            "/build/prune",
            {"until": ["1d"]},
            "failed to prune build cache: \"until\" filter expects a duration (e.g., '24h'): "
            'time: unknown unit "d" in duration "1d"',
            500,
        ),
    ],
)
def test_other_prunes_check_their_filters(
    engine: RefDockerd, endpoint: str, filters: object, message: str, dockerd_status: int
) -> None:
    """Nothing to prune in pydockerd yet (no volumes, networks, builder), but the filters are checked as dockerd's."""
    res = http(engine, "POST", f"/v1.41{endpoint}", params={"filters": json.dumps(filters)})
    assert (res.status_code, res.json()["message"]) == (
        400 if is_pydockerd(engine) else dockerd_status,
        message,
    )
    good = {
        "/volumes/prune": {"label": ["a"]},
        "/networks/prune": {"until": ["1h"]},
        "/build/prune": {"until": ["1h"]},
    }
    assert (
        http(engine, "POST", f"/v1.41{endpoint}", params={"filters": json.dumps(good[endpoint])}).status_code
        == 200
    )


# --- restart policies: wait and prune -------------------------------------------------------


def test_wait_returns_at_first_stop_of_restarting_container(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch
) -> None:
    name = scratch.name("always")
    engine.docker_ok(
        "run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 3"
    )
    res = engine.docker("wait", name, timeout=40)
    assert (res.returncode, res.stdout) == (0, "3\n"), res
    container = api.containers.get(name)
    assert container.wait(condition="next-exit", timeout=40) == {"Error": None, "StatusCode": 3}
    until(
        "the container between two runs", lambda: api.api.inspect_container(name)["State"]["Restarting"], 40
    )
    assert container.wait(timeout=40)["StatusCode"] == 3  # called while restarting: its next stop
    assert api.api.inspect_container(name)["RestartCount"] >= 2


def test_prune_skips_a_container_between_restarts(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch
) -> None:
    name = scratch.name("flapping")
    engine.docker_ok("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 3")
    until("the container restarting", lambda: api.api.inspect_container(name)["State"]["Restarting"], 40)
    for _ in range(5):
        stopped = engine.docker_ok("create", "--name", scratch.name("stopped"), "busybox", "true").strip()
        report = api.containers.prune()  # a 409 raises APIError
        assert stopped in (report["ContainersDeleted"] or [])
        assert exists(engine, name)


# --- image removal ----------------------------------------------------------------------------


def test_removing_tags_of_an_image_a_running_container_uses(
    engine: RefDockerd, api: docker.DockerClient, scratch: Scratch
) -> None:
    name = scratch.name("user")
    extra = f"pdh-extra-{scratch.tag}:t"
    engine.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    engine.docker_ok("tag", "busybox", extra)
    try:
        assert api.api.remove_image(extra, force=True) == [{"Untagged": extra}]
        assert engine.docker_ok("images", "-q", "--no-trunc", "busybox") == BUSYBOX_ID + "\n"
        engine.docker_ok("tag", "busybox", extra)
        res = http(engine, "DELETE", f"/v1.41/images/{extra}")  # without force too: another tag remains
        assert (res.status_code, res.json()) == (200, [{"Untagged": extra}])
        running = http(engine, "DELETE", f"/v1.41/images/{BUSYBOX_ID[7:19]}", params={"force": "1"})
        assert running.status_code == 409
        assert running.json()["message"].startswith(
            "conflict: unable to delete 80cbd88a5f7e (cannot be forced) - image is being used by running container "
        )
        refused = http(engine, "DELETE", "/v1.41/images/busybox")
        assert refused.status_code == 409
        assert refused.json()["message"].startswith(
            'conflict: unable to remove repository reference "busybox" (must force) - container '
        )
        # The last tag, forced: untagged, and the image stays for the container (dangling).
        assert api.api.remove_image("busybox", force=True) == [{"Untagged": "busybox:latest"}]
        assert (
            BUSYBOX_ID in engine.docker_ok("images", "-aq", "--no-trunc", "--filter", "dangling=true").split()
        )
        engine.docker_ok("restart", "-t", "0", name)
        assert api.api.inspect_container(name)["State"]["Running"] is True
    finally:
        engine.docker("tag", BUSYBOX_ID, "busybox:latest")
    assert engine.docker_ok("images", "-q", "--no-trunc", "busybox") == BUSYBOX_ID + "\n"


def test_removing_an_image_by_id_conflicts_as_docker(engine: RefDockerd, scratch: Scratch) -> None:
    other = f"pdh-other-{scratch.tag}"
    engine.docker_ok("tag", "busybox", other)
    stopped = engine.docker_ok("create", "--name", scratch.name("stopped"), "busybox", "true").strip()
    res = engine.docker("rmi", BUSYBOX_ID[7:19])
    assert (
        error_line(res)
        == "Error response from daemon: conflict: unable to delete 80cbd88a5f7e (must be forced) - image is referenced in multiple repositories"
    )
    engine.docker_ok("rmi", other)
    res = engine.docker("rmi", BUSYBOX_ID[7:19])
    assert (
        error_line(res)
        == f"Error response from daemon: conflict: unable to delete 80cbd88a5f7e (must be forced) - image is being used by stopped container {stopped[:12]}"
    )
    assert engine.docker_ok("images", "-q", "--no-trunc", "busybox") == BUSYBOX_ID + "\n"


# --- invalid references -----------------------------------------------------------------------

INVALID_REFS = {
    "gensokyo.jp//kirisame": "invalid reference format",
    "UPPER": "invalid reference format: repository name must be lowercase",
    "a:b:c": "invalid reference format",
    "busybox@sha256:zz": "invalid reference format",
    "✓": "invalid reference format",
}


@pytest.mark.parametrize("ref", list(INVALID_REFS))
def test_invalid_image_references_are_client_errors(engine: RefDockerd, ref: str) -> None:
    quoted = httpx.URL(f"http://engine/images/{ref}").raw_path.decode()
    cases = [
        ("GET", f"{quoted}/json", {}),
        ("GET", f"{quoted}/history", {}),
        ("DELETE", quoted, {}),
        ("POST", f"{quoted}/tag", {"params": {"repo": "pdh-fine"}}),
        ("POST", "/images/busybox/tag", {"params": {"repo": ref}}),
        ("GET", "/images/get", {"params": {"names": ref}}),
        ("POST", "/containers/create", {"json": {"Image": ref}}),
    ]
    for method, path, kwargs in cases:
        res = http(engine, method, f"/v1.41{path}", **kwargs)
        where = f"{method} {path} {kwargs}: {res.status_code} {res.text}"
        if not is_pydockerd(engine):
            # dockerd redirects a path with `//` (Go's path cleaning) and answers 500 to some of these.
            assert res.status_code in (301, 400, 500), where
            continue
        assert res.status_code == 400, where
        assert res.json()["message"] == INVALID_REFS[ref], where
    assert http(engine, "GET", "/_ping").status_code == 200
