"""The README's main job: scripts/stack starts pydockerd (and with it pycontainerd), loads the
default image, and `pydocker run --rm busybox echo hello` prints hello; `stop` ends both
daemons. Run on temporary paths (the script's PYDOCKER_* overrides) so a real install is
never touched."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _pids_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def test_stack_start_run_stop() -> None:
    base = Path(tempfile.mkdtemp(prefix="pydocker-stack-", dir="/tmp"))
    env = dict(
        os.environ,
        PYDOCKER_SOCK=str(base / "pydocker.sock"),
        PYDOCKER_EXEC_ROOT=str(base / "exec"),
        PYDOCKER_DATA_ROOT=str(base / "data"),
        PYDOCKER_LOG=str(base / "pydockerd.log"),
    )
    stack = str(REPO / "scripts" / "stack")
    try:
        started = subprocess.run([stack, "start"], env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        assert "loading the default image" in started.stderr
        run = subprocess.run(
            [str(REPO / ".venv/bin/pydocker"), "-H", f"unix://{base}/pydocker.sock", "run", "--rm", "busybox", "echo", "hello"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert (run.returncode, run.stdout) == (0, "hello\n"), run.stderr
        status = subprocess.run([stack, "status"], env=env, capture_output=True, text=True, timeout=30).stdout
        assert "pydockerd: running" in status and "pycontainerd: running" in status
        again = subprocess.run([stack, "start"], env=env, capture_output=True, text=True, timeout=60)
        assert "already running" in again.stderr and "loading" not in again.stderr
    finally:
        stopped = subprocess.run([stack, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    status = subprocess.run([stack, "status"], env=env, capture_output=True, text=True, timeout=30).stdout
    assert status == "pydockerd: stopped\npycontainerd: stopped\n"
    assert not (base / "pydocker.sock").exists()  # removed at a clean exit, as dockerd does
    assert _pids_mentioning(str(base)) == []
    assert [line for line in open("/proc/self/mountinfo") if str(base) in line] == []
    subprocess.run(["rm", "-rf", str(base)], check=True)
