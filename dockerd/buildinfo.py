"""Which build of pydocker this is: the release (the installed distribution's version) and the git
commit of the checkout, for `pydockerd --version`, `docker version` and `docker info`.

Read once, when the daemon starts: an upgrade replaces the checkout under a running daemon, and
what it reports must stay the build it runs until it is restarted.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
UNKNOWN = "unknown"


@dataclass(frozen=True)
class BuildInfo:
    release: str  # pyproject's version, e.g. 0.1.0
    commit: str  # 12 hex digits, "unknown" outside a git checkout (a wheel)

    def describe(self) -> str:
        return f"pydocker {self.release}, build {self.commit}"


def read_build_info(repo: Path = REPO) -> BuildInfo:
    try:
        release = metadata.version("pydocker")
    except metadata.PackageNotFoundError:
        release = UNKNOWN
    return BuildInfo(release, _commit(repo))


def _commit(repo: Path) -> str:
    if not (repo / ".git").exists():  # an installed wheel: no checkout to ask
        return UNKNOWN
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else UNKNOWN
