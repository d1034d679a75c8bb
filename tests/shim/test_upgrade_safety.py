"""What an upgrade does to a running shim: the state directory it left may be read by a newer
or an older build."""

from __future__ import annotations

import json
import os
import signal

import pytest

from containerd.shim_client import ShimClient, ShimError, cleanup_shim
from tests.shim.conftest import Lab, ShimTask, cgroup_dirs, pid_alive, wait_for


def create(task: ShimTask, client: ShimClient, **request: object) -> int:
    return client.create(id=task.id, bundle=str(task.bundle), **request).pid


def test_state_of_a_newer_release_is_left_alone(lab: Lab) -> None:
    """A shim state directory marked by a newer release: `delete` refuses it, naming the marker,
    and removes nothing; the current layout is written by every shim that starts."""
    task = lab.task(["sleep", "1000"])
    marker = task.state_dir / "layout.json"
    assert json.loads(marker.read_text()) == {"Version": 1}
    client = task.client()
    pid = create(task, client)
    client.start(id=task.id)
    client.close()
    os.kill(task.shim_pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to die")
    marker.write_text('{"Version": 2}')
    before = sorted(p.name for p in task.state_dir.iterdir())
    with pytest.raises(ShimError, match=f"{marker}: layout version 2 is newer than this build reads"):
        cleanup_shim(task.config)
    assert sorted(p.name for p in task.state_dir.iterdir()) == before and pid_alive(pid)
    # The same directory in this build's layout (or the previous release's, unmarked) is cleaned up.
    marker.unlink()
    assert cleanup_shim(task.config).exit_status == 128 + signal.SIGKILL
    wait_for(lambda: not pid_alive(pid), what="the container to be killed")
    assert not task.state_dir.exists() and cgroup_dirs(task.cgroups_path) == []
