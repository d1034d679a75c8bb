"""Pull, push and login in pydockerd, driven by the real Docker CLI (and pydocker's), against
pyregistry, the reference registry (Debian's docker-registry) and a hostile registry.

One pydockerd per module (with busybox loaded), a fresh registry per test.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dockerd_ref import RefDockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until
from tests.registry.registry_harness import (
    DOCKER_MANIFEST,
    htpasswd,
    image_manifest,
    pyregistry,
    reference_registry,
    sha256,
)

LAYERED_TAR = Path(__file__).resolve().parents[3] / "shared" / "images" / "layered.tar"
PYDOCKER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pydocker"
BUSYBOX_ID = "sha256:80cbd88a5f7e"  # what busybox.tar loads as (its config digest, short)


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


def image_id(engine: RefDockerd, ref: str) -> str:
    return engine.docker_ok("image", "inspect", "-f", "{{.Id}}", ref).strip()


def test_docker_cli_pushes_to_pyregistry_and_pulls_back(engine: PyDockerd, tmp_path: Path) -> None:
    with pyregistry(tmp_path) as registry:
        name = f"{registry.host}/busybox"
        original = image_id(engine, "busybox")
        assert original.startswith(BUSYBOX_ID)
        engine.docker_ok("tag", "busybox", name)
        pushed = engine.docker("push", name, timeout=120)
        assert pushed.returncode == 0, pushed.stderr + engine.log_tail()
        assert f"The push refers to repository [{name}]" in pushed.stdout
        assert "Pushed" in pushed.stdout and "latest: digest: sha256:" in pushed.stdout
        digest = pushed.stdout.split("digest: ")[1].split()[0]
        # A second push finds every layer there already.
        again = engine.docker_ok("push", name, timeout=120)
        assert "Layer already exists" in again and f"digest: {digest}" in again

        engine.docker_ok("rmi", name)
        pulled = engine.docker("pull", name, timeout=120)
        assert pulled.returncode == 0, pulled.stderr + engine.log_tail()
        assert "latest: Pulling from busybox" in pulled.stdout
        assert f"Digest: {digest}" in pulled.stdout
        assert f"Status: Image is up to date for {name}:latest" in pulled.stdout or (
            f"Status: Downloaded newer image for {name}:latest" in pulled.stdout
        )
        assert image_id(engine, name) == original
        assert engine.docker_ok("run", "--rm", name, "echo", "pulled") == "pulled\n"

        # The same pull again: nothing to fetch.
        up_to_date = engine.docker_ok("pull", name, timeout=60)
        assert f"Status: Image is up to date for {name}:latest" in up_to_date
        engine.docker_ok("rmi", name)


def _daemon_time(engine: PyDockerd) -> str:
    return f"{time.time():.6f}"


def _image_events(engine: PyDockerd, since: str) -> list[dict[str, Any]]:
    """The image events since `since` until now, as `docker events --format json` prints them."""
    out = engine.docker_ok(
        "events",
        "--since",
        since,
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        "type=image",
        "--format",
        "{{json .}}",
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _forget(engine: PyDockerd, *names: str) -> None:
    """Remove the names (and with the last one the image's content), so a pull must download it."""
    for name in names:
        engine.docker_ok("rmi", name)


def test_pull_downloads_layers_run_auto_pulls_and_missing_tag_fails(
    engine: PyDockerd, tmp_path: Path
) -> None:
    engine.docker_ok("load", "-i", str(LAYERED_TAR), timeout=120)
    original = image_id(engine, "layered")
    with pyregistry(tmp_path) as registry:
        name = f"{registry.host}/team/layered:v1"
        engine.docker_ok("tag", "layered", name)
        engine.docker_ok("push", name, timeout=120)
        _forget(engine, "layered", name)
        assert engine.docker("image", "inspect", name).returncode != 0

        # `docker run` of an absent image: the CLI gets a 404 from create, pulls, retries.
        ran = engine.docker("run", "--rm", name, timeout=120)
        assert ran.returncode == 0, ran.stderr + engine.log_tail()
        assert f"Unable to find image '{name}' locally" in ran.stderr
        assert "v1: Pulling from team/layered" in ran.stderr
        assert "Pull complete" in ran.stderr and f"Status: Downloaded newer image for {name}" in ran.stderr
        assert ran.stdout == "hello from layered\n65534\n/data\n"
        assert image_id(engine, name) == original

        # The raw stream: Docker's progress messages, per layer.
        _forget(engine, name)
        since = _daemon_time(engine)
        messages = _api_pull(engine, name)
        pulls = [e for e in _image_events(engine, since) if e["Action"] == "pull"]
        assert [(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in pulls] == [
            (name, name.rsplit(":", 1)[0])
        ]
        statuses = [m.get("status", "") for m in messages]
        assert statuses[0] == "Pulling from team/layered" and messages[0]["id"] == "v1"
        layer_ids = {m["id"] for m in messages if m.get("status") == "Pulling fs layer"}
        assert layer_ids and all(len(i) == 12 for i in layer_ids)
        for wanted in ("Downloading", "Download complete", "Pull complete"):
            assert {m["id"] for m in messages if m.get("status") == wanted} == layer_ids, wanted
        downloading = [m for m in messages if m.get("status") == "Downloading"]
        assert all(set(m["progressDetail"]) == {"current", "total"} for m in downloading)
        assert statuses[-2].startswith("Digest: sha256:")
        assert statuses[-1] == f"Status: Downloaded newer image for {name}"

        missing = engine.docker("pull", f"{registry.host}/team/layered:nope", timeout=60)
        assert missing.returncode == 1
        assert (
            f"Error response from daemon: manifest for {registry.host}/team/layered:nope not found: manifest unknown"
            in missing.stderr
        )
        _forget(engine, name)
    engine.docker_ok("load", "-i", str(LAYERED_TAR), timeout=120)  # back as the module found it
    engine.docker_ok("rmi", "layered")


def _api_pull(engine: PyDockerd, name: str, auth: str = "") -> list[dict[str, Any]]:
    repo, _, tag = name.rpartition(":")
    transport = httpx.HTTPTransport(uds=str(engine.socket))
    headers = {"X-Registry-Auth": auth} if auth else {}
    with httpx.Client(transport=transport, base_url="http://docker", timeout=120) as c:
        r = c.post("/v1.41/images/create", params={"fromImage": repo, "tag": tag}, headers=headers)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_login_then_push_and_pull_with_credentials(engine: PyDockerd, tmp_path: Path, mode: str) -> None:
    users = tmp_path / "htpasswd"
    htpasswd(users, "alice", "alice-secret")
    args = ["--htpasswd", str(users)] + (["--token"] if mode == "token" else [])
    (tmp_path / "reg").mkdir()
    with pyregistry(tmp_path / "reg", *args) as registry:
        name = f"{registry.host}/private/busybox:latest"
        engine.docker_ok("tag", "busybox", name)
        refused = engine.docker("push", name, timeout=60)
        assert refused.returncode != 0
        bad = engine.docker("login", "-u", "alice", "--password-stdin", registry.host, input="wrong\n")
        assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower(), bad.stderr
        good = engine.docker(
            "login", "-u", "alice", "--password-stdin", registry.host, input="alice-secret\n"
        )
        assert good.returncode == 0 and "Login Succeeded" in good.stdout, good.stderr
        pushed = engine.docker("push", name, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        engine.docker_ok("rmi", name)
        pulled = engine.docker("pull", name, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert image_id(engine, name) == image_id(engine, "busybox")
        engine.docker_ok("logout", registry.host)
        engine.docker_ok("rmi", name)
        anonymous = engine.docker("pull", name, timeout=60)
        assert anonymous.returncode != 0


class _Hostile(BaseHTTPRequestHandler):
    """A registry whose layer bytes do not match the digest its manifest gives."""

    blobs: dict[str, bytes] = {}
    manifest = b""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # http.server's naming
        if self.path == "/v2/":
            self._send(200, b"{}", "application/json")
        elif self.path.startswith("/v2/evil/manifests/"):
            self._send(200, self.manifest, DOCKER_MANIFEST)
        elif self.path.startswith("/v2/evil/blobs/"):
            self._send(200, self.blobs.get(self.path.rsplit("/", 1)[1], b""), "application/octet-stream")
        else:
            self._send(404, b'{"errors":[{"code":"NOT_FOUND","message":"no"}]}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_pull_refuses_a_layer_that_does_not_match_its_digest(engine: PyDockerd) -> None:
    good_layer = b"the real layer bytes" * 100
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(good_layer)]},
        }
    ).encode()
    _Hostile.manifest = json.dumps(image_manifest(config, [good_layer], DOCKER_MANIFEST)).encode()
    _Hostile.blobs = {sha256(config): config, sha256(good_layer): b"something else entirely" * 90}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        name = f"127.0.0.1:{server.server_address[1]}/evil:latest"
        done = engine.docker("pull", name, timeout=60)
        assert done.returncode == 1
        assert f"filesystem layer verification failed for digest {sha256(good_layer)}" in done.stderr
        assert engine.docker("image", "inspect", name).returncode != 0
        assert not _content_has(engine, sha256(good_layer))
    finally:
        server.shutdown()
        server.server_close()


class _Slow(BaseHTTPRequestHandler):
    """A registry that serves its one layer at about 1 MiB/s, and notes when the puller hangs up."""

    blobs: dict[str, bytes] = {}
    manifest = b""
    hung_up = threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # http.server's naming
        if self.path == "/v2/":
            body, kind = b"{}", "application/json"
        elif self.path.startswith("/v2/slow/manifests/"):
            body, kind = self.manifest, DOCKER_MANIFEST
        else:
            body, kind = self.blobs.get(self.path.rsplit("/", 1)[1], b""), "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for start in range(0, len(body), 64 << 10):
                self.wfile.write(body[start : start + (64 << 10)])
                self.wfile.flush()
                if len(body) > 1 << 20:
                    time.sleep(0.06)
        except OSError:
            self.hung_up.set()


def test_a_client_hanging_up_cancels_the_pull(engine: PyDockerd) -> None:
    layer = _tar_of(os.urandom(8 << 20))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}
    ).encode()
    _Slow.manifest = json.dumps(image_manifest(config, [layer], DOCKER_MANIFEST)).encode()
    _Slow.blobs = {sha256(config): config, sha256(layer): layer}
    _Slow.hung_up.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = f"127.0.0.1:{server.server_address[1]}/slow"
        since = _daemon_time(engine)
        transport = httpx.HTTPTransport(uds=str(engine.socket))
        with httpx.Client(transport=transport, base_url="http://docker", timeout=60) as c:
            with c.stream("POST", "/v1.41/images/create", params={"fromImage": name, "tag": "latest"}) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    if json.loads(line).get("status") == "Downloading":
                        break
        # The layer needs 8 s at the registry's pace: the engine must stop fetching well before.
        until("pydockerd to stop downloading from the registry", _Slow.hung_up.is_set, timeout=5)
        assert engine.docker("image", "inspect", name).returncode != 0
        assert not _content_has(engine, sha256(layer))
        assert not [e for e in _image_events(engine, since) if e["Action"] == "pull"]
        assert engine.docker_ok("version", "--format", "{{.Server.Version}}").strip()
    finally:
        server.shutdown()
        server.server_close()


def _tar_of(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _content_has(engine: PyDockerd, digest: str) -> bool:
    from containerd.client import Client

    socket = engine.exec_root / "containerd" / "pycontainerd.sock"
    with Client(str(socket), "moby") as client:
        return client.content.exists(digest)


def test_reference_registry_and_reference_dockerd(engine: PyDockerd, tmp_path: Path) -> None:
    """pydockerd pushes to and pulls from docker-registry; the reference dockerd pulls what
    pydockerd pushed to pyregistry (and both word a missing tag alike)."""
    from tests.dockerd_ref import reference_dockerd

    (tmp_path / "ours").mkdir()
    with reference_registry(tmp_path) as ref_registry, pyregistry(tmp_path / "ours") as registry:
        theirs = f"{ref_registry.host}/lib/busybox:1"
        engine.docker_ok("tag", "busybox", theirs)
        engine.docker_ok("push", theirs, timeout=120)
        engine.docker_ok("rmi", theirs)
        pulled = engine.docker("pull", theirs, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        assert image_id(engine, theirs) == image_id(engine, "busybox")
        engine.docker_ok("rmi", theirs)

        ours = f"{registry.host}/shared/busybox:latest"
        engine.docker_ok("tag", "busybox", ours)
        engine.docker_ok("push", ours, timeout=120)
        engine.docker_ok("rmi", ours)
        missing_ours = engine.docker("pull", f"{registry.host}/shared/busybox:nope", timeout=60)
        with reference_dockerd({}, images=()) as ref:
            got = ref.docker("pull", ours, timeout=120)
            assert got.returncode == 0, got.stderr
            assert image_id(ref, ours) == image_id(engine, "busybox")
            assert ref.docker_ok("run", "--rm", ours, "echo", "ran") == "ran\n"
            missing_ref = ref.docker("pull", f"{registry.host}/shared/busybox:nope", timeout=60)
        assert (missing_ours.returncode, missing_ours.stderr) == (missing_ref.returncode, missing_ref.stderr)


def _pydocker(engine: PyDockerd, home: Path, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "PYDOCKER_CONFIG": str(home / ".pydocker"),
    }
    return subprocess.run(
        [str(PYDOCKER), "-H", f"unix://{engine.socket}", *args],
        input=input, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_pydocker_cli_login_push_pull_logout(engine: PyDockerd, tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    htpasswd(users, "bob", "bob-secret")
    (tmp_path / "reg").mkdir()
    home = tmp_path / "home"
    home.mkdir()
    with pyregistry(tmp_path / "reg", "--htpasswd", str(users), "--token") as registry:
        name = f"{registry.host}/cli/busybox"
        engine.docker_ok("tag", "busybox", f"{name}:latest")
        denied = _pydocker(engine, home, "push", name)
        assert denied.returncode == 1 and denied.stderr, denied
        bad = _pydocker(engine, home, "login", "-u", "bob", "--password-stdin", registry.host, input="nope\n")
        assert (
            bad.returncode == 1
            and "Error response from daemon:" in bad.stderr
            and "unauthorized" in bad.stderr.lower()
        )
        good = _pydocker(
            engine, home, "login", "-u", "bob", "--password-stdin", registry.host, input="bob-secret\n"
        )
        assert (good.returncode, good.stdout) == (0, "Login Succeeded\n"), good.stderr
        saved = json.loads((home / ".pydocker" / "config.json").read_text())
        assert saved["auths"][registry.host] == {"auth": base64.b64encode(b"bob:bob-secret").decode()}

        pushed = _pydocker(engine, home, "push", name)
        assert pushed.returncode == 0, pushed.stderr
        assert f"The push refers to repository [{name}]" in pushed.stdout
        assert ": Pushed" in pushed.stdout and "latest: digest: sha256:" in pushed.stdout
        engine.docker_ok("rmi", f"{name}:latest")
        pulled = _pydocker(engine, home, "pull", name)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.startswith("Using default tag: latest\nlatest: Pulling from cli/busybox\n")
        assert pulled.stdout.endswith(f"Status: Downloaded newer image for {name}:latest\n{name}:latest\n")
        quiet = _pydocker(engine, home, "pull", "-q", f"{name}:latest")
        assert (quiet.returncode, quiet.stdout) == (0, f"{name}:latest\n"), quiet.stderr
        # `run` of an absent image pulls it first, with the saved credentials.
        engine.docker_ok("rmi", f"{name}:latest")
        ran = _pydocker(engine, home, "run", "--rm", name, "echo", "pulled for run")
        assert (ran.returncode, ran.stdout) == (0, "pulled for run\n"), ran.stderr
        assert f"Unable to find image '{name}:latest' locally" in ran.stderr
        missing = _pydocker(engine, home, "pull", f"{name}:gone")
        assert missing.returncode == 1
        assert (
            f"Error response from daemon: manifest for {name}:gone not found: manifest unknown"
            in missing.stderr
        )

        out = _pydocker(engine, home, "logout", registry.host)
        assert out.stdout == f"Removing login credentials for {registry.host}\n"
        assert json.loads((home / ".pydocker" / "config.json").read_text())["auths"] == {}
        engine.docker_ok("rmi", f"{name}:latest")
        assert _pydocker(engine, home, "pull", name).returncode == 1


def test_default_registry_and_a_dead_mirror_from_daemon_json(engine: PyDockerd, tmp_path: Path) -> None:
    """Unqualified names go to daemon.json's `default-registry` (an offline machine's local
    pyregistry); a mirror that does not answer is skipped."""
    (tmp_path / "reg").mkdir()
    with pyregistry(tmp_path / "reg") as registry:
        seeded = f"{registry.host}/library/busybox:latest"
        engine.docker_ok("tag", "busybox", seeded)
        engine.docker_ok("push", seeded, timeout=120)
        engine.docker_ok("rmi", seeded)
        config = tmp_path / "daemon.json"
        config.write_text(
            json.dumps({"default-registry": registry.host, "registry-mirrors": ["http://127.0.0.1:1"]})
        )
        with pydockerd_engine(images=(), extra_args=["--config-file", str(config)]) as fresh:
            assert fresh.docker_ok("images", "-q") == ""
            pulled = fresh.docker("pull", "busybox", timeout=120)
            assert pulled.returncode == 0, pulled.stderr + fresh.log_tail()
            assert "latest: Pulling from library/busybox" in pulled.stdout
            assert pulled.stdout.endswith(
                "Status: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n"
            )
            assert image_id(fresh, "busybox") == image_id(engine, "busybox")
            assert fresh.docker_ok("run", "--rm", "busybox", "echo", "offline") == "offline\n"
