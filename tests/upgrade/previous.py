"""The previous release, built for the upgrade test: its source from this repository's git history,
set up by its own scripts/setup in a virtualenv of its own, offline.

Which release: the tag PREVIOUS_TAG if the repository has it, else the commit PREVIOUS_COMMIT
(what main was when the upgrade test was written, before the first tag). Neither found, or no git
repository at all: the test fails saying so; an upgrade test that cannot find what to upgrade
from must not pass by skipping.

The build is cached per commit under CACHE_ROOT (a virtualenv cannot be moved, so it is built where
it stays): the first run takes a minute or two, every later one nothing. pip installs from the
wheelhouse scripts/setup-test downloads into .venv/wheelhouse (`--no-index`: no network), and the
seccomp profile scripts/setup would fetch with apt is copied from this checkout (it is Debian's file,
the same for every release).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREVIOUS_TAG = "v0.1.0"
PREVIOUS_COMMIT = "ee5c99d817bdc4f476500378bb31f1f7dd678dba"  # main when versioned state began (issue 19)
CACHE_ROOT = Path("/var/tmp/pydocker-upgrade")
WHEELHOUSE = REPO / ".venv" / "wheelhouse"
READY = ".pydocker-previous-ready"


@dataclass(frozen=True)
class Release:
    name: str  # the tag, or the commit
    commit: str
    source: Path  # the checkout, with its .venv

    @property
    def bin(self) -> Path:
        return self.source / ".venv" / "bin"


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)


def resolve(repo: Path = REPO) -> tuple[str, str]:
    """(name, commit) of the previous release in REPO's history, or the test fails saying what is missing."""
    inside = _git(repo, "rev-parse", "--show-toplevel")
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != repo.resolve():
        pytest.fail(
            f"the upgrade test needs the project's git history to check out the previous release "
            f"({PREVIOUS_TAG} or {PREVIOUS_COMMIT}), and {repo} is not a git repository"
        )
    for name in (PREVIOUS_TAG, PREVIOUS_COMMIT):
        found = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
        if found.returncode == 0:
            return name, found.stdout.strip()
    pytest.fail(
        f"the previous release is not in {repo}'s git history: neither the tag {PREVIOUS_TAG} nor the "
        f"commit {PREVIOUS_COMMIT} (fetch the tags: `git fetch --tags`)"
    )


def build() -> Release:
    """The previous release, checked out and set up (once per commit; later calls reuse it)."""
    name, commit = resolve()
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    source = CACHE_ROOT / commit
    with open(CACHE_ROOT / f"{commit}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs build it once
        if not (source / READY).exists():
            _build(commit, source)
    return Release(name, commit, source)


def _build(commit: str, source: Path) -> None:
    if not (WHEELHOUSE / ".requirements-hash").exists():
        pytest.fail(
            f"no wheelhouse at {WHEELHOUSE} to install the previous release offline: run scripts/setup-test"
        )
    shutil.rmtree(source, ignore_errors=True)  # a build that stopped half-way
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit], capture_output=True, timeout=120
    )
    if archive.returncode != 0:
        pytest.fail(f"git archive {commit}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True, timeout=120)
    profiles = REPO / "dockerd" / "profiles"
    if profiles.is_dir():
        shutil.copytree(profiles, source / "dockerd" / "profiles", dirs_exist_ok=True)
    env = dict(
        os.environ,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(WHEELHOUSE),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [str(source / "scripts" / "setup"), "--no-run"],
        cwd=source, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.fail(
            f"the previous release's scripts/setup failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    (source / READY).write_text(commit + "\n")
