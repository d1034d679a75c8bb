"""Pods and containers survive kill -9 of pycontainerd and are adopted by the next one: still
Ready and running with the same pid, their logs keep flowing, exits that happened while the
daemon was down are reported, and stop/remove still tear everything down (network included)."""

from __future__ import annotations

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


def _pid(e: Engine, cid: str) -> int:
    """The container's pid from `crictl inspect` (crictl shows the verbose info's JSON as it is)."""
    info = e.json("inspect", cid)["info"]
    return int(info["pid"])


def test_pods_survive_kill9(pyengine: Engine, tmp_path: Path) -> None:
    e = pyengine
    e.crictl("pull", e.image())
    pod_json = e.pod_config(
        tmp_path / "pod.json",
        "survivor",
        port_mappings=[{"protocol": 0, "container_port": 80, "host_port": 18081}],
    )
    ticker = e.container_config(
        tmp_path / "t.json",
        "ticker",
        command=["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
    )
    quitter = e.container_config(
        tmp_path / "q.json", "quitter", command=["sh", "-c", "sleep 2; echo bye; exit 5"]
    )
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    tid = e.crictl("create", pod, str(ticker), str(pod_json)).stdout.strip()
    qid = e.crictl("create", pod, str(quitter), str(pod_json)).stdout.strip()
    e.crictl("start", tid)
    e.crictl("start", qid)
    pid_before = _pid(e, tid)
    ip_before = e.json("inspectp", pod)["status"]["network"]["ip"]
    e.kill9()
    time.sleep(3)  # the quitter exits while no daemon runs; the ticker keeps writing to its FIFO
    e.start()
    pods = e.json("pods")["items"]
    assert [(p["id"], p["state"]) for p in pods] == [(pod, "SANDBOX_READY")]
    assert e.json("inspectp", pod)["status"]["network"]["ip"] == ip_before
    inspect = e.json("inspect", tid)
    assert inspect["status"]["state"] == "CONTAINER_RUNNING"
    assert _pid(e, tid) == pid_before > 0
    _wait(
        lambda: e.json("inspect", qid)["status"]["state"] == "CONTAINER_EXITED",
        what="the exit that happened while down",
    )
    q = e.json("inspect", qid)["status"]
    assert (q["exitCode"], q["reason"]) == (5, "Error")
    assert e.crictl("logs", qid).stdout == "bye\n"
    assert e.crictl("exec", "-s", tid, "echo", "adopted").stdout.strip() == "adopted"
    # output written while the daemon was down, and after, reaches the log in order
    lines = [int(line.split()[1]) for line in e.crictl("logs", tid).stdout.splitlines()]
    _wait(
        lambda: len(e.crictl("logs", tid).stdout.splitlines()) > len(lines) + 3,
        what="new log lines after restart",
    )
    lines = [int(line.split()[1]) for line in e.crictl("logs", tid).stdout.splitlines()]
    assert lines == list(range(len(lines))), "log lines lost or duplicated across the restart"
    e.crictl("stop", tid)
    e.crictl("stopp", pod)
    assert "CNI-DN-" not in e.ns.nat_rules()
    e.crictl("rmp", pod)
    assert e.json("pods")["items"] == [] and e.json("ps", "-a")["containers"] == []


def test_log_lines_exactly_once_across_kill9(pyengine: Engine, tmp_path: Path) -> None:
    """A container writes numbered lines as fast as its shell can while pycontainerd is killed
    (-9) and restarted, three times: its CRI log holds every line exactly once, in order. Who
    writes the log must not be the process that dies: a chunk read from the output but not yet
    written would be lost, one written but not yet consumed written twice."""
    e = pyengine
    e.crictl("pull", e.image())
    pod_json = e.pod_config(tmp_path / "pod.json", "chatty")
    writer = e.container_config(
        tmp_path / "w.json",
        "writer",
        command=[
            "sh",
            "-c",
            "i=0; until [ -e /tmp/stop ]; do for _ in 1 2 3 4 5 6 7 8 9 0; do echo line $i;"
            " i=$((i+1)); done; usleep 2000; done; echo done",
        ],
    )
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    cid = e.crictl("create", pod, str(writer), str(pod_json)).stdout.strip()
    log_path = Path(e.json("inspect", cid)["status"]["logPath"])
    e.crictl("start", cid)
    for _ in range(3):
        _wait(lambda: log_path.exists() and log_path.stat().st_size > 0, what="output in the log")
        time.sleep(0.3)
        e.kill9()
        time.sleep(0.5)  # the writer goes on while no daemon runs
        e.start()
    e.crictl("exec", "-s", cid, "touch", "/tmp/stop")
    _wait(
        lambda: e.json("inspect", cid)["status"]["state"] == "CONTAINER_EXITED",
        timeout=120,
        what="the writer's end",
    )
    out = e.crictl("logs", cid).stdout.splitlines()
    assert out[-1] == "done", out[-3:]
    numbers = [int(line.split()[1]) for line in out[:-1]]
    assert len(numbers) > 1000, "the writer was too slow to prove anything"
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    assert numbers == list(range(len(numbers))), (
        f"{len(numbers)} lines, {len(missing)} missing (first {missing[:5]}), "
        f"{len(numbers) - len(set(numbers))} duplicated"
    )
    e.crictl("rmp", "-f", pod)
