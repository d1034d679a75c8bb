"""The CRI log file, byte for byte the records containerd 1.6's CRI plugin writes: over-long lines
in max_container_log_line_size pieces (P, then F), "\\r\\n" ending a line like "\\n" (a terminal's
output), a last line without newline a piece (P); the same checks against both engines."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from tests.cri.harness import Engine

# Go's RFC3339Nano: trailing zeros of the fraction dropped
RECORD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z (stdout|stderr) ([FP]) (.*)$")


def _wait(pred: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _records(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_bytes().decode().split("\n")[:-1]:
        m = RECORD.match(line)
        assert m, line
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def _run_to_exit(e: Engine, tmp_path: Path, name: str, script: str, tty: bool) -> tuple[str, Path]:
    pod_json = e.pod_config(tmp_path / f"{name}-pod.json", name)
    ctr_json = e.container_config(tmp_path / f"{name}.json", name, command=["sh", "-c", script], tty=tty)
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    cid = e.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    e.crictl("start", cid)
    _wait(lambda: e.json("inspect", cid)["status"]["state"] == "CONTAINER_EXITED", what=f"{name} to exit")
    return cid, Path(e.json("inspect", cid)["status"]["logPath"])


def test_log_records_match_containerd(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    script = (
        "head -c 20000 /dev/zero | tr '\\0' a; echo; printf 'dos\\r\\n'; echo err >&2; "
        "printf 'half\\r'; printf 'line\\n'; printf 'last'"
    )
    cid, log = _run_to_exit(e, tmp_path, "pipes", script, tty=False)
    records = _records(log)  # the two streams' order is the shim's: compared one by one
    assert [r for r in records if r[0] == "stdout"] == [
        ("stdout", "P", "a" * 16384),
        ("stdout", "F", "a" * (20000 - 16384)),
        ("stdout", "F", "dos"),
        ("stdout", "F", "half\rline"),
        ("stdout", "P", "last"),  # the stream ended without a line end
    ]
    assert [r for r in records if r[0] == "stderr"] == [("stderr", "F", "err")]
    logs = e.crictl("logs", cid)
    # (captured as text, "\r" reads as a line end)
    assert logs.stdout == "a" * 20000 + "\ndos\nhalf\nline\nlast" and logs.stderr == "err\n"
    # a terminal turns "\n" into "\r\n": the log holds the lines without it
    cid, log = _run_to_exit(e, tmp_path, "tty", "echo one; echo two >&2; printf three", tty=True)
    assert _records(log) == [("stdout", "F", "one"), ("stdout", "F", "two"), ("stdout", "P", "three")]
