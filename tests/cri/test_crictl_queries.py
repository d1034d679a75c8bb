"""What a kubelet asks between lifecycle calls, through crictl against pycontainerd's CRI plugin
and, with the same test body, containerd 1.6's: ListPodSandbox and ListContainers filters
(id prefix, state, labels, pod), ContainerStatus fields, UpdateContainerResources, ImageFsInfo,
Version and Status; pod stats (PodSandboxStats) on pycontainerd, where containerd 1.6 with
cgroupfs answers "cgroupPath is empty"."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.cri.harness import Engine


def _wait(pred: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _pod(e: Engine, tmp: Path, name: str, labels: dict[str, str]) -> tuple[str, Path]:
    pod_json = e.pod_config(tmp / f"{name}.json", name, labels=labels)
    return e.crictl("runp", str(pod_json)).stdout.strip(), pod_json


def _ctr(
    e: Engine, tmp: Path, pod: str, pod_json: Path, name: str, labels: dict[str, str], command: list[str]
) -> str:
    ctr_json = e.container_config(tmp / f"{name}-c.json", name, command=command, labels=labels)
    return e.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()


def test_list_filters(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    front, front_json = _pod(e, tmp_path, "front", {"tier": "web", "app": "shop"})
    back, back_json = _pod(e, tmp_path, "back", {"tier": "db", "app": "shop"})
    gone, _ = _pod(e, tmp_path, "gone", {"tier": "web", "app": "old"})
    e.crictl("stopp", gone)
    running = _ctr(e, tmp_path, front, front_json, "nginx", {"role": "server"}, ["sleep", "1000"])
    e.crictl("start", running)
    created = _ctr(e, tmp_path, front, front_json, "sidecar", {"role": "helper"}, ["sleep", "1000"])
    exited = _ctr(e, tmp_path, back, back_json, "migrate", {"role": "job"}, ["true"])
    e.crictl("start", exited)
    _wait(lambda: e.json("inspect", exited)["status"]["state"] == "CONTAINER_EXITED", what="the job's exit")

    def pods(*args: str) -> set[str]:
        return {p["metadata"]["name"] for p in e.json("pods", *args)["items"]}

    def ctrs(*args: str) -> set[str]:
        return {c["metadata"]["name"] for c in e.json("ps", *args)["containers"]}

    assert pods() == {"front", "back", "gone"}
    assert pods("--state", "ready") == {"front", "back"}
    assert pods("--state", "notready") == {"gone"}
    assert pods("--label", "tier=web") == {"front", "gone"}
    assert pods("--label", "tier=web", "--label", "app=shop") == {"front"}
    assert pods("--label", "tier=cache") == set()
    assert pods("--id", front[:12]) == {"front"}
    assert pods("--name", "^ba") == {"back"}  # client-side, over the full list
    assert pods("--namespace", "test") == {"front", "back", "gone"}
    assert ctrs() == {"nginx"}  # crictl ps: running only
    assert ctrs("-a") == {"nginx", "sidecar", "migrate"}
    assert ctrs("--state", "created") == {"sidecar"}
    assert ctrs("--state", "exited") == {"migrate"}
    assert ctrs("-a", "--pod", front) == {"nginx", "sidecar"}
    assert ctrs("-a", "--pod", front[:10]) == {"nginx", "sidecar"}
    assert ctrs("-a", "--label", "role=job") == {"migrate"}
    assert ctrs("-a", "--id", created[:12]) == {"sidecar"}
    assert ctrs("-a", "--label", "role=job", "--pod", front) == set()
    # the list's entries carry the pod, the image and the labels given
    entry = next(c for c in e.json("ps", "-a", "--id", running)["containers"])
    assert entry["podSandboxId"] == front and entry["labels"] == {"role": "server"}
    assert entry["image"]["image"] == e.image() and entry["imageRef"].startswith(
        "sha256:"
    )  # the image id, as containerd
    pod_entry = e.json("pods", "--id", front)["items"][0]
    assert (
        pod_entry["labels"] == {"tier": "web", "app": "shop"} and pod_entry["metadata"]["uid"] == "uid-front"
    )


def test_container_status_fields(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    pod, pod_json = _pod(e, tmp_path, "st", {"a": "b"})
    ctr_json = e.container_config(
        tmp_path / "c.json", "st", command=["sh", "-c", "sleep 1; exit 5"], labels={"l": "1"}, annotations={"an": "x"},
        mounts=[{"container_path": "/data", "host_path": str(tmp_path), "readonly": True}],
        linux={"resources": {"cpu_shares": 512, "memory_limit_in_bytes": 64 << 20}},
    )  # fmt: skip
    cid = e.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    st = e.json("inspect", cid)["status"]
    assert (
        st["state"] == "CONTAINER_CREATED" and st["startedAt"] == st["finishedAt"] == "0001-01-01T00:00:00Z"
    )  # crictl's zero time
    assert st["createdAt"] != "0001-01-01T00:00:00Z" and st["exitCode"] == 0 and st["reason"] == ""
    e.crictl("start", cid)
    _wait(lambda: e.json("inspect", cid)["status"]["state"] == "CONTAINER_EXITED", what="exit")
    st = e.json("inspect", cid)["status"]
    assert (st["exitCode"], st["reason"], st["message"]) == (5, "Error", "")
    assert st["startedAt"] < st["finishedAt"]
    assert st["metadata"] == {"name": "st", "attempt": 0}
    assert st["labels"] == {"l": "1"} and st["annotations"] == {"an": "x"}
    assert st["image"]["image"] == e.image() and "@sha256:" in st["imageRef"]
    assert st["logPath"] == str(e.base / "logs" / "st" / "st.log")
    assert [(m["containerPath"], m["hostPath"], m["readonly"]) for m in st["mounts"]] == [
        ("/data", str(tmp_path), True)
    ]
    res = st["resources"]["linux"]
    assert (res["cpuShares"], res["memoryLimitInBytes"]) == ("512", str(64 << 20))


def test_update_container_resources(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    pod, pod_json = _pod(e, tmp_path, "upd", {})
    cid = _ctr(e, tmp_path, pod, pod_json, "upd", {}, ["sleep", "1000"])
    e.crictl("start", cid)

    def cgroup(path: str) -> str:
        return e.crictl("exec", "-s", cid, "cat", f"/sys/fs/cgroup/{path}").stdout.strip()

    e.crictl(
        "update",
        "--memory",
        str(96 << 20),
        "--cpu-share",
        "256",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        cid,
    )
    assert cgroup("memory/memory.limit_in_bytes") == str(96 << 20)
    assert cgroup("cpu/cpu.shares") == "256"
    assert (cgroup("cpu/cpu.cfs_quota_us"), cgroup("cpu/cpu.cfs_period_us")) == ("20000", "100000")
    res = e.json("inspect", cid)["status"]["resources"]["linux"]
    assert (res["memoryLimitInBytes"], res["cpuShares"], res["cpuQuota"]) == (str(96 << 20), "256", "20000")
    # a stopped container's spec is still updated (containerd 1.6), for its next start
    e.crictl("stop", "--timeout", "0", cid)
    e.crictl("update", "--memory", str(128 << 20), cid)
    assert e.json("inspect", cid)["status"]["resources"]["linux"]["memoryLimitInBytes"] == str(128 << 20)
    missing = e.crictl("update", "--memory", str(128 << 20), "0" * 64, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_image_fs_info_version_and_status(engine: Engine) -> None:
    e = engine
    e.crictl("pull", e.image())
    fs = e.json("imagefsinfo")["status"]
    # each engine's snapshotter directory (containerd 1.6 reports 0 used until its first
    # statistics pass, 10 s after start; the numbers are checked on pycontainerd alone)
    assert (
        fs["fsId"]["mountpoint"].startswith(str(e.base / "root")) and "overlayfs" in fs["fsId"]["mountpoint"]
    )
    assert int(fs["timestamp"]) > 0
    if e.name == "pycontainerd":
        assert int(fs["usedBytes"]["value"]) > 1_000_000 and int(fs["inodesUsed"]["value"]) > 100
    version = dict(line.split(":", 1) for line in e.crictl("version").stdout.splitlines() if ":" in line)
    assert version["Version"].strip() == "0.1.0" and version["RuntimeApiVersion"].strip() == "v1"
    assert (
        version["RuntimeName"].strip() == {"pycontainerd": "pycontainerd", "containerd": "containerd"}[e.name]
    )
    info = e.json("info")
    config = info["config"]
    assert (
        config["sandboxImage"] == "docker.io/pydocker/pause:3.6-catatonit"
        and config["restrictOOMScoreAdj"] is True
    )
    assert config["cni"]["confDir"] == e.cni["conf_dir"] and config["cni"]["binDir"] == "/usr/lib/cni"
    assert config["rootDir"].endswith("io.containerd.grpc.v1.cri") and config["stateDir"].endswith(
        "io.containerd.grpc.v1.cri"
    )
    cni = info["cniconfig"]
    assert (
        cni["PluginConfDir"] == e.cni["conf_dir"]
        and cni["PluginDirs"] == ["/usr/lib/cni"]
        and cni["Prefix"] == "eth"
    )
    names = [n["Config"]["Name"] for n in cni["Networks"]]
    assert names == [
        "cni-loopback",
        json.loads((Path(e.cni["conf_dir"]) / "10-crinet.conflist").read_text())["name"],
    ]
    assert [n["IFName"] for n in cni["Networks"]] == ["lo", "eth0"]
    assert info["lastCNILoadStatus"] == "OK" and info["lastCNILoadStatus.default"] == "OK"


def test_pod_stats(pyengine: Engine, tmp_path: Path) -> None:
    e = pyengine
    e.crictl("pull", e.image())
    pod, pod_json = _pod(e, tmp_path, "stats", {"k": "v"})
    cid = _ctr(
        e,
        tmp_path,
        pod,
        pod_json,
        "busy",
        {},
        ["sh", "-c", "head -c 20000000 /dev/zero > /dev/shm/x; sleep 1000"],
    )
    e.crictl("start", cid)
    _wait(
        lambda: int(e.json("stats", cid)["stats"][0]["memory"]["workingSetBytes"]["value"]) > 0, what="stats"
    )
    stats = e.json("statsp", "--id", pod)["stats"]
    assert len(stats) == 1
    pod_stats = stats[0]
    assert pod_stats["attributes"]["id"] == pod and pod_stats["attributes"]["labels"] == {"k": "v"}
    linux = pod_stats["linux"]
    assert int(linux["cpu"]["usageCoreNanoSeconds"]["value"]) > 0
    assert int(linux["memory"]["workingSetBytes"]["value"]) > 0
    assert [c["attributes"]["id"] for c in linux["containers"]] == [cid]
    assert linux["network"]["defaultInterface"]["name"] == "eth0"
    assert e.json("statsp", "--label", "k=other")["stats"] == []


def test_reopen_container_log(engine: Engine, tmp_path: Path) -> None:
    """kubelet's log rotation: it renames the file, then ReopenContainerLog (crictl has no command
    for it, so the runtime.v1 stub over the same socket) makes the runtime write a new one."""
    import grpc

    from protos.gen.cri_api.runtime.v1 import api_pb2 as cri
    from protos.gen.cri_api.runtime.v1 import api_pb2_grpc

    e = engine
    e.crictl("pull", e.image())
    pod, pod_json = _pod(e, tmp_path, "rot", {})
    cid = _ctr(
        e,
        tmp_path,
        pod,
        pod_json,
        "ticker",
        {},
        ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
    )
    e.crictl("start", cid)
    log = Path(e.json("inspect", cid)["status"]["logPath"])
    _wait(lambda: log.exists() and "tick 3" in log.read_text(), what="the first log")
    log.rename(log.with_suffix(".1"))
    with grpc.insecure_channel(f"unix://{e.address}") as channel:
        rt = api_pb2_grpc.RuntimeServiceStub(channel)
        rt.ReopenContainerLog(cri.ReopenContainerLogRequest(container_id=cid), timeout=30)
        _wait(lambda: log.exists() and "tick" in log.read_text(), what="the reopened log")
        first, second = log.with_suffix(".1").read_text().splitlines(), log.read_text().splitlines()
        assert all(line.split(" ", 3)[1:3] == ["stdout", "F"] for line in first + second)
        last_old = int(first[-1].rsplit(" ", 1)[1])
        first_new = int(second[0].rsplit(" ", 1)[1])
        assert first_new > last_old  # nothing written twice
        e.crictl("stop", "--timeout", "0", cid)
        try:
            rt.ReopenContainerLog(cri.ReopenContainerLogRequest(container_id=cid), timeout=30)
        except grpc.RpcError as exc:
            assert "not running" in (exc.details() or "")
        else:
            raise AssertionError("ReopenContainerLog of a stopped container succeeded")


def test_pod_status_verbose_info(engine: Engine, tmp_path: Path) -> None:
    """crictl inspectp shows the verbose info as the runtime wrote it: the pause process, the
    snapshot, and the CNI result in go-cni's shape (interfaces by name with their addresses)."""
    e = engine
    pod, _ = _pod(e, tmp_path, "verbose", {})
    doc = e.json("inspectp", pod)
    info, ip = doc["info"], doc["status"]["network"]["ip"]
    assert info["pid"] > 0 and info["processStatus"] == "running" and info["netNamespaceClosed"] is False
    assert (info["snapshotKey"], info["snapshotter"], info["runtimeType"]) == (
        pod,
        "overlayfs",
        "io.containerd.runc.v2",
    )
    assert info["image"] == "docker.io/pydocker/pause:3.6-catatonit"
    assert info["config"]["metadata"]["name"] == "verbose"
    cni = info["cniResult"]
    assert [c["IP"] for c in cni["Interfaces"]["eth0"]["IPConfigs"]] == [ip]
    assert cni["Interfaces"]["eth0"]["IPConfigs"][0]["Gateway"] == ip.rsplit(".", 1)[0] + ".1"
    assert "127.0.0.1" in [c["IP"] for c in cni["Interfaces"]["lo"]["IPConfigs"]]
    assert cni["Interfaces"]["eth0"]["Sandbox"] and cni["Interfaces"][e.cni["bridge"]]["IPConfigs"] is None
    assert {"dst": "0.0.0.0/0"} in cni["Routes"] and len(cni["DNS"]) == 2
    e.crictl("stopp", pod)
    info = e.json("inspectp", pod)["info"]
    assert info["processStatus"] == "deleted" and info["netNamespaceClosed"] is True


def test_network_not_ready_without_cni_config(engine: Engine) -> None:
    """kubelet marks the node NotReady from the NetworkReady condition: it follows the CNI conf dir."""
    e = engine
    conf = Path(e.cni["conf_dir"]) / "10-crinet.conflist"
    saved = conf.read_text()

    def network() -> dict[str, object]:
        conditions = e.json("info")["status"]["conditions"]
        return next(c for c in conditions if c["type"] == "NetworkReady")

    conf.unlink()
    try:
        _wait(lambda: network()["status"] is False, what="NetworkReady false")
        cond = network()
        assert cond["reason"] == "NetworkPluginNotReady" and "cni" in str(cond["message"]).lower(), cond
        runtime = next(c for c in e.json("info")["status"]["conditions"] if c["type"] == "RuntimeReady")
        assert runtime["status"] is True
    finally:
        conf.write_text(saved)
    _wait(lambda: network()["status"] is True, what="NetworkReady true again")


def test_container_stats_filters(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    one, one_json = _pod(e, tmp_path, "s1", {})
    two, two_json = _pod(e, tmp_path, "s2", {})
    a = _ctr(e, tmp_path, one, one_json, "a", {"role": "x"}, ["sleep", "1000"])
    b = _ctr(e, tmp_path, two, two_json, "b", {"role": "y"}, ["sleep", "1000"])
    idle = _ctr(
        e, tmp_path, two, two_json, "idle", {"role": "y"}, ["sleep", "1000"]
    )  # created, never started
    e.crictl("start", a)
    e.crictl("start", b)

    def ids(*args: str) -> set[str]:
        return {s["attributes"]["id"] for s in e.json("stats", *args)["stats"]}

    assert ids() == {a, b, idle}  # containerd 1.6 lists every container, figures only for running ones
    idle_stat = e.json("stats", "--id", idle)["stats"][0]
    assert not idle_stat.get("cpu") and not idle_stat.get("memory"), idle_stat
    assert ids("--pod", two) == {b, idle}
    assert ids("--label", "role=x") == {a}
    assert ids("--id", b[:12]) == {b}
    stat = e.json("stats", "--id", a)["stats"][0]
    assert stat["attributes"]["metadata"]["name"] == "a" and stat["attributes"]["labels"] == {"role": "x"}
    assert (
        int(stat["cpu"]["usageCoreNanoSeconds"]["value"]) > 0
        and int(stat["memory"]["workingSetBytes"]["value"]) > 0
    )
    assert stat["writableLayer"]["fsId"]["mountpoint"]
