"""Which build runs: `pydockerd --version`, `docker version` (Server: pydocker RELEASE, Git commit)
and `docker info` (LiveRestoreEnabled: containers outlive the daemon)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.pydockerd_harness import PYDOCKERD, pydockerd_engine

REPO = Path(__file__).resolve().parents[2]


def _head() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pydockerd_version_names_the_build() -> None:
    done = subprocess.run([str(PYDOCKERD), "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"pydockerd version 20.10.99-pydocker, build {_head()} (pydocker 0.1.0)\n"


def test_docker_version_and_info_show_the_build() -> None:
    with pydockerd_engine(images=()) as d:
        text = d.docker_ok("version")
        server = text.split("Server:", 1)[1]
        assert server.startswith(" pydocker 0.1.0\n"), server
        assert re.search(rf"^  Git commit:\s+{_head()}$", server, re.M), server
        assert d.docker_ok("info", "--format", "{{.LiveRestoreEnabled}}") == "true\n"
