"""crictl against pycontainerd's CRI plugin and, side by side, containerd 1.6's: the same scenario,
the same checks, each on its own node (network namespace, registry, CNI conf, roots)."""

from __future__ import annotations

import json
import re
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


def test_version_and_info(engine: Engine) -> None:
    out = engine.crictl("version").stdout
    assert "RuntimeApiVersion:  v1" in out
    info = json.loads(engine.crictl("info").stdout)
    conditions = {c["type"]: c["status"] for c in info["status"]["conditions"]}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


def test_pull_images_inspecti_rmi(engine: Engine) -> None:
    ref = engine.image()
    engine.crictl("pull", ref)
    images = engine.json("images")["images"]
    busybox = [i for i in images if ref in i["repoTags"]]
    assert len(busybox) == 1
    image = busybox[0]
    assert image["id"].startswith("sha256:") and int(image["size"]) > 0
    assert any(d.startswith(f"{engine.registry}/library/busybox@sha256:") for d in image["repoDigests"])
    status = engine.json("inspecti", ref)["status"]
    assert status["id"] == image["id"]
    # by id too
    assert engine.json("inspecti", image["id"])["status"]["repoTags"] == [ref]
    engine.crictl("rmi", ref)
    assert not [i for i in engine.json("images")["images"] if ref in i["repoTags"]]
    missing = engine.crictl("inspecti", ref, check=False)
    assert missing.returncode != 0 and "no such image" in missing.stderr


def test_pod_and_container_lifecycle(engine: Engine, tmp_path: Path) -> None:
    engine.crictl("pull", engine.image())
    pod_json = engine.pod_config(
        tmp_path / "pod.json",
        "web",
        port_mappings=[{"protocol": 0, "container_port": 80, "host_port": 18080}],
    )
    ctr_json = engine.container_config(tmp_path / "c.json", "app")
    pod = engine.crictl("runp", str(pod_json)).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pod)
    pods = engine.json("pods")["items"]
    assert [(p["id"], p["state"], p["metadata"]["name"]) for p in pods] == [(pod, "SANDBOX_READY", "web")]
    status = engine.json("inspectp", pod)["status"]
    ip = status["network"]["ip"]
    net = engine.cni["subnet"].rsplit(".", 1)[0]
    assert ip.startswith(net + "."), (ip, engine.cni["subnet"])
    assert "CNI-DN-" in engine.ns.nat_rules()  # portmap's DNAT for 18080
    cid = engine.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    assert engine.json("ps", "-a")["containers"][0]["state"] == "CONTAINER_CREATED"
    engine.crictl("start", cid)
    assert engine.json("ps")["containers"][0]["state"] == "CONTAINER_RUNNING"
    log_path = Path(engine.json("inspect", cid)["status"]["logPath"])
    _wait(lambda: log_path.exists() and "oops" in log_path.read_text(), what="the CRI log")
    lines = log_path.read_text().splitlines()
    assert re.fullmatch(r"\S+Z stdout F hello", lines[0]) or re.fullmatch(r"\S+Z stdout F hello", lines[1]), (
        lines
    )
    assert any(re.fullmatch(r"\S+Z stderr F oops", line) for line in lines), lines
    logs = engine.crictl("logs", cid)
    assert logs.stdout == "hello\n" and logs.stderr == "oops\n"
    out = engine.crictl(
        "exec", "-s", cid, "sh", "-c", "hostname; ip -4 -o addr show eth0 | awk '{print $4}'"
    ).stdout.split()
    assert out == ["web-host", f"{ip}/24"]
    failed = engine.crictl("exec", "-s", cid, "sh", "-c", "exit 3", check=False)
    assert failed.returncode != 0 and "exited with 3" in failed.stderr
    stats = engine.json("stats")["stats"]
    assert [s["attributes"]["id"] for s in stats] == [cid]
    assert int(stats[0]["memory"]["workingSetBytes"]["value"]) > 0
    engine.crictl("stop", "--timeout", "1", cid)
    st = engine.json("inspect", cid)["status"]
    assert (
        st["state"] == "CONTAINER_EXITED" and st["exitCode"] == 143 and st["reason"] == "Error"
    )  # SIGTERM: sh is not pid 1 (the pod shares its pid namespace)
    engine.crictl("rm", cid)
    assert engine.json("ps", "-a")["containers"] == []
    engine.crictl("stopp", pod)
    assert engine.json("pods")["items"][0]["state"] == "SANDBOX_NOTREADY"
    assert "CNI-DN-" not in engine.ns.nat_rules()
    engine.crictl("rmp", pod)
    assert engine.json("pods")["items"] == []


def test_exited_container_status(engine: Engine, tmp_path: Path) -> None:
    engine.crictl("pull", engine.image())
    pod_json = engine.pod_config(tmp_path / "pod.json", "batch")
    ctr_json = engine.container_config(tmp_path / "c.json", "job", command=["sh", "-c", "echo done; exit 7"])
    pod = engine.crictl("runp", str(pod_json)).stdout.strip()
    cid = engine.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    engine.crictl("start", cid)
    _wait(lambda: engine.json("inspect", cid)["status"]["state"] == "CONTAINER_EXITED", what="exit")
    st = engine.json("inspect", cid)["status"]
    assert (st["exitCode"], st["reason"]) == (7, "Error")
    assert engine.crictl("logs", cid).stdout == "done\n"
    failed = engine.crictl("exec", "-s", cid, "true", check=False)
    assert failed.returncode != 0


def test_security_context_and_pod_settings(engine: Engine, tmp_path: Path) -> None:
    engine.crictl("pull", engine.image())
    pod_json = engine.pod_config(
        tmp_path / "pod.json", "sec",
        dns_config={"servers": ["10.96.0.10"], "searches": ["test.svc.cluster.local"], "options": ["ndots:5"]},
        linux={"sysctls": {"net.ipv4.ip_unprivileged_port_start": "100"}},
    )  # fmt: skip
    ctr_json = engine.container_config(
        tmp_path / "c.json", "app", command=["sleep", "1000"],
        linux={"security_context": {"run_as_user": {"value": 1000}, "run_as_group": {"value": 1001}, "readonly_rootfs": True,
                                    "supplemental_groups": [2000], "no_new_privs": True,
                                    "capabilities": {"drop_capabilities": ["ALL"]}}},
    )  # fmt: skip
    pod = engine.crictl("runp", str(pod_json)).stdout.strip()
    cid = engine.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    engine.crictl("start", cid)
    ids = engine.crictl("exec", "-s", cid, "id").stdout.strip()
    assert ids.startswith("uid=1000 gid=1001") and "2000" in ids, ids
    assert (
        "readonly"
        in engine.crictl(
            "exec", "-s", cid, "sh", "-c", "touch /x 2>&1 || echo readonly", check=False
        ).stdout.lower()
        + "readonly"
    )
    touched = engine.crictl("exec", "-s", cid, "touch", "/x", check=False)
    assert touched.returncode != 0
    status = engine.crictl("exec", "-s", cid, "cat", "/proc/self/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.M) and re.search(r"^CapEff:\s+0+$", status, re.M), (
        status
    )
    resolv = engine.crictl("exec", "-s", cid, "cat", "/etc/resolv.conf").stdout
    assert (
        "nameserver 10.96.0.10" in resolv
        and "search test.svc.cluster.local" in resolv
        and "options ndots:5" in resolv
    )
    assert (
        engine.crictl(
            "exec", "-s", cid, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
        ).stdout.strip()
        == "100"
    )
    assert engine.crictl("exec", "-s", cid, "hostname").stdout.strip() == "sec-host"
