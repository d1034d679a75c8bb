"""Start pyregistry (and the reference docker-registry) as subprocesses on loopback, stop them by pid.

pyregistry runs with `--addr 127.0.0.1:0` and a temp root; the port comes from the
`listening on` line it prints. docker-registry (Debian's docker/distribution 2.8) gets a free
port picked here and a YAML config written beside its temp root.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
PYREGISTRY = REPO / ".venv" / "bin" / "pyregistry"
IMAGES = (REPO.parent / "shared" / "images").resolve()


@dataclass
class Server:
    url: str  # http(s)://127.0.0.1:PORT
    host: str  # 127.0.0.1:PORT, as skopeo wants it
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path
    verify: str | bool = False
    extra: dict[str, str] = field(default_factory=dict)
    killed: bool = False  # set by a test that kills the server on purpose

    def client(self, **kw: Any) -> httpx.Client:  # Any: httpx.Client's own keyword arguments
        verify = (
            ssl.create_default_context(cafile=self.verify) if isinstance(self.verify, str) else self.verify
        )
        return httpx.Client(base_url=self.url, verify=verify, timeout=60, **kw)

    def files(self) -> set[str]:
        """Every file under the storage root (relative), to prove what a request left behind."""
        found: set[str] = set()
        for dirpath, _, filenames in os.walk(self.root):  # tolerates directories vanishing meanwhile
            found.update(os.path.relpath(os.path.join(dirpath, f), self.root) for f in filenames)
        return found

    def blob_files(self) -> set[str]:
        return {f for f in self.files() if f.startswith("blobs/") or f.startswith("uploads/")}

    def alive(self) -> bool:
        return self.proc.poll() is None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_log(proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float = 30) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}:\n{text}")
        time.sleep(0.05)
    raise AssertionError(f"server did not start in {timeout}s:\n{log.read_text(errors='replace')}")


@contextmanager
def pyregistry(tmp: Path, *args: str, verify: str | bool = False) -> Iterator[Server]:
    """pyregistry on `tmp`/root, run from `tmp` with TMPDIR and HOME inside it; after the stop,
    nothing may have appeared in `tmp` but the root and the log (nothing written elsewhere)."""
    root = tmp / "root"
    log = tmp / "pyregistry.log"
    scratch = tmp / ".pyregistry-tmp"
    scratch.mkdir(exist_ok=True)
    allowed = {p.name for p in tmp.iterdir()} | {root.name, log.name}
    env = {**os.environ, "TMPDIR": str(scratch), "HOME": str(scratch)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(PYREGISTRY), "serve", "--addr", "127.0.0.1:0", "--root", str(root), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp,
            env=env,
        )
    try:
        m = _wait_log(proc, log, r"listening on (https?)://([\d.]+:\d+)")
        server = Server(f"{m.group(1)}://{m.group(2)}", m.group(2), root, proc, log, verify)
        yield server
        if server.killed:
            return
        assert proc.poll() is None, f"pyregistry died during the test:\n{log.read_text()}"
    finally:
        _stop(proc)
    assert proc.returncode == 0, f"pyregistry exited {proc.returncode} on SIGTERM:\n{log.read_text()}"
    assert {p.name for p in tmp.iterdir()} <= allowed, "pyregistry wrote outside its root"
    assert not any(scratch.iterdir()), "pyregistry left temporary files behind"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def reference_registry(tmp: Path, extra_yaml: str = "", read_only: bool = False) -> Iterator[Server]:
    """Debian's docker-registry (docker/distribution 2.8) on a loopback port with a temp root."""
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry missing: scripts/setup-test installs it"
    root = tmp / "ref-root"
    root.mkdir()
    port = free_port()
    config = tmp / "ref-config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        + ("  maintenance:\n    readonly:\n      enabled: true\n" if read_only else "")
        + f"http:\n  addr: 127.0.0.1:{port}\n{extra_yaml}"
    )
    log = tmp / "ref.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_log(proc, log, r"listening on 127\.0\.0\.1:\d+")
        yield Server(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", root, proc, log)
    finally:
        _stop(proc)


def skopeo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=timeout, env=_skopeo_env()
    )


def _skopeo_env() -> dict[str, str]:
    # No user registries.conf / auth.json of the machine's may leak into the tests.
    env = dict(os.environ)
    env.pop("REGISTRY_AUTH_FILE", None)
    return env


def htpasswd(path: Path, user: str, password: str) -> None:
    """A bcrypt entry as `htpasswd -B` writes it (Debian's apache2-utils)."""
    line = subprocess.run(
        ["htpasswd", "-nbB", user, password], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    with open(path, "a") as f:
        f.write(line + "\n")


# --- speaking the API directly -----------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(c: httpx.Client, repo: str, data: bytes, headers: dict[str, str] | None = None) -> str:
    """A monolithic upload (POST ?digest=); returns the digest."""
    digest = sha256(data)
    r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=headers)
    assert r.status_code == 201, r.text
    return digest


def image_manifest(
    config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST, **extra: object
) -> dict[str, Any]:
    """A manifest as JSON (Any: a test may reach in and break a field)."""
    docker = media_type == DOCKER_MANIFEST
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json"
            if docker
            else "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                if docker
                else "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(layer),
                "size": len(layer),
            }
            for layer in layers
        ],
        **extra,
    }


def push_image(
    c: httpx.Client,
    repo: str,
    ref: str,
    layers: list[bytes] | None = None,
    media_type: str = OCI_MANIFEST,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> tuple[bytes, str]:
    """Blobs then manifest; returns (manifest bytes, digest)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    layers = [b"layer one " + repo.encode(), b"layer two"] if layers is None else layers
    for blob in [config, *layers]:
        push_blob(c, repo, blob, headers)
    body = json.dumps(image_manifest(config, layers, media_type, **extra)).encode()
    r = c.put(
        f"/v2/{repo}/manifests/{ref}", content=body, headers={"Content-Type": media_type, **(headers or {})}
    )
    assert r.status_code == 201, r.text
    return body, sha256(body)


def error_codes(r: httpx.Response) -> list[str]:
    return [e["code"] for e in r.json()["errors"]]


def raw_request(server: Server, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """A request sent byte for byte (httpx would normalise `..` out of the path)."""
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: {server.host}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest
