"""Driving Debian's docker-compose 1.29 (a Python program on Debian's docker-py) against an
engine: a project with a unique name, run from its directory with DOCKER_HOST on the engine's
socket, brought `down -v --rmi local` at the end and checked for leftovers (containers,
networks, volumes, images of the project).

Published ports live in the engine's network namespace (the reference runs in one of its own):
`fetch_in_engine_netns` reaches them from there, never from the host's."""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.dockerd_ref import RefDockerd

REPO = Path(__file__).resolve().parents[2]
PROJECTS = Path(__file__).resolve().parent / "projects"
DOCKER_COMPOSE = "/usr/bin/docker-compose"
PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass
class Compose:
    """docker-compose for one project (`-p NAME`) against one engine."""

    daemon: RefDockerd
    directory: Path
    files: tuple[str, ...] = ("docker-compose.yml",)
    name: str = field(default_factory=lambda: f"pdc{uuid.uuid4().hex[:10]}")
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        files = [a for f in self.files for a in ("-f", f)]
        return [DOCKER_COMPOSE, *files, "-p", self.name, *args]

    def environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.daemon.workdir),
            "DOCKER_HOST": f"unix://{self.daemon.socket}",
            "DOCKER_CONFIG": str(self.daemon.workdir / "cli"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            **self.env,
        }

    def run(self, *args: str, timeout: float = 240.0, input: str = "") -> subprocess.CompletedProcess[str]:
        """docker-compose ARGS in the project's directory; never raises on its exit status."""
        return subprocess.run(
            self.argv(*args), cwd=self.directory, env=self.environment(), input=input,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def ok(self, *args: str, timeout: float = 240.0) -> str:
        res = self.run(*args, timeout=timeout)
        assert res.returncode == 0, explain(res)
        return res.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), cwd=self.directory, env=self.environment(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run("down", "-v", "--rmi", "local", "--remove-orphans", "-t", "5")

    def container_ids(self, *filters: str) -> list[str]:
        args = ["ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.name}"]
        for f in filters:
            args += ["--filter", f]
        return self.daemon.docker_ok(*args).split()

    def leftovers(self) -> dict[str, list[str]]:
        """What of the project the engine still has."""
        label = f"label=com.docker.compose.project={self.name}"
        docker = self.daemon.docker_ok
        return {
            name: found
            for name, found in {
                "containers": docker("ps", "-aq", "--filter", label).split(),
                "networks": self._listed("network", label),
                "volumes": self._listed("volume", label),
                "images": [
                    i
                    for i in docker("images", "--format", "{{.Repository}}").split()
                    if i.startswith(f"{self.name}_")
                ],
            }.items()
            if found
        }

    def _listed(self, kind: str, label: str) -> list[str]:
        """`docker KIND ls` of the project; nothing when the engine serves no such API at all
        (pydockerd before its network and volume backends are wired: dockerd's 404 "page not
        found"), since then it cannot hold any either."""
        res = self.daemon.docker(kind, "ls", "-q", "--filter", label)
        if res.returncode != 0 and "page not found" in res.stderr:
            return []
        assert res.returncode == 0, explain(res)
        return res.stdout.split()

    def inspect(self, container_id: str, template: str) -> str:
        return self.daemon.docker_ok("inspect", "--format", template, container_id).strip()


def explain(res: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(map(str, res.args))}\nrc={res.returncode}\nstdout={res.stdout[-4000:]}\nstderr={res.stderr[-4000:]}"


def free_port() -> int:
    """A TCP port nothing listens on here now (the engine's namespace may be ours or its own)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_in_engine_netns(daemon: RefDockerd, url: str, timeout: float = 10.0) -> str:
    """GET URL from inside the engine's network namespace (where its published ports are)."""
    code = (
        "import sys, urllib.request\n"
        f"print(urllib.request.urlopen(sys.argv[1], timeout={timeout}).read().decode(), end='')\n"
    )
    netns = f"/proc/{daemon.pid}/ns/net"
    res = subprocess.run(
        ["nsenter", f"--net={netns}", str(PYTHON), "-c", code, url],
        capture_output=True, text=True, timeout=timeout + 10,
    )  # fmt: skip
    assert res.returncode == 0, f"GET {url} in {netns}: {res.stderr.strip()[-2000:]}"
    return res.stdout


def project_dir(name: str) -> Path:
    return PROJECTS / name


_PS_DASHES = re.compile(r"^-+$")


def ps_rows(text: str) -> list[list[str]]:
    """`docker-compose ps`'s table as rows of cells (columns are three or more spaces apart: a cut command ends "  ...")."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return [re.split(r"\s{3,}", line.strip()) for line in lines[2:] if not _PS_DASHES.match(line)]
