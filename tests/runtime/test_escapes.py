"""The escape classes runc has had CVEs for, each tried by a hostile container (issue 16).

Every test here failed on the build before its fix (verified by reverting the fix once; the
docstrings say what the container got then), and runs runc on the same bundle where runc
is the reference for what must happen instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import PYRUNC, REPO, Pyrunc
from tests.runtime.runc_side import RUNC, Runc, both


def _with_fd(command: list[str], fd: int) -> subprocess.CompletedProcess[bytes]:
    """COMMAND with FD inherited as it is (a caller leaking a host directory to the runtime)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        done = subprocess.run(command, stdout=out, stderr=err, pass_fds=(fd,), timeout=60)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, done.returncode, out.read(), err.read())


@pytest.fixture
def host_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
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
        failed = "pyrunc: runc run failed: unable to start container process: "
        assert done.stderr.decode().startswith(f"{failed}cwd {cwd!r}: it goes through a magic link"), (
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


# Run inside a throwaway mount namespace (unshare -m, private): pyrunc's own mount code on a
# rootfs whose volume holds "sub" (a directory) and "link" (a symlink to a host directory). The
# attacker's move, exchanging the two with renameat2(RENAME_EXCHANGE), is made at the worst
# moment for the runtime: after the destination /vol/sub/t was looked up, just before mount(2).
_RACE_AT_MOUNT = r"""
import ctypes, json, os, sys
sys.path.insert(0, sys.argv[1])
from common import libc
from runtime.linux import mounts
rootfs, vol = sys.argv[2], sys.argv[3]
root = mounts.prepare_root(rootfs, None)
mounts.mount_entry(root, {"destination": "/vol", "type": "bind", "source": vol, "options": ["rbind"]}, {}, False)
real_mount, raw = libc.mount, ctypes.CDLL(None, use_errno=True)

def attacked(source, target, fstype, flags=0, data=None):
    if fstype == "tmpfs":
        assert raw.renameat2(-100, os.fsencode(vol + "/sub"), -100, os.fsencode(vol + "/link"), 2) == 0
    real_mount(source, target, fstype, flags, data)

libc.mount = attacked
mounts.mount_entry(root, {"destination": "/vol/sub/t", "type": "tmpfs", "source": "tmpfs", "options": []}, {}, False)
with open("/proc/self/mountinfo") as f:
    print(json.dumps([line.split()[4] for line in f if line.split(" - ")[1].startswith("tmpfs tmpfs ")]))
"""


def test_a_mount_destination_swapped_for_a_symlink_at_the_last_moment_stays_inside(tmp_path: Path) -> None:
    """CVE-2021-30465, made deterministic: the destination's directory becomes a symlink to the
    host between its lookup and mount(2). The mount is made through the fd the lookup returned,
    so it lands where the lookup was (inside the rootfs, wherever that directory is now named).
    Before the fix the mount was made on the path string again, the kernel followed the new
    symlink, and the tmpfs landed on the host directory."""
    rootfs = tmp_path / "rootfs"
    vol = tmp_path / "vol"
    host = tmp_path / "host"
    for d in (rootfs / "vol", vol / "sub" / "t", host / "t"):
        d.mkdir(parents=True)
    (vol / "link").symlink_to(host)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-I", "-c", _RACE_AT_MOUNT,
         str(REPO), str(rootfs), str(vol)],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    landed = [point for point in json.loads(done.stdout) if point.startswith(f"{tmp_path}/")]
    assert landed == [f"{rootfs}/vol/link/t"], landed  # the directory that was "sub", now named "link"
    assert (vol / "link").is_dir() and (vol / "sub").is_symlink()  # the attack did happen


def test_volume_destinations_that_are_symlinks_to_the_host_stay_inside(
    pyrunc: Pyrunc, tmp_path: Path
) -> None:
    """Mount destinations through symlinks to outside the rootfs (absolute, and climbing with
    '..'), in a volume and in the image: both runtimes resolve them as if the rootfs were '/',
    so every mount is inside the container and nothing is made or mounted on the host. (The
    static case, which pyrunc's textual resolution handled before too; the race is the test
    above.)"""
    host = tmp_path / "host"
    host.mkdir()
    (host / "keep").write_text("host file\n")
    climb = "../" * 12 + str(host).lstrip("/")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "abs").symlink_to(host)
    (vol / "rel").symlink_to(climb)
    data = tmp_path / "data"
    data.mkdir()
    script = f"cat {host}/keep 2>/dev/null || echo none; ls {host}; cut -d' ' -f5 /proc/self/mountinfo | grep -c '^{host}/'"

    def edit(config: dict[str, Any]) -> None:
        config["mounts"] += [
            {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
            {"destination": "/vol/abs/t1", "type": "tmpfs", "source": "tmpfs", "options": []},
            {"destination": "/vol/rel/b1", "type": "bind", "source": str(data), "options": ["rbind", "ro"]},
            {"destination": "/up/b2", "type": "bind", "source": str(data), "options": ["rbind"]},
        ]

    results = both(
        pyrunc, ["sh", "-c", script], edit, rootfs_edit=lambda rootfs: (rootfs / "up").symlink_to(climb)
    )
    assert sorted(p.name for p in host.iterdir()) == ["keep"]  # nothing made on the host
    assert results["pyrunc"].stdout == results["runc"].stdout, results
    # Inside: no host file; the three mounts at the host's path, in the container.
    assert results["pyrunc"].stdout.decode().split() == ["none", "b1", "b2", "t1", "3"], results["pyrunc"]


# --- /proc/self/exe (CVE-2019-5736) --------------------------------------------------------------

HOST_PYTHON = os.path.realpath(sys.executable)


def _python_image(config: dict[str, Any]) -> None:
    """The busybox image plus a Python (the host's installation, bound read-only, standing in for
    an image with glibc and python3): what the hostile programs below are written in."""
    for path in (sys.base_prefix, "/lib", "/lib64"):
        config["mounts"].append(
            {"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro"]}
        )


def _host_python_id() -> str:
    st = os.stat(HOST_PYTHON)
    return f"{st.st_dev}:{st.st_ino}"


# The container's program, run as a script whose interpreter is /proc/self/exe: the binary of
# whoever execs it. Prints what that binary is, and whether it could be opened for writing.
SELF_EXE = """#!/proc/self/exe
import errno, os
st = os.stat("/proc/self/exe")
try:
    os.close(os.open("/proc/self/exe", os.O_WRONLY))
    verdict = "writable"
except OSError as exc:
    verdict = errno.errorcode[exc.errno]
print(f"{st.st_dev}:{st.st_ino} {verdict}", flush=True)
"""


@pytest.mark.parametrize("runtime", ["runc", "pyrunc"])
@pytest.mark.parametrize("verb", ["run", "exec"])
def test_a_program_that_is_proc_self_exe_never_runs_the_runtime_binary(
    pyrunc: Pyrunc, runtime: str, verb: str
) -> None:
    """CVE-2019-5736: the container's program is a script with "#!/proc/self/exe", so the kernel
    loads as its interpreter whatever binary exec'd it. pyrunc's last execve is made by a sealed
    memfd stub, which refuses to run as an interpreter; runc's is made by a memfd clone of runc.
    Neither lets the container run, nor hold open, the host's binary. Before the fix the host's
    Python ran inside the container, and its /proc/self/exe opened for writing failed only with
    ETXTBSY (the host binary, busy: writable the moment no Python runs)."""
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["/bin/evil"] if verb == "run" else ["sleep", "100"])
    _python_image(bundle.config)
    (bundle.rootfs / "bin" / "evil").write_text(SELF_EXE)
    (bundle.rootfs / "bin" / "evil").chmod(0o755)
    bundle.write()
    tool: Pyrunc | Runc = Runc(pyrunc.root.parent / "runc-state") if runtime == "runc" else pyrunc
    if verb == "run":
        done = tool("run", "--bundle", str(bundle.path), cid)
    else:
        assert tool("run", "-d", "--bundle", str(bundle.path), cid).returncode == 0
        try:
            done = tool("exec", cid, "/bin/evil")
        finally:
            tool("delete", "--force", cid)
    assert _host_python_id().encode() not in done.stdout, done
    assert done.returncode != 0
    if runtime == "pyrunc":
        assert (done.returncode, done.stdout) == (127, b""), done
        assert done.stderr == b"pyrunc exec stub: not an interpreter\n", done


# The hostile container's init: it watches its pid namespace for processes that enter it with
# its own capabilities (an exec'd process, once its capabilities are set), stops each one on
# sight and tries to open its /proc/PID/exe, recording what it got.
WATCHER = """
import errno, json, os, signal
me = os.getpid()
def caps(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("CapEff"))
own, done = caps(me), set()
with open("/report/attempts", "a") as report:
    while not os.path.exists("/report/stop"):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in done or int(name) == me:
                continue
            pid = int(name)
            try:
                if caps(pid) != own:
                    continue
                os.kill(pid, signal.SIGSTOP)
            except OSError:
                continue
            done.add(pid)
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
                try:
                    fd = os.open(f"/proc/{pid}/exe", os.O_RDONLY)
                    st = os.fstat(fd)
                    os.close(fd)
                    got = f"{st.st_dev}:{st.st_ino}"
                except OSError as exc:
                    got = errno.errorcode[exc.errno]
                report.write(json.dumps({"pid": pid, "comm": comm, "exe": got}) + "\\n")
                report.flush()
            finally:
                os.kill(pid, signal.SIGCONT)
"""


def test_processes_entering_the_container_are_not_dumpable(pyrunc: Pyrunc, tmp_path: Path) -> None:
    """CVE-2019-5736, the other half: while `pyrunc exec` runs inside the container it is the
    host's Python. A root process of the container stops it as soon as its capabilities are the
    container's (past capset, before its execve; a large environment keeps it there a while) and
    opens /proc/PID/exe. The exec process is non-dumpable from before it joins the namespaces
    until its execve, so that open is refused (EACCES); the shim and pyrunc's parent never enter
    the container's pid namespace, so the watcher sees nothing else of ours. Before the fix it
    opened the host's Python binary, every time."""
    report = tmp_path / "report"
    report.mkdir()
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle([HOST_PYTHON, "-I", "-c", WATCHER])
    _python_image(bundle.config)
    bundle.config["mounts"].append(
        {"destination": "/report", "type": "bind", "source": str(report), "options": ["rbind"]}
    )
    bundle.write()
    pyrunc.ok("run", "-d", "--bundle", str(bundle.path), cid)
    try:
        process = dict(bundle.config["process"], args=["true"])
        process["env"] = process["env"] + [f"FILLER_{i}=x" for i in range(40000)]
        (tmp_path / "process.json").write_text(json.dumps(process))
        for _ in range(3):
            pyrunc.ok("exec", "--process", str(tmp_path / "process.json"), cid)
    finally:
        (report / "stop").touch()
        pyrunc.ok("delete", "--force", cid)
    attempts = [json.loads(line) for line in (report / "attempts").read_text().splitlines()]
    assert not [a for a in attempts if a["exe"] == _host_python_id()], attempts
    # The watcher did catch the exec processes while they were still pyrunc (the test is real).
    assert [a for a in attempts if a["comm"] == "pyrunc" and a["exe"] == "EACCES"], attempts


def test_the_exec_stub_reports_a_failed_execve(pyrunc: Pyrunc) -> None:
    """The stub's execve failing (a script whose interpreter is missing: only execve can tell)
    comes back to `exec` as the same message a failed execve from pyrunc itself gave."""
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "100"])
    (bundle.rootfs / "bin" / "broken").write_text("#!/no/such/interpreter\n")
    (bundle.rootfs / "bin" / "broken").chmod(0o755)
    pyrunc.ok("run", "-d", "--bundle", str(bundle.write().path), cid)
    try:
        done = pyrunc("exec", cid, "/bin/broken")
        assert (done.returncode, done.stderr) == (
            1,
            b'pyrunc: exec: "/bin/broken": No such file or directory\n',
        )
        assert pyrunc("exec", cid, "sh", "-c", "exit 3").returncode == 3
    finally:
        pyrunc.ok("delete", "--force", cid)
