"""Answers that must be Docker's (issue 10), asked of the reference dockerd (20.10) and of
pydockerd with the same real clients (Docker CLI 28, docker-py, pydocker): swarm, services,
nodes, secrets, configs, tasks and plugins as on a node outside a swarm; the images list's
before/since filters and order; RepoDigests after push and pull; history sizes; `ps
--filter health=`; inspect's Config, NetworkSettings and LogPath; `docker version`'s server
OS/Arch; stats of a container without network; /.dockerenv in exports; rmi's conflicts.

Every expectation is dockerd's answer, and each test runs against both engines (one of each
per module). Where dockerd answers a client's mistake with a 500, pydockerd answers 400 (the
project's rule), and the tests accept either. pydockerd-only behaviour (search, swarm init,
interface counters, the access log) is in test_engine_answers_pydockerd.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dockerd_ref import BUSYBOX_TAR, DOCKER_CLI, RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine
from tests.registry.registry_harness import pyregistry

LAYERED_TAR = BUSYBOX_TAR.parent / "layered.tar"  # built after busybox (created later), three layers more
PYDOCKER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pydocker"
NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to '
    "swarm and try again."
)
CLIENT_ERROR = (400, 500)  # dockerd answers some client mistakes 500, pydockerd 400


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    images = (BUSYBOX_TAR, LAYERED_TAR)
    daemon = (
        reference_dockerd({}, images=images) if request.param == "reference" else pydockerd_engine(images)
    )
    with daemon as d:
        yield d


class Docker:
    """The Docker CLI against one engine; removes the containers and images a test made."""

    def __init__(self, engine: RefDockerd) -> None:
        self.engine = engine
        self.tag = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.images: list[str] = []

    def name(self, what: str) -> str:
        name = f"pdans-{what}-{self.tag}"
        self.containers.append(name)
        return name

    def image(self, what: str) -> str:
        name = f"pdans-{what}-{self.tag}"
        self.images.append(name)
        return name

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.engine.docker(*args, timeout=120)

    def ok(self, *args: str) -> str:
        res = self.run(*args)
        assert res.returncode == 0, f"docker {' '.join(args)} exited {res.returncode}: {res.stderr}"
        return res.stdout

    def fails(self, *args: str) -> str:
        """A failing command's stderr (without the reference's warning about the host)."""
        res = self.run(*args)
        assert res.returncode == 1, (
            f"docker {' '.join(args)} exited {res.returncode}: {res.stdout}{res.stderr}"
        )
        return "".join(line for line in res.stderr.splitlines(keepends=True) if "IPv4 forwarding" not in line)

    def inspect(self, ref: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.ok("inspect", ref))
        return found[0]

    def api(self, method: str, path: str, body: bytes | None = None) -> httpx.Response:
        transport = httpx.HTTPTransport(uds=str(self.engine.socket))
        with httpx.Client(transport=transport, base_url="http://docker/v1.41", timeout=60) as client:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            return client.request(method, path, content=body, headers=headers)


@pytest.fixture
def docker(engine: RefDockerd) -> Iterator[Docker]:
    d = Docker(engine)
    yield d
    if d.containers:
        d.run("rm", "-f", *d.containers)
    for image in d.images:
        d.run("rmi", "-f", image)


@contextlib.contextmanager
def sdk_client(engine: RefDockerd) -> Iterator[Any]:
    """docker-py against the engine."""
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=f"unix://{engine.socket}", version="1.41")
    try:
        yield client
    finally:
        client.close()


def pydocker(engine: RefDockerd, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(engine.workdir),
        "PYDOCKER_CONFIG": str(engine.workdir / "pydocker"),
    }
    return subprocess.run(
        [str(PYDOCKER), "-H", f"unix://{engine.socket}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


# --- swarm mode and plugins ---------------------------------------------------------------------

CLI_ANSWERS = [
    # (docker arguments, exit status, stdout, stderr)
    (("node", "ls"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("service", "ls"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("secret", "ls"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("config", "ls"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("stack", "ls"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("service", "ps", "x"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("service", "rm", "x"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("service", "logs", "x"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("secret", "rm", "x"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("node", "inspect", "x"), 1, "[]\n", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("swarm", "ca"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (
        ("swarm", "unlock-key"),
        1,
        "",
        f"could not fetch unlock key: Error response from daemon: {NOT_A_MANAGER}\n",
    ),
    (("swarm", "update", "--autolock"), 1, "", f"Error response from daemon: {NOT_A_MANAGER}\n"),
    (("swarm", "leave"), 1, "", "Error response from daemon: This node is not part of a swarm\n"),
    (("plugin", "ls"), 0, "ID        NAME      DESCRIPTION   ENABLED\n", ""),
    (("plugin", "inspect", "x"), 1, "[]\n", 'Error response from daemon: plugin "x" not found\n'),
    (("plugin", "rm", "x"), 1, "", 'Error response from daemon: plugin "x" not found\n'),
    (("plugin", "enable", "x"), 1, "", 'Error response from daemon: plugin "x" not found\n'),
    (("plugin", "disable", "x"), 1, "", 'Error response from daemon: plugin "x" not found\n'),
    (("plugin", "set", "x", "a=b"), 1, "", 'Error response from daemon: plugin "x" not found\n'),
]


@pytest.mark.parametrize(
    ("args", "status", "stdout", "stderr"), CLI_ANSWERS, ids=[" ".join(a[0]) for a in CLI_ANSWERS]
)
def test_swarm_and_plugin_commands_as_outside_a_swarm(
    docker: Docker, args: tuple[str, ...], status: int, stdout: str, stderr: str
) -> None:
    res = docker.run(*args)
    assert (res.returncode, res.stdout, res.stderr) == (status, stdout, stderr)


API_ANSWERS = [
    # (method, path, body or None, statuses, message; None: the body is [])
    ("GET", "/swarm", None, (503,), NOT_A_MANAGER),
    ("GET", "/swarm/unlockkey", None, (503,), NOT_A_MANAGER),
    ("POST", "/swarm/leave", None, (503,), "This node is not part of a swarm"),
    ("POST", "/swarm/update", None, (400,), "got EOF while reading request body"),
    ("POST", "/swarm/update", b"{}", (400,), "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/swarm/update?version=1", b"{}", (503,), NOT_A_MANAGER),
    ("POST", "/swarm/unlock", b"{}", (503,), NOT_A_MANAGER),
    ("GET", "/services", None, (503,), NOT_A_MANAGER),
    ("GET", "/services/x", None, (503,), NOT_A_MANAGER),
    ("DELETE", "/services/x", None, (503,), NOT_A_MANAGER),
    ("POST", "/services/create", b"{}", (503,), NOT_A_MANAGER),
    ("POST", "/services/create", b"[]", (400,), "json: cannot unmarshal array into Go value of type swarm.ServiceSpec"),
    ("POST", "/services/x/update", b"{}", (400,), "invalid service version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/services/x/update?version=3", b"{}", (503,), NOT_A_MANAGER),
    ("GET", "/services/x/logs", None, CLIENT_ERROR, "Bad parameters: you must choose at least one stream"),
    ("GET", "/services/x/logs?stdout=1", None, (503,), NOT_A_MANAGER),
    ("GET", "/nodes", None, (503,), NOT_A_MANAGER),
    ("GET", "/nodes/x", None, (503,), NOT_A_MANAGER),
    ("DELETE", "/nodes/x", None, (503,), NOT_A_MANAGER),
    ("POST", "/nodes/x/update", b"{}", (400,), "invalid node version '': strconv.ParseUint: parsing \"\": invalid syntax"),
    ("POST", "/nodes/x/update?version=1", b"{}", (503,), NOT_A_MANAGER),
    ("GET", "/tasks", None, (503,), NOT_A_MANAGER),
    ("GET", "/tasks/x", None, (503,), NOT_A_MANAGER),
    ("GET", "/tasks/x/logs?stderr=1", None, (503,), NOT_A_MANAGER),
    ("GET", "/secrets", None, (503,), NOT_A_MANAGER),
    ("GET", "/secrets/x", None, (503,), NOT_A_MANAGER),
    ("DELETE", "/secrets/x", None, (503,), NOT_A_MANAGER),
    ("POST", "/secrets/create", b"{}", (503,), NOT_A_MANAGER),
    ("POST", "/secrets/create", None, (400,), "got EOF while reading request body"),
    ("POST", "/secrets/x/update", b"{}", (400,), "invalid secret version"),
    ("POST", "/secrets/x/update?version=1", b"{}", (503,), NOT_A_MANAGER),
    ("GET", "/configs", None, (503,), NOT_A_MANAGER),
    ("GET", "/configs/x", None, (503,), NOT_A_MANAGER),
    ("DELETE", "/configs/x", None, (503,), NOT_A_MANAGER),
    ("POST", "/configs/create", b"{}", (503,), NOT_A_MANAGER),
    ("POST", "/configs/x/update", b"{}", (400,), "invalid config version"),
    ("GET", "/plugins", None, (200,), None),
    ("GET", "/plugins?filters=" + json.dumps({"enabled": ["true"]}), None, (200,), None),
    ("GET", "/plugins?filters=" + json.dumps({"enabled": ["x"]}), None, (400,), "Invalid filter 'enabled=[x]'"),
    ("GET", "/plugins?filters=" + json.dumps({"bogus": ["x"]}), None, (400,), "Invalid filter 'bogus'"),
    ("GET", "/plugins/x/json", None, (404,), 'plugin "x" not found'),
    ("GET", "/plugins/some/repo:tag/json", None, (404,), 'plugin "some/repo:tag" not found'),
    ("DELETE", "/plugins/x", None, (404,), 'plugin "x" not found'),
    ("POST", "/plugins/x/enable?timeout=0", None, (404,), 'plugin "x" not found'),
    ("POST", "/plugins/x/enable", None, CLIENT_ERROR, 'strconv.Atoi: parsing "": invalid syntax'),
    ("POST", "/plugins/x/disable", None, (404,), 'plugin "x" not found'),
    ("POST", "/plugins/x/push", None, (404,), 'plugin "x" not found'),
    ("POST", "/plugins/x/set", b"[]", (404,), 'plugin "x" not found'),
    ("POST", "/plugins/x/set", b"{}", (400,), "json: cannot unmarshal object into Go value of type []string"),
    ("POST", "/plugins/x/upgrade", b"{}", CLIENT_ERROR, "failed to parse privileges: json: cannot unmarshal object into Go value of type types.PluginPrivileges"),
    # A known path asked with another method is dockerd's 404, never a bare 405.
    ("POST", "/swarm", None, (404,), "page not found"),
    ("POST", "/services", None, (404,), "page not found"),
    ("DELETE", "/tasks/x", None, (404,), "page not found"),
    ("POST", "/images/search", None, (404,), "page not found"),
    ("PUT", "/containers/json", None, (404,), "page not found"),
]  # fmt: skip


def test_swarm_and_plugin_api_as_outside_a_swarm(docker: Docker) -> None:
    wrong = []
    for method, path, body, statuses, message in API_ANSWERS:
        answer = docker.api(method, path, body)
        got = answer.json()
        expected = [] if message is None else {"message": message}
        if answer.status_code not in statuses or got != expected:
            wrong.append(f"{method} {path}: {answer.status_code} {got}")
    assert not wrong, "\n".join(wrong)


# --- images: filters, order, digests, history ---------------------------------------------------


def _images(docker: Docker, *filters: str) -> list[str]:
    args = [a for f in filters for a in ("--filter", f)]
    return docker.ok("images", *args, "--format", "{{.Repository}}:{{.Tag}}").split()


def test_images_before_and_since_leave_the_image_itself_out(docker: Docker) -> None:
    mine = docker.image("older")
    docker.ok("tag", "busybox", f"{mine}:1")  # busybox's image, created before layered's
    listed = _images(docker)
    assert listed.index("layered:latest") < listed.index("busybox:latest")  # newest first
    before_layered = _images(docker, "before=layered")
    assert "busybox:latest" in before_layered and f"{mine}:1" in before_layered
    assert "layered:latest" not in before_layered
    since_busybox = _images(docker, "since=busybox")
    assert "layered:latest" in since_busybox
    assert "busybox:latest" not in since_busybox and f"{mine}:1" not in since_busybox
    assert "busybox:latest" not in _images(docker, "before=busybox")
    assert "layered:latest" not in _images(docker, "since=layered")
    assert _images(docker, "before=layered", f"reference={mine}") == [f"{mine}:1"]
    assert (
        docker.fails("images", "--filter", "before=pdans-nope")
        == "Error response from daemon: No such image: pdans-nope:latest\n"
    )
    assert (
        docker.fails("images", "--filter", "dangling=maybe")
        == "Error response from daemon: Invalid filter 'dangling=[maybe]'\n"
    )
    # docker-py asks the same question.
    with sdk_client(docker.engine) as sdk:
        tags = [t for image in sdk.images.list(filters={"since": "busybox"}) for t in image.tags]
    assert "layered:latest" in tags and "busybox:latest" not in tags


def test_repo_digests_after_push_and_pull(engine: RefDockerd, docker: Docker, tmp_path: Path) -> None:
    with pyregistry(tmp_path) as registry:
        repo = f"{registry.host}/answers/{docker.tag}"
        name = f"{repo}:1"
        docker.ok("tag", "busybox", name)
        pushed = docker.ok("push", name)
        digest = re.search(r"1: digest: (sha256:[0-9a-f]{64})", pushed)
        assert digest, pushed
        canonical = f"{repo}@{digest.group(1)}"
        assert docker.inspect(name)["RepoDigests"] == [canonical]
        rows = docker.ok(
            "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
        ).splitlines()
        assert f"{repo} 1 {digest.group(1)}" in rows and "busybox latest <none>" in rows
        if isinstance(engine, PyDockerd):  # pydocker shows the same rows against it
            ours = pydocker(engine, "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
            assert f"{repo} 1 {digest.group(1)}" in ours.stdout.splitlines(), ours.stderr
        # The repository's last tag goes, and its digest with it.
        assert docker.ok("rmi", name) == f"Untagged: {name}\nUntagged: {canonical}\n"

        docker.ok("pull", "-q", name)
        assert docker.inspect(name)["RepoDigests"] == [canonical]
        listed = {
            (tuple(i["RepoTags"] or ()), tuple(i["RepoDigests"] or ()))
            for i in docker.api("GET", "/images/json").json()
        }
        assert any(name in tags and digests == (canonical,) for tags, digests in listed), listed
        assert docker.ok("rmi", name) == f"Untagged: {name}\nUntagged: {canonical}\n"

        # Pulled by digest: a digest reference and no tag.
        docker.ok("pull", "-q", canonical)
        info = docker.inspect(canonical)
        assert info["RepoDigests"] == [canonical] and "busybox:latest" in info["RepoTags"]
        rows = docker.ok(
            "images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
        ).splitlines()
        assert f"{repo} <none> {digest.group(1)}" in rows
        assert docker.ok("rmi", canonical) == f"Untagged: {canonical}\n"
        assert docker.inspect("busybox")["RepoDigests"] == []


def test_history_sizes_are_the_layers(docker: Docker) -> None:
    history = docker.api("GET", "/images/layered/history").json()
    config = docker.inspect("layered")
    sizes = [entry["Size"] for entry in history]
    # The three entries that made a layer (newest first: two RUNs, then busybox's COPY) have its size.
    assert [size > 0 for size in sizes] == [False] * 6 + [True, True] + [False, False] + [True], history
    assert sum(sizes) == config["Size"]
    shown = docker.ok("history", "--format", "{{.Size}}", "busybox").split()
    assert shown[0] == "0B" and shown[1] != "0B"


# --- containers: ps filters, inspect, stats, export, rmi -----------------------------------------


def test_ps_filter_health(docker: Docker) -> None:
    name = docker.name("health")
    docker.ok("run", "-d", "--name", name, "busybox", "sleep", "600")

    def names(*filters: str) -> list[str]:
        return docker.ok(
            "ps", "-a", *(a for x in filters for a in ("--filter", x)), "--format", "{{.Names}}"
        ).split()

    assert name in names("health=none")  # no healthcheck
    for state in ("starting", "healthy", "unhealthy"):
        assert name not in names(f"health={state}")
    assert name in names("health=healthy", "health=none")
    assert (
        docker.fails("ps", "--filter", "health=bogus")
        == "Error response from daemon: Unrecognised filter value for health: bogus\n"
    )
    assert (
        docker.fails("ps", "--filter", "status=bogus")
        == "Error response from daemon: Invalid filter 'status=bogus'\n"
    )
    import docker as docker_sdk

    with sdk_client(docker.engine) as sdk:
        assert name in [c.name for c in sdk.containers.list(filters={"health": "none"})]
        assert name not in [c.name for c in sdk.containers.list(filters={"health": "healthy"})]
        with pytest.raises(docker_sdk.errors.APIError) as refused:
            sdk.containers.list(filters={"health": "bogus"})
        assert refused.value.status_code == 400


NETWORK_SETTINGS = {
    "Bridge", "SandboxID", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen", "Ports", "SandboxKey",
    "SecondaryIPAddresses", "SecondaryIPv6Addresses", "EndpointID", "Gateway", "GlobalIPv6Address",
    "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen", "IPv6Gateway", "MacAddress", "Networks",
}  # fmt: skip
ENDPOINT = {
    "IPAMConfig", "Links", "Aliases", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
    "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts",
}  # fmt: skip


def test_inspect_config_network_settings_and_log_path(docker: Docker) -> None:
    created = docker.name("created")
    docker.ok("create", "--name", created, "-e", "FOO=1", "-e", "GREETING=bye", "-l", "mine=yes", "layered")
    info = docker.inspect(created)
    config = info["Config"]
    # The image's settings completed what the container did not set, as dockerd stores them.
    # (The CLI sends its -e values in no fixed order; the image's PATH follows them, its GREETING is overridden.)
    assert sorted(config["Env"][:2]) == ["FOO=1", "GREETING=bye"]
    assert config["Env"][2:] == ["PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert (config["Entrypoint"], config["Cmd"]) == (
        ["/bin/sh", "-c"],
        ["echo $GREETING from layered; id -u; pwd"],
    )
    assert (config["User"], config["WorkingDir"], config["ExposedPorts"]) == (
        "nobody",
        "/data",
        {"8080/tcp": {}},
    )
    assert config["Labels"] == {
        "mine": "yes",
        "org.opencontainers.image.title": "layered fixture",
        "purpose": "whiteouts, opaque dirs, links, config",
    }
    assert config["Volumes"] is None
    settings = info["NetworkSettings"]
    assert set(settings) == NETWORK_SETTINGS and settings["MacAddress"] == "" and settings["IPAddress"] == ""
    assert list(settings["Networks"]) == ["bridge"] and set(settings["Networks"]["bridge"]) == ENDPOINT
    assert info["LogPath"] == ""  # no log before the first start
    assert (
        docker.ok(
            "inspect",
            "-f",
            "{{.NetworkSettings.MacAddress}}|{{.NetworkSettings.Networks.bridge.IPAddress}}",
            created,
        )
        == "|\n"
    )

    plain = docker.name("plain")
    docker.ok(
        "run", "-d", "--name", plain, "--network", "none", "busybox", "sleep", "600"
    )  # no output at all
    info = docker.inspect(plain)
    assert info["Config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert info["Config"]["Cmd"] == ["sleep", "600"] and info["Config"]["Entrypoint"] is None
    assert list(info["NetworkSettings"]["Networks"]) == ["none"]
    log = Path(info["LogPath"])
    assert log.name == f"{info['Id']}-json.log" and log.is_file() and log.stat().st_size == 0
    listed = docker.api("GET", f"/containers/json?all=1&filters={json.dumps({'name': [plain]})}").json()
    assert set(listed[0]["NetworkSettings"]["Networks"]["none"]) == ENDPOINT
    # Its stats: dockerd leaves `networks` out when the container has no interface but loopback.
    frame = docker.api("GET", f"/containers/{plain}/stats?stream=0&one-shot=1").json()
    assert "networks" not in frame and frame["name"] == f"/{plain}" and frame["pids_stats"]["current"] >= 1
    assert (
        docker.ok("stats", "--no-stream", "--format", "{{.Name}} {{.NetIO}}", plain) == f"{plain} 0B / 0B\n"
    )

    quiet = docker.name("quiet")
    docker.ok("run", "--name", quiet, "--log-driver", "none", "busybox", "echo", "hi")
    assert docker.inspect(quiet)["LogPath"] == ""


def test_version_shows_the_server_os_and_arch(engine: RefDockerd, docker: Docker) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    server = docker.ok("version").split("Server:", 1)[1]
    assert re.search(rf"^  OS/Arch:\s+linux/{arch}$", server, re.M), server
    assert re.search(r"^  Experimental:\s+false$", server, re.M), server
    assert re.search(r"^  Go version:\s+\S+", server, re.M), server
    assert docker.ok("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}") == f"linux/{arch}\n"
    components = {c["Name"] for c in docker.api("GET", "/version").json()["Components"]}
    assert {"Engine", "containerd"} <= components
    if isinstance(engine, PyDockerd):
        ours = pydocker(engine, "version")
        assert re.search(rf"^  OS/Arch:\s+linux/{arch}$", ours.stdout.split("Server:", 1)[1], re.M), ours


def _export_members(docker: Docker, container: str) -> dict[str, tarfile.TarInfo]:
    res = subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{docker.engine.socket}", "export", container],
        capture_output=True, timeout=120, env=docker.engine._cli_env,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_export_has_the_init_layer(docker: Docker) -> None:
    ran = docker.name("ran")
    docker.ok("run", "--name", ran, "busybox", "true")
    created = docker.name("never")
    docker.ok("create", "--name", created, "busybox", "true")
    for container in (ran, created):
        members = _export_members(docker, container)
        env = members[".dockerenv"]
        assert env.isreg() and env.size == 0 and env.mode & 0o7777 == 0o755, container
        assert members["etc/mtab"].issym() and members["etc/mtab"].linkname == "/proc/mounts"
        for path in ("dev/console", "etc/hostname", "etc/hosts", "etc/resolv.conf"):
            assert members[path].isreg() and members[path].mode & 0o7777 == 0o755, (container, path)
        for path in ("dev/pts", "dev/shm", "proc", "sys"):
            assert members[path].isdir(), (container, path)
    assert docker.ok("diff", ran) == ""  # the init layer is not the container's change
    shown = docker.ok("run", "--rm", "busybox", "sh", "-c", "ls -l /.dockerenv; readlink /etc/mtab")
    assert re.match(r"-rwxr-xr-x\s+1 root\s+root\s+0 .* /.dockerenv\n/proc/mounts\n$", shown), shown


def _private_image(docker: Docker, name: str) -> str:
    """A busybox filesystem as an image of its own (imported: a fresh ID no other test uses)."""
    source = docker.name("source")
    docker.ok("create", "--name", source, "busybox")
    cli = [DOCKER_CLI, "-H", f"unix://{docker.engine.socket}"]
    exported = subprocess.run(
        [*cli, "export", source], capture_output=True, timeout=120, env=docker.engine._cli_env
    )
    assert exported.returncode == 0, exported.stderr
    imported = subprocess.run(
        [*cli, "import", "-c", 'CMD ["sh"]', "-", name], input=exported.stdout, capture_output=True, timeout=120,
        env=docker.engine._cli_env,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    image_id = imported.stdout.decode().strip()
    docker.images.append(image_id)  # removed at the end even if it was left dangling
    return image_id


def test_rmi_of_an_image_in_use(docker: Docker) -> None:
    name = f"{docker.image('inuse')}:1"
    image_id = _private_image(docker, name)
    short = image_id.removeprefix("sha256:")[:12]
    conflict = f"Error response from daemon: conflict: unable to delete {short}"

    stopped = docker.name("stopped")
    sid = docker.ok("create", "--name", stopped, name, "sleep", "600").strip()[:12]
    assert docker.fails("rmi", name) == (
        f'Error response from daemon: conflict: unable to remove repository reference "{name}" (must force) - '
        f"container {sid} is using its referenced image {short}\n"
    )
    assert (
        docker.fails("rmi", short)
        == f"{conflict} (must be forced) - image is being used by stopped container {sid}\n"
    )
    other = f"{docker.image('other')}:1"
    docker.ok("tag", name, other)
    assert (
        docker.fails("rmi", short)
        == f"{conflict} (must be forced) - image is referenced in multiple repositories\n"
    )
    assert docker.ok("rmi", other) == f"Untagged: {other}\n"

    running = docker.name("running")
    rid = docker.ok("run", "-d", "--name", running, name, "sleep", "600").strip()[:12]
    for args in (("rmi", short), ("rmi", "-f", short)):
        assert (
            docker.fails(*args)
            == f"{conflict} (cannot be forced) - image is being used by running container {rid}\n"
        )
    # Forced away from a running container's image, the name goes and the image stays, dangling.
    assert docker.ok("rmi", "-f", name) == f"Untagged: {name}\n"
    assert short in docker.ok("images", "-q", "--filter", "dangling=true").split()
    assert docker.inspect(running)["Image"] == image_id
    docker.ok("rm", "-f", running, stopped)
    assert f"Deleted: {image_id}\n" in docker.ok("rmi", short)
    assert short not in docker.ok("images", "-aq").split()
