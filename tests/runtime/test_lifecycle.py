"""pyrunc's lifecycle on real containers: create/start split, state, run, kill, delete, exec, pause."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.runtime.conftest import PYRUNC, Pyrunc, cgroup_dirs


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_prints_and_cleans_up(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["echo", "hello from busybox"]).write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello from busybox\n"
    assert not (pyrunc.root / cid).exists()
    assert cgroup_dirs(f"/pyrunc-test-{cid}") == []


def test_create_blocks_until_start(pyrunc: Pyrunc, tmp_path: Path) -> None:
    cid = pyrunc.new_id()
    shared = tmp_path / "shared"
    shared.mkdir()
    bundle = pyrunc.bundle(["sh", "-c", "echo started > /shared/marker; sleep 1000"])
    bundle.config["mounts"].append(
        {"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind", "rw"]}
    )
    bundle.write()
    pid_file = tmp_path / "init.pid"
    pyrunc.ok("create", "--bundle", str(bundle.path), "--pid-file", str(pid_file), cid)
    state = pyrunc.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid
    assert state["bundle"] == str(bundle.path)
    assert pid_file.read_text() == str(state["pid"])  # no newline: containerd parses it with Atoi
    time.sleep(0.3)
    assert not (shared / "marker").exists(), "the user process ran before start"
    pyrunc.ok("start", cid)
    wait_for(lambda: (shared / "marker").exists(), what="the process to run after start")
    assert pyrunc.state(cid)["status"] == "running"
    pyrunc.ok("kill", cid, "KILL")
    wait_for(lambda: pyrunc.state(cid)["status"] == "stopped", what="stopped")
    assert pyrunc.state(cid)["pid"] == 0
    pyrunc.ok("delete", cid)
    assert not (pyrunc.root / cid).exists()


def test_isolation_pid_hostname_mounts_net(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    script = (
        "echo pid=$$; hostname; ls /proc | grep -E '^[0-9]+$' | wc -l; "
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; "
        "grep -c ' /work' /proc/self/mountinfo; readlink /proc/1/exe"
    )
    bundle = pyrunc.bundle(["sh", "-c", script]).write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().split()
    assert lines[0] == "pid=1"
    assert lines[1] == "pyrunc-test"
    # sh (pid 1) plus the pipeline's own processes: a handful, never the host's hundreds
    assert int(lines[2]) <= 6
    assert lines[3] == "lo"
    assert lines[4] == "0", "host paths are visible in the container's mount table"
    assert lines[5] == "/bin/busybox"


def test_exit_codes_and_signals_propagate(pyrunc: Pyrunc) -> None:
    for args, expected in ((["sh", "-c", "exit 3"], 3), (["true"], 0), (["false"], 1)):
        cid = pyrunc.new_id()
        bundle = pyrunc.bundle(args).write()
        assert pyrunc("run", "--bundle", str(bundle.path), cid).returncode == expected
    # Killed from outside (pid 1 of a pid namespace ignores SIGKILL from inside): 128 + 9.
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"]).write()
    proc = subprocess.Popen(
        [str(PYRUNC), "--root", str(pyrunc.root), "run", "--bundle", str(bundle.path), cid]
    )
    wait_for(
        lambda: (pyrunc.root / cid / "state.json").exists() and pyrunc.state(cid)["status"] == "running",
        what="running",
    )
    pyrunc.ok("kill", cid, "SIGKILL")
    assert proc.wait(timeout=20) == 137


def test_kill_delivers_signal_by_name_and_number(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(
        ["sh", "-c", "trap 'echo got-usr1; exit 7' USR1; while true; do sleep 0.05; done"]
    ).write()
    proc = subprocess.Popen(
        [str(PYRUNC), "--root", str(pyrunc.root), "run", "--bundle", str(bundle.path), cid],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(
        lambda: (pyrunc.root / cid / "state.json").exists() and pyrunc.state(cid)["status"] == "running",
        what="running",
    )
    time.sleep(0.2)
    pyrunc.ok("kill", cid, "10")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 7, err
    assert b"got-usr1" in out


def test_run_forwards_sigterm(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"]).write()
    proc = subprocess.Popen(
        [str(PYRUNC), "--root", str(pyrunc.root), "run", "--bundle", str(bundle.path), cid]
    )
    wait_for(
        lambda: (pyrunc.root / cid / "state.json").exists() and pyrunc.state(cid)["status"] == "running",
        what="running",
    )
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 42


def test_exec_applies_the_containers_seccomp_profile_compiled_once(pyrunc: Pyrunc) -> None:
    """Every exec gets the profile's filter, the second from the program the first compiled;
    a cache file from another profile is not used."""

    def start(denied: str) -> str:
        cid = pyrunc.new_id()
        bundle = pyrunc.bundle(["sleep", "1000"])
        bundle.config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": [denied, f"{denied}at"], "action": "SCMP_ACT_ERRNO"}],
        }
        bundle.write()
        pyrunc.ok("run", "--detach", "--bundle", str(bundle.path), cid)
        return cid

    no_mkdir, no_mknod = start("mkdir"), start("mknod")
    cache = pyrunc.root / no_mkdir / "seccomp.bpf"
    probe = [
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; echo rc=$?; rmdir /tmp/d 2>/dev/null; true",
    ]
    for attempt in ("compiled", "cached"):
        out = pyrunc.ok("exec", no_mkdir, *probe)
        assert "Seccomp:\t2" in out and "Operation not permitted" in out and "rc=1" in out, (attempt, out)
        assert cache.exists()
    ours = cache.read_bytes()
    # The other container's cache (a profile allowing mkdir) is compiled over, not loaded.
    assert "rc=0" in pyrunc.ok("exec", no_mknod, *probe)
    cache.write_bytes((pyrunc.root / no_mknod / "seccomp.bpf").read_bytes())
    out = pyrunc.ok("exec", no_mkdir, *probe)
    assert "Operation not permitted" in out and "rc=1" in out, out
    assert cache.read_bytes() == ours
    for cid in (no_mkdir, no_mknod):
        pyrunc.ok("delete", "--force", cid)
        assert not (pyrunc.root / cid).exists()


def test_exec_joins_running_container(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"]).write()
    pyrunc.ok("run", "--detach", "--bundle", str(bundle.path), cid)
    out = pyrunc.ok("exec", cid, "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$")
    host, cmdline, _ = out.splitlines()
    assert host == "pyrunc-test"
    assert cmdline.strip() == "sleep 1000"
    assert pyrunc("exec", cid, "sh", "-c", "exit 5").returncode == 5
    # --process FILE, --env, --cwd and --user
    process = {
        "args": ["sh", "-c", "echo $FOO; pwd; id -u"],
        "cwd": "/tmp",
        "env": ["FOO=bar"],
        "user": {"uid": 65534, "gid": 65534},
    }
    process_file = pyrunc.workdir / "process.json"
    process_file.write_text(json.dumps(process))
    assert pyrunc.ok("exec", "--process", str(process_file), cid).split() == ["bar", "/tmp", "65534"]
    assert pyrunc.ok(
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/etc",
        "--user",
        "65534:65534",
        cid,
        "sh",
        "-c",
        "echo $X; pwd; id -g",
    ).split() == ["1", "/etc", "65534"]
    # detached exec writes the pid of the real process
    pid_file = pyrunc.workdir / "exec.pid"
    pyrunc.ok("exec", "--detach", "--pid-file", str(pid_file), cid, "sleep", "999")
    pid = int(pid_file.read_text())
    assert open(f"/proc/{pid}/cmdline").read().startswith("sleep")
    assert pid in json.loads(pyrunc.ok("ps", "--format", "json", cid))
    pyrunc.ok("delete", "--force", cid)


def test_pause_and_resume_freeze_processes(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    counter = pyrunc.workdir / "counter"
    counter.mkdir()
    bundle = pyrunc.bundle(["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /c/n; sleep 0.02; done"])
    bundle.config["mounts"].append(
        {"destination": "/c", "type": "bind", "source": str(counter), "options": ["rbind"]}
    )
    bundle.write()
    pyrunc.ok("run", "-d", "--bundle", str(bundle.path), cid)
    wait_for(lambda: (counter / "n").exists() and (counter / "n").read_text().strip() != "", what="counting")
    pyrunc.ok("pause", cid)
    assert pyrunc.state(cid)["status"] == "paused"
    frozen = (counter / "n").read_text()
    time.sleep(0.3)
    assert (counter / "n").read_text() == frozen, "a paused container kept running"
    assert pyrunc("exec", cid, "true").returncode != 0  # exec into a paused container is refused
    pyrunc.ok("resume", cid)
    assert pyrunc.state(cid)["status"] == "running"
    wait_for(lambda: (counter / "n").read_text() != frozen, what="counting to resume")
    assert pyrunc("delete", cid).returncode == 1  # running: needs --force
    pyrunc.ok("delete", "--force", cid)


def test_list_ps_events(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"]).write()
    pyrunc.ok("run", "-d", "--bundle", str(bundle.path), cid)
    listed = json.loads(pyrunc.ok("list", "--format", "json"))
    assert [c["id"] for c in listed] == [cid]
    assert listed[0]["status"] == "running"
    assert cid in pyrunc.ok("list")
    assert pyrunc.ok("list", "-q").split() == [cid]
    pids = json.loads(pyrunc.ok("ps", "--format", "json", cid))
    assert pids == [pyrunc.state(cid)["pid"]]
    table = pyrunc.ok("ps", cid)
    assert "PID" in table.splitlines()[0] and "sleep 1000" in table
    event = json.loads(pyrunc.ok("events", "--stats", cid))
    assert event["type"] == "stats" and event["id"] == cid
    assert event["data"]["memory"]["usage"]["usage"] > 0
    assert event["data"]["pids"]["current"] == 1
    pyrunc.ok("delete", "--force", cid)
    assert json.loads(pyrunc.ok("list", "--format", "json")) is None


def test_update_changes_cgroup_limits(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"]).write()
    pyrunc.ok("run", "-d", "--bundle", str(bundle.path), cid)
    pyrunc.ok("update", "--memory", "64m", "--pids-limit", "33", cid)
    cg = f"pyrunc-test-{cid}"
    assert open(f"/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes").read().strip() == str(64 << 20)
    assert open(f"/sys/fs/cgroup/pids/{cg}/pids.max").read().strip() == "33"
    pyrunc.ok("update", "--resources", "-", cid, input=json.dumps({"cpu": {"shares": 512}}).encode())
    assert open(f"/sys/fs/cgroup/cpu/{cg}/cpu.shares").read().strip() == "512"
    pyrunc.ok("delete", "--force", cid)


def test_hooks_receive_state(pyrunc: Pyrunc, tmp_path: Path) -> None:
    cid = pyrunc.new_id()
    record = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1 $(cat)" >> {record}\n')
    hook.chmod(0o755)
    bundle = pyrunc.bundle(["true"])
    bundle.config["hooks"] = {
        stage: [{"path": str(hook), "args": ["hook.sh", stage]}]
        for stage in ("prestart", "createRuntime", "poststart", "poststop")
    }
    bundle.write()
    assert pyrunc("run", "--bundle", str(bundle.path), cid).returncode == 0
    lines = record.read_text().splitlines()
    stages = [line.split(" ", 1)[0] for line in lines]
    assert stages == ["prestart", "createRuntime", "poststart", "poststop"]
    first = json.loads(lines[0].split(" ", 1)[1])
    assert first["id"] == cid and first["pid"] > 0 and first["bundle"] == str(bundle.path)
    assert json.loads(lines[-1].split(" ", 1)[1])["status"] == "stopped"


def test_failing_prestart_hook_aborts_create(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["true"])
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/false"}]}
    bundle.write()
    done = pyrunc("create", "--bundle", str(bundle.path), cid)
    assert done.returncode == 1
    assert b"prestart hook /bin/false exited with status 1" in done.stderr
    assert not (pyrunc.root / cid).exists()


def test_spec_features_version(tmp_path: Path) -> None:
    done = subprocess.run([str(PYRUNC), "spec", "--bundle", str(tmp_path)], capture_output=True)
    assert done.returncode == 0
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    again = subprocess.run([str(PYRUNC), "spec", "--bundle", str(tmp_path)], capture_output=True)
    assert again.returncode == 1 and b"exists" in again.stderr
    features = json.loads(subprocess.run([str(PYRUNC), "features"], capture_output=True, check=True).stdout)
    assert "pid" in features["linux"]["namespaces"]
    assert features["linux"]["seccomp"]["enabled"] is True
    version = subprocess.run([str(PYRUNC), "--version"], capture_output=True, check=True).stdout.decode()
    assert version.startswith("pyrunc version") and "spec:" in version


def test_no_pivot_and_readonly_root(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(
        ["sh", "-c", "touch /x 2>/dev/null && echo writable || echo readonly; touch /tmp/ok && echo tmp-ok"]
    )
    bundle.config["root"]["readonly"] = True
    bundle.config["mounts"].append(
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
    )
    bundle.write()
    done = pyrunc("run", "--no-pivot", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["readonly", "tmp-ok"]


def test_log_json_records_errors(pyrunc: Pyrunc, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    done = subprocess.run(
        [
            str(PYRUNC),
            "--root",
            str(pyrunc.root),
            "--log",
            str(log),
            "--log-format",
            "json",
            "state",
            "nosuch",
        ],
        capture_output=True,
    )
    assert done.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error" and "does not exist" in entries[-1]["msg"]


def test_pid_file_is_atomic_and_exact(pyrunc: Pyrunc, tmp_path: Path) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "100"]).write()
    pid_file = tmp_path / "p.pid"
    pyrunc.ok("create", "-b", str(bundle.path), "--pid-file", str(pid_file), cid)
    pid = int(pid_file.read_text())
    assert os.path.exists(f"/proc/{pid}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.pid")] == []
    pyrunc.ok("delete", cid)  # a created container may be deleted without --force
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_join_namespaces_by_path_cgroupns_domainname_keyring(pyrunc: Pyrunc) -> None:
    first = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"])
    bundle.config["domainname"] = "example.test"
    bundle.write()
    pyrunc.ok("run", "-d", "-b", str(bundle.path), first)
    pid = pyrunc.state(first)["pid"]
    second = pyrunc.new_id()
    other = pyrunc.bundle(
        [
            "sh",
            "-c",
            "hostname; cat /proc/sys/kernel/domainname; cat /proc/self/cgroup | grep memory; grep -c _ses.$CID /proc/keys",
        ]
    )
    del other.config["hostname"]
    other.config["process"]["env"].append(f"CID={second}")
    for ns in other.config["linux"]["namespaces"]:
        if ns["type"] == "uts":
            ns["path"] = f"/proc/{pid}/ns/uts"
    other.config["linux"]["namespaces"].append({"type": "cgroup"})
    other.config["linux"]["maskedPaths"].remove("/proc/keys")
    other.write()
    done = pyrunc("run", "-b", str(other.path), second)
    assert done.returncode == 0, done.stderr
    host, domain, memory_cgroup, keyrings = done.stdout.decode().split()
    assert (host, domain) == ("pyrunc-test", "example.test")  # the first container's UTS namespace
    assert memory_cgroup.endswith(":memory:/"), memory_cgroup  # a cgroup namespace rooted at its own cgroup
    assert keyrings == "1"  # its own session keyring
    pyrunc.ok("delete", "--force", first)


def test_events_stream(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sleep", "1000"]).write()
    pyrunc.ok("run", "-d", "-b", str(bundle.path), cid)
    stream = subprocess.Popen(
        [str(PYRUNC), "--root", str(pyrunc.root), "events", "--interval", "100ms", cid],
        stdout=subprocess.PIPE,
    )
    assert stream.stdout is not None
    events = [json.loads(stream.stdout.readline()) for _ in range(2)]
    assert [e["type"] for e in events] == ["stats", "stats"]
    pyrunc.ok("kill", cid, "KILL")
    assert stream.wait(timeout=10) == 0  # the stream ends when the container stops
    pyrunc.ok("delete", cid)
