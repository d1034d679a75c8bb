"""Bad input, side by side: the gRPC status code pycontainerd's CRI plugin answers is the one
containerd 1.6's CRI plugin answers, and a refused request leaves nothing behind on either."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.cri.harness import Engine, grpc_code

UNKNOWN_ID = "0" * 64


def _prepare(e: Engine, tmp: Path) -> dict[str, str]:
    """A ready pod, a stopped pod, a running and an exited container."""
    e.crictl("pull", e.image())
    tmp.mkdir()
    ready_pod = e.pod_config(tmp / "ready.json", "ready")
    stopped_pod = e.pod_config(tmp / "stopped.json", "stopped")
    ctr = e.container_config(tmp / "c.json", "c", command=["sleep", "1000"])
    short = e.container_config(tmp / "short.json", "short", command=["true"])
    ids = {
        "ready": e.crictl("runp", str(ready_pod)).stdout.strip(),
        "stopped": e.crictl("runp", str(stopped_pod)).stdout.strip(),
    }
    e.crictl("stopp", ids["stopped"])
    ids["running"] = e.crictl("create", ids["ready"], str(ctr), str(ready_pod)).stdout.strip()
    e.crictl("start", ids["running"])
    ids["exited"] = e.crictl("create", ids["ready"], str(short), str(ready_pod)).stdout.strip()
    e.crictl("start", ids["exited"])
    e.crictl("stop", ids["exited"])
    (tmp / "late.json").write_text((tmp / "c.json").read_text().replace('"name": "c"', '"name": "late"'))
    bad = json.loads((tmp / "c.json").read_text())
    bad["image"]["image"] = e.image("library/nothere:1")
    bad["metadata"]["name"] = "missing"
    (tmp / "missing-image.json").write_text(json.dumps(bad))
    e.pod_config(tmp / "handler.json", "handler")
    (tmp / "no-metadata.json").write_text(json.dumps({"hostname": "x", "linux": {}}))
    return ids


def _cases(
    e: Engine, tmp: Path, ids: dict[str, str]
) -> dict[str, Callable[[], subprocess.CompletedProcess[str]]]:
    c = e.crictl
    return {
        "inspectp unknown pod": lambda: c("inspectp", UNKNOWN_ID, check=False),
        "stopp unknown pod": lambda: c("stopp", UNKNOWN_ID, check=False),
        "rmp unknown pod": lambda: c("rmp", UNKNOWN_ID, check=False),
        "inspect unknown container": lambda: c("inspect", UNKNOWN_ID, check=False),
        "stop unknown container": lambda: c("stop", UNKNOWN_ID, check=False),
        "rm unknown container": lambda: c("rm", UNKNOWN_ID, check=False),
        "start unknown container": lambda: c("start", UNKNOWN_ID, check=False),
        "exec unknown container": lambda: c("exec", "-s", UNKNOWN_ID, "true", check=False),
        "create in unknown pod": lambda: c(
            "create", UNKNOWN_ID, str(tmp / "late.json"), str(tmp / "ready.json"), check=False
        ),
        "create in stopped pod": lambda: c(
            "create", ids["stopped"], str(tmp / "late.json"), str(tmp / "stopped.json"), check=False
        ),
        "create with missing image": lambda: c(
            "create", ids["ready"], str(tmp / "missing-image.json"), str(tmp / "ready.json"), check=False
        ),
        "create duplicate name": lambda: c(
            "create", ids["ready"], str(tmp / "c.json"), str(tmp / "ready.json"), check=False
        ),
        "start running container": lambda: c("start", ids["running"], check=False),
        "exec in exited container": lambda: c("exec", "-s", ids["exited"], "true", check=False),
        "pull missing image": lambda: c("pull", e.image("library/nothere:1"), check=False),
        "runp without metadata": lambda: c("runp", str(tmp / "no-metadata.json"), check=False),
        "runp duplicate pod": lambda: c("runp", str(tmp / "ready.json"), check=False),
        "runp unknown runtime handler": lambda: c(
            "runp", "--runtime", "nosuch", str(tmp / "handler.json"), check=False
        ),
    }


def _outcome(result: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    rc = result.returncode
    return (0 if rc == 0 else 1, grpc_code(result.stderr))


def _message(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in str(result.stderr).splitlines() if "level=fatal" in line]
    return lines[-1].split("msg=", 1)[-1] if lines else ""


def test_error_codes_match_containerd(both: tuple[Engine, Engine], tmp_path: Path) -> None:
    py, ref = both
    ids_py, ids_ref = _prepare(py, tmp_path / "py"), _prepare(ref, tmp_path / "ref")
    cases_py, cases_ref = _cases(py, tmp_path / "py", ids_py), _cases(ref, tmp_path / "ref", ids_ref)
    got, want, said = {}, {}, {}
    for name in cases_ref:
        ref_result, py_result = cases_ref[name](), cases_py[name]()
        want[name], got[name] = _outcome(ref_result), _outcome(py_result)
        said[name] = (
            f"\n      pycontainerd: {_message(py_result)}\n      containerd:   {_message(ref_result)}"
        )
    mismatches = {n: (got[n], want[n]) for n in want if got[n] != want[n]}
    assert not mismatches, "pycontainerd (rc, code) vs containerd:\n" + "\n".join(
        f"  {n}: {g} vs {w}{said[n]}" for n, (g, w) in mismatches.items()
    )

    # nothing half-created: the same pods and containers (by name and state) on both
    def summary(e: Engine) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        pods = sorted((p["metadata"]["name"], p["state"]) for p in e.json("pods")["items"])
        ctrs = sorted((x["metadata"]["name"], x["state"]) for x in e.json("ps", "-a")["containers"])
        return pods, ctrs

    assert summary(py) == summary(ref)
