"""Terminals through the console socket, and every kind of bad input the runtime must refuse cleanly."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import time
from pathlib import Path

from tests.runtime.conftest import PYRUNC, SHARED_IMAGES, Pyrunc
from tests.tarread import member


def read_until(fd: int, needle: bytes, timeout: float = 15.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    return data


def receive_master(listener: socket.socket) -> int:
    listener.settimeout(30)
    conn, _ = listener.accept()
    with conn:
        msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
    assert msg == b"/dev/ptmx"
    assert len(fds) == 1
    return fds[0]


def test_terminal_over_console_socket(pyrunc: Pyrunc, tmp_path: Path) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh"])
    bundle.config["process"]["terminal"] = True
    bundle.write()
    sock_path = tmp_path / "console.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)
    creator = subprocess.Popen(
        [
            str(PYRUNC),
            "--root",
            str(pyrunc.root),
            "create",
            "-b",
            str(bundle.path),
            "--console-socket",
            str(sock_path),
            cid,
        ],
        stderr=subprocess.PIPE,
    )
    master = receive_master(listener)
    assert creator.wait(timeout=30) == 0, creator.stderr.read() if creator.stderr else ""
    pyrunc.ok("start", cid)
    os.write(master, b"tty; echo shell-$((40+2))\n")
    out = read_until(master, b"shell-42")
    assert b"/dev/pts/0" in out and b"shell-42" in out
    # a second terminal through exec -t
    listener2_path = tmp_path / "exec.sock"
    listener2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener2.bind(str(listener2_path))
    listener2.listen(1)
    execer = subprocess.Popen(
        [
            str(PYRUNC),
            "--root",
            str(pyrunc.root),
            "exec",
            "-t",
            "-d",
            "--console-socket",
            str(listener2_path),
            cid,
            "sh",
            "-c",
            "tty; sleep 1",
        ],
    )
    exec_master = receive_master(listener2)
    assert execer.wait(timeout=30) == 0
    assert b"/dev/pts/1" in read_until(exec_master, b"/dev/pts/1")
    os.write(master, b"exit 4\n")
    deadline = time.monotonic() + 10
    while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pyrunc.state(cid)["status"] == "stopped"
    os.close(master)
    os.close(exec_master)
    listener.close()
    listener2.close()
    pyrunc.ok("delete", cid)


def test_run_with_terminal_in_foreground(pyrunc: Pyrunc) -> None:
    """`pyrunc run` of a terminal container with no console socket proxies the pty itself."""
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "tty; read line; echo got-$line; exit 9"])
    bundle.config["process"]["terminal"] = True
    bundle.write()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(PYRUNC), [str(PYRUNC), "--root", str(pyrunc.root), "run", "-b", str(bundle.path), cid])
    out = read_until(fd, b"/dev/pts/0")
    os.write(fd, b"hello\n")
    out += read_until(fd, b"got-hello")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"/dev/pts/0" in out and b"got-hello" in out
    assert os.waitstatus_to_exitcode(status) == 9


def test_image_from_shared_fixture(pyrunc: Pyrunc, tmp_path: Path) -> None:
    """The busybox layer Docker wrote (../shared/images/busybox.tar) runs as a rootfs."""
    import tarfile

    archive = SHARED_IMAGES / "busybox.tar"
    assert archive.exists(), "../shared/images is part of the test environment"
    rootfs = tmp_path / "shared-rootfs"
    rootfs.mkdir()
    with tarfile.open(archive) as outer:
        manifest = json.load(member(outer, "manifest.json"))
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                inner.extractall(rootfs, filter="tar")
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "busybox | head -1; id -un"], rootfs=rootfs).write()
    done = pyrunc("run", "-b", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    first, user = done.stdout.decode().splitlines()
    assert first.startswith("BusyBox v1.35")
    assert user == "root"


# --- bad input: one clear line on stderr, non-zero exit, no traceback, nothing left ---------------


def assert_clean_error(done: subprocess.CompletedProcess[bytes], needle: str) -> None:
    err = done.stderr.decode()
    assert done.returncode != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def test_missing_bundle(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    assert_clean_error(pyrunc("create", "-b", "/nonexistent/bundle", cid), "does not exist")
    assert not (pyrunc.root / cid).exists()


def test_invalid_json_and_wrong_types(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["true"])
    (bundle.path / "config.json").write_text("{ not json")
    assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), "invalid config.json")
    cases = [
        (("process", "args"), "echo hi", "process.args must be an array of strings"),
        (("process", "terminal"), "yes", "process.terminal must be a boolean"),
        (("process", "user"), {"uid": "0"}, "process.user.uid must be an integer"),
        (("linux", "namespaces"), [{"type": "bogus"}], "not a known namespace type"),
        (("linux", "resources"), [], "linux.resources must be an object"),
        (("process", "capabilities"), {"bounding": ["CAP_BOGUS"]}, "unknown capability"),
        (("process", "rlimits"), [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}], "unknown rlimit"),
        (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_BOGUS"}, "SCMP_ACT_BOGUS"),
    ]
    for (section, key), value, needle in cases:
        config = json.loads(json.dumps(bundle.config))
        config[section][key] = value
        (bundle.path / "config.json").write_text(json.dumps(config))
        assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), needle)
        assert not (pyrunc.root / cid).exists()


def test_missing_rootfs_and_missing_executable(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["/no/such/binary"])
    bundle.config["root"]["path"] = "no-rootfs"
    bundle.write()
    assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), "rootfs")
    bundle.config["root"]["path"] = "rootfs"
    bundle.write()
    assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), "no such file or directory")
    bundle.config["process"]["args"] = ["nosuchcommand"]
    bundle.write()
    assert_clean_error(pyrunc("run", "-b", str(bundle.path), cid), "executable file not found in $PATH")
    assert not (pyrunc.root / cid).exists()


def test_duplicate_and_invalid_ids(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "100"]).write()
    pyrunc.ok("create", "-b", str(bundle.path), cid)
    assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), "already exists")
    assert pyrunc.state(cid)["status"] == "created"  # the original is untouched
    pyrunc.ok("delete", cid)
    for bad in ("../escape", "a/b", "sp ace", ""):
        assert_clean_error(pyrunc("create", "-b", str(bundle.path), bad), "container id")


def test_unknown_container(pyrunc: Pyrunc) -> None:
    for verb in ("state", "start", "kill", "delete", "pause", "resume", "ps", "events"):
        assert_clean_error(pyrunc(verb, "nosuch"), "does not exist")
    assert pyrunc("delete", "--force", "nosuch").returncode == 0
    assert_clean_error(pyrunc("exec", "nosuch", "true"), "does not exist")


def test_bad_signal_and_stopped_container(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["true"]).write()
    pyrunc.ok("create", "-b", str(bundle.path), cid)
    assert_clean_error(pyrunc("kill", cid, "SIGBOGUS"), "unknown signal")
    assert_clean_error(pyrunc("kill", cid, "99"), "invalid signal")
    pyrunc.ok("start", cid)
    deadline = time.monotonic() + 10
    while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_clean_error(pyrunc("start", cid), "cannot start a container that has stopped")
    assert_clean_error(pyrunc("kill", cid, "KILL"), "container not running")
    assert_clean_error(pyrunc("exec", cid, "true"), "stopped")
    pyrunc.ok("delete", cid)


def test_cgroup_limit_refused_by_kernel(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["true"])
    bundle.config["linux"]["resources"] = {"cpu": {"cpus": "99"}}
    bundle.write()
    assert_clean_error(pyrunc("create", "-b", str(bundle.path), cid), "cpuset.cpus")
    assert not (pyrunc.root / cid).exists()


def test_systemd_cgroup_refused_as_runc_refuses_it(pyrunc: Pyrunc, tmp_path: Path) -> None:
    """--systemd-cgroup (containerd's SystemdCgroup) on this machine, where systemd is not the init:
    create is refused in runc's order and words (the cgroupsPath form first), side by side with
    runc; verbs that make no cgroup take the flag, as runc's do."""
    assert not os.path.isdir("/run/systemd/system")
    assert pyrunc("--systemd-cgroup", "list").returncode == 0
    runc_root = tmp_path / "runc-root"
    for path, reason in (
        ("/plain/path", 'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, got "/plain/path" instead'),
        ("system.slice:test:x", "systemd not running on this host, cannot use systemd cgroups manager"),
    ):  # fmt: skip
        cid = pyrunc.new_id()
        bundle = pyrunc.bundle(["true"])
        bundle.config["linux"]["cgroupsPath"] = path
        bundle.write()
        assert_clean_error(pyrunc("--systemd-cgroup", "create", "-b", str(bundle.path), cid), reason)
        assert not (pyrunc.root / cid).exists()
        runc = subprocess.run(["runc", "--root", str(runc_root), "--systemd-cgroup", "create", "-b", str(bundle.path), cid],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert runc.returncode != 0 and reason.replace('"', '\\"') in runc.stderr, runc.stderr


def test_bad_flags(pyrunc: Pyrunc) -> None:
    assert_clean_error(
        pyrunc("create", "--no-such-flag", "x"), "flag provided but not defined: --no-such-flag"
    )
    assert_clean_error(pyrunc("kill"), "missing required argument: id")
    assert_clean_error(pyrunc("nosuchverb"), "no such command")
    assert_clean_error(pyrunc("create", "--bundle"), "flag needs an argument")
    assert_clean_error(pyrunc("list", "--format", "xml"), "invalid --format")
    assert_clean_error(pyrunc("--log-format", "yaml", "list"), "invalid --log-format")
    assert_clean_error(pyrunc("exec", "--preserve-fds", "many", "x", "true"), "invalid value")
