"""pydockerd's resource endpoints through real clients (the Docker CLI v28 and docker-py):
top with ps arguments, stats (one sample, one-shot, streaming, stopped containers), update of
limits and restart policy (checked in the container's own cgroup files and in inspect), ps -s
and inspect -s sizes, image prune, system prune and system df."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.dockerd_ref import SHARED_IMAGES
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

LAYERED_TAR = SHARED_IMAGES / "layered.tar"
LAYERED_ID = "sha256:17e3dc93a3aa"
# Prints the container's own cgroup limits on SIGUSR1 (no exec needed to look inside).
CGROUP_REPORTER = (
    'trap "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes '
    '/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/pids/pids.max; echo done" USR1; '
    "echo ready; while :; do sleep 0.1; done"
)


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


@pytest.fixture
def names(engine: PyDockerd) -> Iterator[list[str]]:
    """Container names for one test, removed when it ends."""
    made: list[str] = []
    yield made
    if made:
        engine.docker("rm", "-f", *made)


@pytest.fixture
def api(engine: PyDockerd) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
    yield client
    client.close()


def _name(names: list[str], prefix: str) -> str:
    name = f"res-{prefix}-{uuid.uuid4().hex[:8]}"
    names.append(name)
    return name


def _wait_for_log(engine: PyDockerd, name: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = engine.docker_ok("logs", name)
        if text in out:
            return out
        assert time.monotonic() < deadline, f"{text!r} never logged by {name}: {out!r}"
        time.sleep(0.1)


def _cgroup_limits(engine: PyDockerd, name: str) -> list[str]:
    """memory, memory+swap, cfs quota, pids.max as the container reads them from /sys/fs/cgroup."""
    before = engine.docker_ok("logs", name).count("done\n")
    engine.docker_ok("kill", "-s", "USR1", name)
    deadline = time.monotonic() + 20
    while True:
        out = engine.docker_ok("logs", name)
        if out.count("done\n") > before:
            return out.split("done\n")[before].strip().split("\n")[-4:]
        assert time.monotonic() < deadline, out
        time.sleep(0.1)


def _layered_without_tags(tmp_path: Path) -> Path:
    """layered.tar rewritten without RepoTags: it loads as a dangling image."""
    out = tmp_path / "layered-untagged.tar"
    with tarfile.open(LAYERED_TAR) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            if member.name == "repositories":
                continue
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "manifest.json" and data is not None:
                manifest = json.load(data)
                for entry in manifest:
                    entry["RepoTags"] = None
                raw = json.dumps(manifest).encode()
                member.size = len(raw)
                dst.addfile(member, io.BytesIO(raw))
            else:
                dst.addfile(member, data)
    return out


# --- top ----------------------------------------------------------------------------------


def test_top_with_ps_args(engine: PyDockerd, names: list[str]) -> None:
    name = _name(names, "top")
    engine.docker_ok("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 600 & exec sleep 700")
    pid = engine.docker_ok("inspect", "-f", "{{.State.Pid}}", name).strip()
    deadline = time.monotonic() + 20
    while len(lines := engine.docker_ok("top", name).splitlines()) < 3:
        assert time.monotonic() < deadline, lines
        time.sleep(0.1)
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    commands = sorted(line.split(None, 7)[7] for line in lines[1:])
    assert commands == ["sleep 600", "sleep 700"], lines  # only the container's processes
    assert any(line.split()[1] == pid for line in lines[1:])  # host pids, as dockerd shows them
    custom = engine.docker_ok("top", name, "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and sorted(r.split()[1] for r in custom[1:]) == [
        "sleep",
        "sleep",
    ]
    bsd = engine.docker_ok("top", name, "aux").splitlines()
    assert bsd[0].split()[:2] == ["USER", "PID"] and bsd[0].split()[-1] == "COMMAND" and len(bsd) == 3
    no_pid = engine.docker("top", name, "-o", "comm")
    assert no_pid.returncode == 1 and "Couldn't find PID field in ps output" in no_pid.stderr
    bad = engine.docker("top", name, "--no-such-option")
    assert bad.returncode == 1 and "ps: error" in bad.stderr
    engine.docker_ok("stop", "-t", "0", name)
    stopped = engine.docker("top", name)
    assert stopped.returncode == 1 and "is not running" in stopped.stderr


# --- stats --------------------------------------------------------------------------------


def test_stats_no_stream_fields(engine: PyDockerd, names: list[str], api: docker.DockerClient) -> None:
    name = _name(names, "stats")
    engine.docker_ok("run", "-d", "--name", name, "-m", "64m", "--pids-limit", "40", "busybox",
                     "sh", "-c", "sleep 600 & sleep 600 & wait")  # fmt: skip
    out = engine.docker_ok(
        "stats", "--no-stream", "--format", "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", name
    )
    shown, mem, pids, cpu = out.strip().split("|")
    assert shown == name and mem.endswith(" / 64MiB") and pids == "3" and re.fullmatch(r"\d+\.\d\d%", cpu), (
        out
    )
    s = api.containers.get(name).stats(stream=False)
    assert s["name"] == f"/{name}" and len(s["id"]) == 64
    assert s["memory_stats"]["limit"] == 64 << 20 and 0 < s["memory_stats"]["usage"] < 64 << 20
    assert s["memory_stats"]["stats"]["hierarchical_memory_limit"] == 64 << 20
    assert s["pids_stats"] == {"current": 3, "limit": 40}
    cpu_stats, pre = s["cpu_stats"], s["precpu_stats"]
    assert (
        cpu_stats["online_cpus"] == len(os.sched_getaffinity(0)) or cpu_stats["online_cpus"] == os.cpu_count()
    )
    assert (
        cpu_stats["cpu_usage"]["total_usage"] > 0
        and cpu_stats["system_cpu_usage"] > pre["system_cpu_usage"] > 0
    )
    assert s["preread"] < s["read"] and s["preread"] != "0001-01-01T00:00:00Z"  # the CLI needs two samples
    assert set(s["blkio_stats"]) >= {"io_service_bytes_recursive", "io_serviced_recursive"}
    one = api.containers.get(name).stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert one["memory_stats"]["limit"] == 64 << 20
    engine.docker_ok("stop", "-t", "0", name)
    zero = api.containers.get(name).stats(stream=False)
    assert zero["read"] == "0001-01-01T00:00:00Z" and zero["memory_stats"] == {} and zero["pids_stats"] == {}
    assert zero["name"] == f"/{name}" and zero["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert (
        engine.docker_ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", name)
        == f"{name} 0B / 0B 0\n"
    )


def test_stats_streaming(engine: PyDockerd, names: list[str], api: docker.DockerClient) -> None:
    name = _name(names, "stream")
    engine.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "600")
    frames = api.containers.get(name).stats(stream=True, decode=True)
    first, second = next(frames), next(frames)
    assert (
        first["precpu_stats"]["cpu_usage"]["total_usage"] == 0 and first["preread"] == "0001-01-01T00:00:00Z"
    )
    assert second["preread"] == first["read"] and second["precpu_stats"] == first["cpu_stats"]
    assert second["pids_stats"]["current"] == 1 and second["memory_stats"]["usage"] > 0
    # the stream ends when the container goes away
    started = time.monotonic()
    engine.docker_ok("rm", "-f", name)
    rest = list(frames)
    assert time.monotonic() - started < 15 and len(rest) <= 3


# --- update -------------------------------------------------------------------------------


def test_update_limits_reach_the_cgroup(engine: PyDockerd, names: list[str]) -> None:
    name = _name(names, "upd")
    engine.docker_ok("run", "-d", "--name", name, "busybox", "sh", "-c", CGROUP_REPORTER)
    _wait_for_log(engine, name, "ready")
    assert (
        engine.docker_ok(
            "update", "-m", "64m", "--memory-swap", "128m", "--cpus", "1.5", "--pids-limit", "30", name
        )
        == f"{name}\n"
    )
    assert _cgroup_limits(engine, name) == [str(64 << 20), str(128 << 20), "150000", "30"]
    hc = json.loads(engine.docker_ok("inspect", "-f", "{{json .HostConfig}}", name))
    assert (hc["Memory"], hc["MemorySwap"], hc["NanoCpus"], hc["PidsLimit"]) == (
        64 << 20,
        128 << 20,
        1_500_000_000,
        30,
    )
    # raising memory within the swap limit, and lifting the pids limit
    engine.docker_ok("update", "-m", "100m", "--pids-limit", "-1", name)
    assert _cgroup_limits(engine, name) == [str(100 << 20), str(128 << 20), "150000", "max"]
    assert (
        engine.docker_ok("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}", name)
        == f"{100 << 20} 0\n"
    )
    # what dockerd refuses, with its words
    over = engine.docker("update", "-m", "200m", name)
    assert (
        over.returncode == 1
        and "Memory limit should be smaller than already set memoryswap limit" in over.stderr
    )
    cpus = engine.docker("update", "--cpus", "99", name)
    assert cpus.returncode == 1 and "Range of CPUs is from 0.01 to" in cpus.stderr
    quota = engine.docker("update", "--cpu-quota", "50000", name)
    assert (
        quota.returncode == 1
        and "CPU Quota cannot be updated as NanoCPUs has already been set" in quota.stderr
    )
    cpuset = engine.docker("update", "--cpuset-cpus", "0-999", name)
    assert cpuset.returncode == 1 and "Requested CPUs are not available" in cpuset.stderr
    small = engine.docker("update", "-m", "1m", name)
    assert small.returncode == 1 and "Minimum memory limit allowed is 6MB" in small.stderr
    assert _cgroup_limits(engine, name) == [
        str(100 << 20),
        str(128 << 20),
        "150000",
        "max",
    ]  # nothing half-applied


def test_update_of_a_stopped_container_applies_at_start(engine: PyDockerd, names: list[str]) -> None:
    name = _name(names, "updc")
    engine.docker_ok("create", "--name", name, "busybox", "sh", "-c", CGROUP_REPORTER)
    engine.docker_ok(
        "update", "--cpus", "0.5", "--pids-limit", "12", "-m", "32m", "--memory-swap", "-1", name
    )
    engine.docker_ok("start", name)
    _wait_for_log(engine, name, "ready")
    assert _cgroup_limits(engine, name)[2:] == ["50000", "12"]
    assert _cgroup_limits(engine, name)[0] == str(32 << 20)


def test_update_restart_policy(engine: PyDockerd, names: list[str], api: docker.DockerClient) -> None:
    name = _name(names, "rp")
    engine.docker_ok("create", "--name", name, "busybox", "sh", "-c", "exit 3")
    engine.docker_ok("update", "--restart", "on-failure:2", name)
    assert (
        engine.docker_ok("inspect", "-f", "{{json .HostConfig.RestartPolicy}}", name)
        == '{"Name":"on-failure","MaximumRetryCount":2}\n'
    )
    engine.docker_ok("start", name)
    deadline = time.monotonic() + 30
    while engine.docker_ok("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name) != "2 exited\n":
        assert time.monotonic() < deadline, engine.docker_ok(
            "inspect", "-f", "{{.RestartCount}} {{.State.Status}}", name
        )
        time.sleep(0.2)
    assert engine.docker_ok("inspect", "-f", "{{.State.ExitCode}}", name) == "3\n"
    # through docker-py, and what cannot be combined
    container = api.containers.get(name)
    assert container.update(restart_policy={"Name": "always"}) == {"Warnings": None}
    container.reload()
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    bad = engine.docker("update", "--restart", "sometimes", name)
    assert bad.returncode == 1 and "invalid restart policy" in bad.stderr
    auto = _name(names, "rm")
    engine.docker_ok("create", "--rm", "--name", auto, "busybox", "true")
    refused = engine.docker("update", "--restart", "always", auto)
    assert (
        refused.returncode == 1
        and "Restart policy cannot be updated because AutoRemove is enabled" in refused.stderr
    )
    none = engine.docker("update", name)
    assert none.returncode == 1  # the CLI asks for at least one flag


# --- sizes, prune, df ---------------------------------------------------------------------


def test_ps_and_inspect_sizes(engine: PyDockerd, names: list[str], api: docker.DockerClient) -> None:
    name = _name(names, "size")
    engine.docker_ok(
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "head -c 300000 /dev/urandom > /blob; echo ready; sleep 600",
    )
    _wait_for_log(engine, name, "ready")
    image_size = api.images.get("busybox").attrs["Size"]
    assert image_size > 1_000_000
    row = next(c for c in api.api.containers(all=True, size=True) if c["Names"] == [f"/{name}"])
    assert row["SizeRw"] >= 300_000 and row["SizeRootFs"] == row["SizeRw"] + image_size
    assert "SizeRw" not in next(c for c in api.api.containers(all=True) if c["Names"] == [f"/{name}"])
    table = engine.docker_ok("ps", "-s", "--filter", f"name={name}").splitlines()
    assert table[0].split()[-1] == "SIZE" and re.search(
        r"\d+(\.\d+)?kB \(virtual \d+(\.\d+)?MB\)$", table[1]
    ), table
    inspected = engine.docker_ok("inspect", "-s", "-f", "{{.SizeRw}} {{.SizeRootFs}}", name).split()
    assert [int(v) for v in inspected] == [row["SizeRw"], row["SizeRootFs"]]
    fresh = _name(names, "fresh")
    engine.docker_ok("create", "--name", fresh, "busybox", "true")
    created = next(c for c in api.api.containers(all=True, size=True) if c["Names"] == [f"/{fresh}"])
    assert "SizeRw" not in created and created["SizeRootFs"] == image_size  # nothing written yet


def test_image_prune(engine: PyDockerd, names: list[str], api: docker.DockerClient, tmp_path: Path) -> None:
    keeper = _name(names, "keep")
    engine.docker_ok("create", "--name", keeper, "busybox", "true")  # busybox is in use: never pruned
    loaded = engine.docker_ok("load", "-i", str(_layered_without_tags(tmp_path)))
    assert loaded.startswith(f"Loaded image ID: {LAYERED_ID}")
    assert engine.docker_ok("images", "--filter", "dangling=true", "-q") == LAYERED_ID[7:] + "\n"
    busybox_size = api.images.get("busybox").attrs["Size"]
    pruned = engine.docker_ok("image", "prune", "-f")
    assert pruned.startswith("Deleted Images:\ndeleted: " + LAYERED_ID), pruned
    reclaimed = re.search(r"Total reclaimed space: ([\d.]+)([kMG]?B)\n$", pruned)
    assert reclaimed and float(reclaimed.group(1)) > 0, pruned  # its own layers, not busybox's
    assert engine.docker_ok("images", "-aq") == engine.docker_ok("images", "-q", "busybox")
    assert engine.docker_ok("image", "prune", "-f") == "Total reclaimed space: 0B\n"
    # -a: every image without a container, tagged or not
    engine.docker_ok("load", "-i", str(LAYERED_TAR))
    assert engine.docker_ok("image", "prune", "-f") == "Total reclaimed space: 0B\n"  # tagged: kept
    result = api.images.prune(filters={"dangling": False})
    assert {"Untagged": "layered:latest"} in result["ImagesDeleted"] and result["SpaceReclaimed"] > 0
    assert [i.tags for i in api.images.list()] == [["busybox:latest"]]
    assert api.images.get("busybox").attrs["Size"] == busybox_size  # the shared layer stays
    bad = engine.docker("image", "prune", "-f", "--filter", "colour=red")
    assert bad.returncode == 1 and "Invalid filter 'colour'" in bad.stderr
    engine.docker_ok("rm", keeper)
    assert engine.docker_ok("run", "--rm", "busybox", "echo", "still-runs") == "still-runs\n"


def test_system_prune_and_df(engine: PyDockerd, names: list[str], api: docker.DockerClient) -> None:
    engine.docker_ok("load", "-i", str(LAYERED_TAR))
    done = _name(names, "done")
    engine.docker_ok("run", "--name", done, "busybox", "sh", "-c", "head -c 50000 /dev/urandom > /junk")
    live = _name(names, "live")
    engine.docker_ok("run", "-d", "--name", live, "busybox", "sleep", "600")
    df = engine.docker_ok("system", "df").splitlines()
    assert re.match(r"TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$", df[0])
    images_row = df[1].split()
    assert images_row[:3] == ["Images", "2", "1"] and df[2].split()[:3] == ["Containers", "2", "1"], df
    verbose = engine.docker_ok("system", "df", "-v")
    busybox = next(line for line in verbose.splitlines() if line.startswith("busybox "))
    layered = next(line for line in verbose.splitlines() if line.startswith("layered "))
    # columns: repository tag id created(3 words) size shared unique containers
    assert busybox.split()[-1] == "2" and layered.split()[-1] == "0"
    assert (
        busybox.split()[-3] != "0B" and busybox.split()[-3] == layered.split()[-3]
    )  # the busybox layer, shared
    assert re.search(rf"\s{done}$", verbose, re.M) and re.search(rf"\s{live}$", verbose, re.M)
    usage = api.df()
    assert usage["LayersSize"] > 0 and usage["BuildCache"] is None and usage["Volumes"] == []
    sizes = {c["Names"][0]: c for c in usage["Containers"]}
    assert sizes[f"/{done}"]["SizeRw"] >= 50_000
    shared = {i["RepoTags"][0]: i["SharedSize"] for i in usage["Images"]}
    assert shared["busybox:latest"] == shared["layered:latest"] > 0
    pruned = engine.docker_ok("system", "prune", "-f")
    done_id = sizes[f"/{done}"]["Id"]
    assert pruned.startswith(f"Deleted Containers:\n{done_id}\n"), pruned
    assert re.search(r"Total reclaimed space: [\d.]+kB\n$", pruned), pruned  # the exited container's layer
    assert engine.docker_ok("ps", "-aq", "--filter", f"name={done}") == ""
    assert engine.docker_ok("ps", "-q", "--filter", f"name={live}") != ""
    assert "layered" in engine.docker_ok("images")  # system prune only takes dangling images
    engine.docker_ok("rmi", "layered")
