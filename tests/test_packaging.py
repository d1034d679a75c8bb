"""`pip install .` on its own gives a working installation: the six programs, the generated stubs.

The project is copied without anything scripts/setup makes (no .venv, no protos/gen, no images)
and pip-installed, non-editable, into a fresh virtualenv, offline from the wheelhouse that
scripts/setup-test downloads (--no-index, so the build requirements come from there too and the
build hook has to generate the stubs itself). The installed programs then run a container: the
installed pydockerd starts its pycontainerd, shim and pyrunc from that virtualenv, and the
installed pydocker asks it for `run --rm busybox echo hello`. They all run in a directory whose
decoy copies of the packages fail on import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pydockerd_harness import pydockerd_engine

REPO = Path(__file__).resolve().parent.parent
WHEELHOUSE = REPO / ".venv" / "wheelhouse"
CHECKOUT_PYRUNC = REPO / ".venv" / "bin" / "pyrunc"

# What a checkout holds that scripts/setup or a build made; a clean clone has none of it.
NOT_SOURCE_AT_TOP = {".git", ".venv", "images", "build", "pydocker.egg-info"}
NOT_SOURCE = shutil.ignore_patterns("__pycache__", ".*_cache", "*.pyc")
PACKAGES = ["cli", "dockerd", "containerd", "shim", "runtime", "registry", "common", "ttrpc", "protos"]

HELP = {
    "pydocker": "Usage:  pydocker",
    "pydockerd": "usage: pydockerd",
    "pycontainerd": "usage: pycontainerd",
    "pycontainerd-shim": "usage: pycontainerd-shim",
    "pyregistry": "usage: pyregistry",
}


def _copy_source(dest: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = set(NOT_SOURCE(directory, names))
        if Path(directory) == REPO:
            skipped |= NOT_SOURCE_AT_TOP & set(names)
        if Path(directory) == REPO / "protos":
            skipped.add("gen")
        return skipped

    shutil.copytree(REPO, dest, ignore=ignore)


def _make_decoys(cwd: Path) -> None:
    """A working directory whose copies of the packages fail on import, to run the programs in:
    an installed program must use the installed code whatever directory it is started from."""
    for name in PACKAGES:
        (cwd / name).mkdir(parents=True)
        (cwd / name / "__init__.py").write_text(
            f"raise ImportError({name!r} ' was imported from the working directory')\n"
        )


def _run(cmd: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd, env=env
    )


@contextmanager
def pip_installed() -> Iterator[tuple[Path, Path]]:
    """The bin directory of a fresh virtualenv that `pip install SOURCE` (non-editable) filled, and a
    working directory with decoy packages."""
    assert (WHEELHOUSE / ".requirements-hash").is_file(), f"{WHEELHOUSE} missing: run scripts/setup-test"
    # Not pytest's tmp_path: that keeps the last runs' directories, and this one is ~150 MB.
    with tempfile.TemporaryDirectory(prefix="pydocker-pip-") as tmp:
        src, venv, decoys = Path(tmp) / "src", Path(tmp) / "venv", Path(tmp) / "decoys"
        _copy_source(src)
        _make_decoys(decoys)
        assert not (src / "protos" / "gen").exists()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = _run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index",
             "--find-links", str(WHEELHOUSE), str(src)],
            cwd=Path(tmp),
            timeout=280,
        )  # fmt: skip
        assert pip.returncode == 0, f"pip install failed:\n{pip.stdout}\n{pip.stderr}"
        yield venv / "bin", decoys


def _check_programs(installed: Path, cwd: Path) -> None:
    """The code and stubs come from the virtualenv; each program starts and answers its flags."""
    python = str(installed / "python")
    # -P: `python -c` would otherwise put the working directory (the decoys) first on the path.
    where = _run([python, "-P", "-c", "import cli, runtime\n"
                  "from protos.gen.containerd_api.services.version.v1 import version_pb2\n"
                  "print(cli.__file__, runtime.__file__, version_pb2.__file__)"], cwd)  # fmt: skip
    assert where.returncode == 0, where.stderr
    site = str(installed.parent / "lib")
    for path in where.stdout.split():
        assert path.startswith(site), f"{path} is not the installed copy (under {site})"

    version = _run([str(installed / "pyrunc"), "--version"], cwd)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("pyrunc version ")
    # The checkout's launcher may run on Debian's python3.X (scripts/setup: same byte-code, a faster
    # start) where the installed copy runs on its venv's interpreter: all but that line must agree.
    checkout = _run([str(CHECKOUT_PYRUNC), "--version"], REPO).stdout

    def without_python(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("python: ")]

    assert without_python(version.stdout) == without_python(checkout)
    interpreter = _run(
        [python, "-c", "import platform; print(platform.python_version())"], cwd
    ).stdout.strip()
    assert f"python: {interpreter}" in version.stdout.splitlines()
    for name, usage in HELP.items():
        helped = _run([str(installed / name), "--help"], cwd)
        assert helped.returncode == 0, f"{name} --help: {helped.stderr}"
        assert helped.stdout.startswith(usage), f"{name} --help printed {helped.stdout[:200]!r}"


def _check_container_run(installed: Path, cwd: Path) -> None:
    with pydockerd_engine(program=installed / "pydockerd", cwd=cwd) as daemon:
        # pydockerd started pycontainerd with its own interpreter: the installed one, whose
        # pycontainerd in turn runs the shim and pyrunc of the same installation.
        assert daemon.containerd_pid is not None
        argv = Path(f"/proc/{daemon.containerd_pid}/cmdline").read_bytes().split(b"\0")
        assert os.fsdecode(argv[0]) == str(installed / "python"), argv
        run = _run(
            [
                str(installed / "pydocker"),
                "-H",
                f"unix://{daemon.socket}",
                "run",
                "--rm",
                "busybox",
                "echo",
                "hello",
            ],
            cwd,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout == "hello\n"
        assert daemon.docker_ok("ps", "-aq") == ""


def test_pip_install_gives_working_programs() -> None:
    # One test, not a fixture shared by two: pytest -n would install twice on two workers.
    with pip_installed() as (installed, decoys):
        _check_programs(installed, decoys)
        _check_container_run(installed, decoys)
