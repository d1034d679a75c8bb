"""pyrunc under the real Docker: Debian's dockerd 20.10 drives it exactly as it drives runc.

Every behaviour is checked twice, with `--runtime runc` (the control: it proves the harness
and the expectations are right) and with `--runtime pyrunc` (registered in the reference
daemon with `--add-runtime pyrunc=.venv/bin/pyrunc`). The daemon, its containerd and its
shims are the reference ones; only the OCI runtime differs. See tests/dockerd_ref.py for how
the daemon is isolated and how leftovers fail the run.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.dockerd_ref import PYRUNC, RefDockerd, reference_dockerd, without_host_warnings

RUNTIMES = ("runc", "pyrunc")
IMAGE = "busybox"
MEMORY_64M = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def dockerd() -> Iterator[RefDockerd]:
    with reference_dockerd({"pyrunc": PYRUNC}) as daemon:
        yield daemon


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def name(dockerd: RefDockerd) -> Iterator[str]:
    """A unique container name, removed (with its container) after the test."""
    container = f"interop-{uuid.uuid4().hex[:12]}"
    yield container
    dockerd.docker("rm", "-f", container)


def explain(dockerd: RefDockerd, res: subprocess.CompletedProcess[str], container: str = "") -> str:
    """What a failed assertion shows: the CLI's output, the runtime's log.json, the daemon log."""
    parts = [
        f"$ {' '.join(res.args[3:])}",
        f"rc={res.returncode}",
        f"stdout={res.stdout!r}",
        f"stderr={res.stderr!r}",
    ]
    if container:
        full_id = dockerd.docker("inspect", "-f", "{{.Id}}", container).stdout.strip()
        if full_id:
            parts.append(f"runtime log.json:\n{dockerd.runtime_log(full_id) or '(none)'}")
    errors = [line for line in dockerd.log_tail(40).splitlines() if "level=error" in line]
    parts.append("dockerd errors (last 5):\n" + "\n".join(errors[-5:]))
    return "\n".join(parts)


def inspect(dockerd: RefDockerd, container: str) -> dict[str, object]:
    out = dockerd.docker_ok("inspect", container)
    data = json.loads(out)[0]
    assert isinstance(data, dict)
    return data


def state(dockerd: RefDockerd, container: str) -> dict[str, object]:
    st = inspect(dockerd, container)["State"]
    assert isinstance(st, dict)
    return st


def start_sleeper(dockerd: RefDockerd, runtime: str, container: str, *extra: str) -> str:
    """`docker run -d` a `sleep 1000` container; return its full id once it is running."""
    res = dockerd.docker(
        "run", "-d", "--runtime", runtime, "--name", container, *extra, IMAGE, "sleep", "1000"
    )
    assert res.returncode == 0, explain(dockerd, res, container)
    st = state(dockerd, container)
    assert st["Running"] is True, st
    return res.stdout.strip()


def test_run_prints_output(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker("run", "--rm", "--runtime", runtime, IMAGE, "echo", "hi")
    assert (res.returncode, res.stdout) == (0, "hi\n"), explain(dockerd, res)


def test_exit_code_propagates(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker(
        "run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert (res.returncode, res.stdout, without_host_warnings(res.stderr)) == (3, "out\n", "err\n"), explain(
        dockerd, res
    )


def test_stdin_is_piped_with_i(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker(
        "run", "-i", "--rm", "--runtime", runtime, IMAGE, "sh", "-c", "cat; echo done", input="abc\n"
    )
    assert (res.returncode, res.stdout) == (0, "abc\ndone\n"), explain(dockerd, res)


def test_run_tty(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker_tty("run", "-t", "--rm", "--runtime", runtime, IMAGE, "tty")
    assert (res.returncode, without_host_warnings(res.output)) == (0, "/dev/pts/0\n"), res


def test_exec_output_and_exit_code(dockerd: RefDockerd, runtime: str, name: str) -> None:
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("exec", name, "sh", "-c", "echo from-exec; cat /proc/1/comm")
    assert (res.returncode, res.stdout) == (0, "from-exec\nsleep\n"), explain(dockerd, res, name)
    res = dockerd.docker("exec", name, "sh", "-c", "exit 7")
    assert res.returncode == 7, explain(dockerd, res, name)
    res = dockerd.docker("exec", "-i", name, "cat", input="piped\n")
    assert (res.returncode, res.stdout) == (0, "piped\n"), explain(dockerd, res, name)


def test_exec_tty(dockerd: RefDockerd, runtime: str, name: str) -> None:
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker_tty("exec", "-t", name, "tty")
    assert res.returncode == 0 and res.output.startswith("/dev/pts/"), res
    res = dockerd.docker_tty("exec", "-it", name, "sh", "-c", "tty; exit 5")
    assert res.returncode == 5 and res.output.startswith("/dev/pts/"), res


def test_pause_and_unpause(dockerd: RefDockerd, runtime: str, name: str) -> None:
    cid = start_sleeper(dockerd, runtime, name)
    freezer = dockerd.cgroup_dir("freezer", cid) / "freezer.state"
    res = dockerd.docker("pause", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    st = state(dockerd, name)
    assert (st["Paused"], st["Status"]) == (True, "paused"), st
    assert freezer.read_text().strip() == "FROZEN"
    res = dockerd.docker("unpause", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    st = state(dockerd, name)
    assert (st["Paused"], st["Status"]) == (False, "running"), st
    assert freezer.read_text().strip() == "THAWED"
    res = dockerd.docker("exec", name, "true")
    assert res.returncode == 0, explain(dockerd, res, name)


def test_stop_sigkills_an_init_that_ignores_sigterm(dockerd: RefDockerd, runtime: str, name: str) -> None:
    # `sleep` as pid 1 of a pid namespace has no TERM handler, so the kernel drops TERM:
    # docker stop must fall back to KILL after the timeout, giving 128 + 9.
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("stop", "-t", "1", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    st = state(dockerd, name)
    assert (st["Running"], st["ExitCode"]) == (False, 137), st


def test_stop_delivers_sigterm(dockerd: RefDockerd, runtime: str, name: str) -> None:
    script = "trap 'exit 143' TERM; echo ready; while true; do sleep 0.1; done"
    res = dockerd.docker("run", "-d", "--runtime", runtime, "--name", name, IMAGE, "sh", "-c", script)
    assert res.returncode == 0, explain(dockerd, res, name)
    deadline = time.monotonic() + 10
    while "ready" not in dockerd.docker("logs", name).stdout:  # the trap is set once "ready" is out
        assert time.monotonic() < deadline, "container never printed ready"
        time.sleep(0.05)
    started = time.monotonic()
    res = dockerd.docker("stop", "-t", "20", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    assert time.monotonic() - started < 10, "SIGTERM was not delivered: docker stop waited for its timeout"
    st = state(dockerd, name)
    assert (st["Running"], st["ExitCode"]) == (False, 143), st


def test_top_lists_container_processes(dockerd: RefDockerd, runtime: str, name: str) -> None:
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("top", name)
    assert res.returncode == 0 and "sleep 1000" in res.stdout, explain(dockerd, res, name)


def test_stats_read_the_containers_cgroups(dockerd: RefDockerd, runtime: str, name: str) -> None:
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("stats", "--no-stream", "--format", "{{.PIDs}}|{{.MemUsage}}", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    pids, mem = res.stdout.strip().split("|")
    assert pids == "1" and not mem.startswith("0B"), res.stdout


def test_update_memory_limit(dockerd: RefDockerd, runtime: str, name: str) -> None:
    cid = start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("update", "--memory", "64m", "--memory-swap", "128m", name)
    assert res.returncode == 0, explain(dockerd, res, name)
    limit = dockerd.cgroup_dir("memory", cid) / "memory.limit_in_bytes"
    assert int(limit.read_text()) == MEMORY_64M
    res = dockerd.docker("exec", name, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert (res.returncode, res.stdout.strip()) == (0, str(MEMORY_64M)), explain(dockerd, res, name)


def test_resource_limits_at_create(dockerd: RefDockerd, runtime: str) -> None:
    script = (
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max"
        " /sys/fs/cgroup/cpu/cpu.cfs_quota_us; ulimit -n"
    )
    res = dockerd.docker(
        "run", "--rm", "--runtime", runtime, "-m", "32m", "--pids-limit", "50", "--cpus", "0.5",
        "--ulimit", "nofile=1024:2048", IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert (res.returncode, res.stdout.split()) == (0, ["33554432", "50", "50000", "1024"]), explain(
        dockerd, res
    )


def test_user_workdir_and_env(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker(
        "run", "--rm", "--runtime", runtime, "-u", "65534:65534", "-w", "/tmp", "-e", "FOO=bar",
        IMAGE, "sh", "-c", 'id -u; id -g; pwd; echo "$FOO"',
    )  # fmt: skip
    assert (res.returncode, res.stdout) == (0, "65534\n65534\n/tmp\nbar\n"), explain(dockerd, res)


def test_missing_binary_is_reported(dockerd: RefDockerd, runtime: str, name: str) -> None:
    # Docker turns the runtime's last log.json error into the message and the exit code
    # (127 for run, 126 for exec): the runtime must say what failed, in JSON, as runc does.
    res = dockerd.docker("run", "--rm", "--runtime", runtime, IMAGE, "/nonexistent")
    assert res.returncode == 127 and "/nonexistent" in res.stderr, explain(dockerd, res)
    assert "no such file or directory" in res.stderr, explain(dockerd, res)
    start_sleeper(dockerd, runtime, name)
    res = dockerd.docker("exec", name, "/nonexistent")
    # docker exec (20.10) prints this error on stdout, not stderr.
    assert res.returncode == 126 and "/nonexistent" in res.stdout + res.stderr, explain(dockerd, res, name)
    st = state(dockerd, name)
    assert st["Running"] is True, "a failed exec must not disturb the container"


def test_read_only_rootfs(dockerd: RefDockerd, runtime: str) -> None:
    res = dockerd.docker("run", "--rm", "--runtime", runtime, "--read-only", IMAGE, "touch", "/x")
    assert res.returncode == 1 and "Read-only file system" in res.stderr, explain(dockerd, res)


def test_network_none_runs_the_prestart_hook(dockerd: RefDockerd, runtime: str) -> None:
    # With a network mode docker adds a prestart hook (dockerd's libnetwork-setkey) that reads
    # the container state from stdin: the runtime must run it, or docker fails the start.
    res = dockerd.docker(
        "run", "--rm", "--runtime", runtime, "--network", "none", IMAGE, "ls", "/sys/class/net"
    )
    assert (res.returncode, res.stdout.split()) == (0, ["lo"]), explain(dockerd, res)


def test_init_binary_is_bind_mounted(dockerd: RefDockerd, runtime: str) -> None:
    # --init bind-mounts a single file (/usr/bin/docker-init) read-only onto a path that does
    # not exist in the image and makes it pid 1.
    res = dockerd.docker("run", "--rm", "--runtime", runtime, "--init", IMAGE, "cat", "/proc/1/comm")
    assert (res.returncode, res.stdout.strip()) == (0, "docker-init"), explain(dockerd, res)


# What a process sees of its container: the security settings, the mount table (mount
# point, per-mount options, filesystem type), /dev, limits. Host-specific values (the
# hostname, which is the container id) are not printed.
INTROSPECT = r"""
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' /proc/self/status
id
echo "umask $(umask) nofile $(ulimit -n) oom $(cat /proc/self/oom_score_adj)"
awk '{ for (i = 7; $i != "-"; i++) ; print $5, $6, $(i + 1) }' /proc/self/mountinfo | sort
ls -la /dev | awk 'NR > 1 { print $1, $3, $4, $NF }'
ls /sys/fs/cgroup
cat /proc/sys/net/ipv4/ip_unprivileged_port_start
echo "$HOSTNAME" | wc -c
"""


def test_container_view_matches_runc(dockerd: RefDockerd) -> None:
    seen = {}
    for rt in RUNTIMES:
        res = dockerd.docker("run", "--rm", "--runtime", rt, IMAGE, "sh", "-c", INTROSPECT)
        assert res.returncode == 0, explain(dockerd, res)
        seen[rt] = res.stdout.splitlines()
    assert seen["pyrunc"] == seen["runc"]
