"""The escape classes runc has had CVEs for, each tried by a hostile container (issue 16).

Every test here failed on the build before its fix (verified by reverting the fix once; the
docstrings say what the container got then), and runs runc on the same bundle where runc
is the reference for what must happen instead.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.runtime.conftest import PYRUNC, Pyrunc
from tests.runtime.runc_side import RUNC, Runc


def _with_fd(command: list[str], fd: int) -> subprocess.CompletedProcess[bytes]:
    """COMMAND with FD inherited as it is (a caller leaking a host directory to the runtime)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(command, stdout=out, stderr=err, pass_fds=(fd,), timeout=60)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, done.returncode, out.read(), err.read())


@pytest.fixture
def host_dir(tmp_path: Path) -> tuple[Path, int]:
    """A host directory the container must never reach, and an fd on it to leak."""
    secret = tmp_path / "host-only" / "inner"
    secret.mkdir(parents=True)
    (secret.parent / "secret").write_text("host secret\n")
    fd = os.open(secret, os.O_RDONLY | os.O_DIRECTORY)
    yield secret.parent, fd
    os.close(fd)


# Whichever of the host directory or its parent the cwd landed in: read the secret, leave a mark.
ESCAPE = "pwd; cat secret ../secret; touch escaped ../escaped; ls /proc/self/fd"


def _escaped(outside: Path) -> bool:
    return any(outside.rglob("escaped")) or (outside.parent / "escaped").exists()


@pytest.mark.parametrize("runtime", ["runc", "pyrunc"])
@pytest.mark.parametrize("cwd", ["/proc/self/fd/{fd}", "/proc/self/fd/{fd}/..", "/proc/1/cwd"])
def test_a_leaked_fd_as_working_directory_cannot_reach_the_host(
    pyrunc: Pyrunc, host_dir: tuple[Path, int], runtime: str, cwd: str
) -> None:
    """CVE-2024-21626: the runtime's caller leaks a host directory fd N; the container's cwd is
    /proc/self/fd/N (or a magic link like it), which, resolved in the init while the fd is open,
    puts the process's cwd outside its root. Create must refuse it, as runc does; and no fd but
    stdio survives into the container. Before the fix pyrunc ran the container with its cwd in
    the host directory: it read the secret and left its mark there. (/proc/1/cwd leads to the
    init's own "/" and was no escape; pyrunc now refuses every magic link as a cwd.)"""
    outside, fd = host_dir
    cwd = cwd.format(fd=fd)
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", ESCAPE])
    bundle.config["process"]["cwd"] = cwd
    bundle.write()
    tool = RUNC if runtime == "runc" else str(PYRUNC)
    root = pyrunc.root.parent / f"{runtime}-state"
    done = _with_fd([tool, "--root", str(root), "run", "--bundle", str(bundle.path), cid], fd)
    assert b"host secret" not in done.stdout and not _escaped(outside)
    if runtime == "pyrunc":
        # runc refuses the fd links and follows /proc/1/cwd (its own "/"): pyrunc refuses any magic link.
        assert done.returncode == 1 and done.stdout == b""
        assert done.stderr.decode().startswith(f"pyrunc: cwd {cwd!r}: it goes through a magic link"), (
            done.stderr
        )


@pytest.mark.parametrize("runtime", ["runc", "pyrunc"])
def test_exec_with_a_leaked_fd_as_working_directory_cannot_reach_the_host(
    pyrunc: Pyrunc, host_dir: tuple[Path, int], runtime: str
) -> None:
    """CVE-2024-21626 through `exec --cwd /proc/self/fd/N`. Before the fix pyrunc's exec ran in
    the host directory."""
    outside, fd = host_dir
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "100"]).write()
    tool: Pyrunc | Runc = Runc(pyrunc.root.parent / "runc-state") if runtime == "runc" else pyrunc
    assert tool("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
    try:
        done = _with_fd([*_argv(tool), "exec", "--cwd", f"/proc/self/fd/{fd}", cid, "sh", "-c", ESCAPE], fd)
        assert done.returncode != 0, done.stdout
        assert b"host secret" not in done.stdout and not _escaped(outside)
        # Nothing of the host in the container's own process either: stdio only (and ls's own).
        listing = tool("exec", cid, "ls", "/proc/self/fd")
        assert listing.stdout.split() == [b"0", b"1", b"2", b"3"], listing
    finally:
        tool("delete", "--force", cid)


def _argv(tool: Pyrunc | Runc) -> list[str]:
    return [RUNC if isinstance(tool, Runc) else str(PYRUNC), "--root", str(tool.root)]
