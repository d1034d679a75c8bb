"""The harnesses' process leak check (tests/dockerd_ref.py's sweep_cgroups_and_mounts, which
tests/pydockerd_harness.py's teardown runs): a process that is still there is reported; one
already exiting, whose leader is a zombie while its last thread is torn down, is waited for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.dockerd_ref import CGROUP_ROOT, TRACKING_HIERARCHY, sweep_cgroups_and_mounts
from tests.pydockerd_harness import _alive

# The leader leaves with pthread_exit (it shows "Z" and an empty command line at once, as a
# daemon's does after exit_group), while another thread goes on for a second, then exits.
LINGERING_THREAD = """
import ctypes, os, threading, time
threading.Thread(target=lambda: (time.sleep(1.0), os._exit(0))).start()
ctypes.CDLL(None).pthread_exit(None)
"""


def _spawn_in(cgroup: Path, code: str) -> int:
    """Run CODE in a process of CGROUP that is not our child (as a daemon's leftovers are not:
    a zombie child of ours would stay until we reap it); its pid."""

    def join() -> None:
        (cgroup / "cgroup.procs").write_text("0")

    launcher = (
        "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', sys.argv[1]],"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"
    )
    out = subprocess.run(
        [sys.executable, "-c", launcher, code], preexec_fn=join, capture_output=True, text=True, check=True
    ).stdout
    return int(out)


def _gone(pid: int) -> bool:
    try:
        return _state(pid) == "Z" and len(list(Path(f"/proc/{pid}/task").iterdir())) == 1
    except OSError:
        return True


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_leftover_reported_and_exiting_process_waited_for() -> None:
    parent = f"/pydocker-leakcheck-{uuid.uuid4().hex[:8]}"
    cgroup = CGROUP_ROOT / TRACKING_HIERARCHY / parent.lstrip("/")
    cgroup.mkdir()
    workdir = Path(tempfile.mkdtemp(prefix="pydocker-leakcheck-"))
    sleeper = _spawn_in(cgroup, "import time; time.sleep(60)")
    exiting = _spawn_in(cgroup, LINGERING_THREAD)
    try:
        deadline = time.monotonic() + 10
        while _state(exiting) != "Z":
            assert time.monotonic() < deadline, "the leader did not exit"
            time.sleep(0.02)
        # the harness's stop_pid must not take such a process for gone
        assert _alive(exiting)
        leftovers: list[str] = []
        sweep_cgroups_and_mounts(parent, workdir, leftovers)
        assert len(leftovers) == 1, leftovers
        assert f"{sleeper} (" in leftovers[0] and f"{exiting} (" not in leftovers[0], leftovers
        assert _gone(sleeper) and _gone(exiting)  # the sweep killed the sleeper
        assert not cgroup.exists()
    finally:
        for pid in (sleeper, exiting):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not (_gone(sleeper) and _gone(exiting)) and time.monotonic() < deadline:
            time.sleep(0.05)
        workdir.rmdir()
        if cgroup.exists():
            cgroup.rmdir()


def test_network_leftovers_reported_then_removed() -> None:
    """A pydockerd killed with -9 leaves its default bridge and its iptables chains: the
    teardown reports them (the test fails) and removes them (the host is left as it was)."""
    import pytest

    from tests.dockerd_ref import LeftoversError
    from tests.pydockerd_harness import _network_tag, _own_links, pydockerd_engine

    with pytest.raises(LeftoversError, match="network object left") as failed:
        with pydockerd_engine(images=()) as daemon:
            tag = _network_tag(daemon)
            assert _own_links(tag), "pydockerd made no default bridge"
            os.kill(daemon.pid, signal.SIGKILL)
    assert f"pyd{tag}" in str(failed.value)
    assert _own_links(tag) == []
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert f"PYD{tag.upper()}" not in rules
