"""A shim's task on a cgroup v2 (unified) host: Stats answers io.containerd.cgroups.v2.Metrics.

This machine is hybrid (v1 controllers). The test makes a unified host of a private mount
namespace: /sys/fs/cgroup there is the cgroup2 hierarchy alone (the same hierarchy as the host's
/sys/fs/cgroup/unified, which has no controllers). A driver started in that namespace runs a real
shim and pyrunc, which both see a unified layout: pyrunc makes the task's cgroup in cgroup2, the
shim finds it there and reads it. Without controllers the statistics are the core ones (processes
counted from cgroup.procs, cpu usage from cpu.stat) and there is no memory.events, so the OOM
watch has nothing to watch: tests/common/test_cgroups_v2.py checks its notification mechanism.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.shim.conftest import REPO

DRIVER = r"""
import json, os, signal, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, sys.argv[1])
subprocess.run(["umount", "-l", "/sys/fs/cgroup"], check=True)
subprocess.run(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"], check=True)

import protos

protos.load()
from protos.gen.containerd_api.cgroups.stats.v2 import metrics_pb2

from tests.shim.conftest import Lab, _force_stop, pid_alive, wait_for

root = Path(sys.argv[2])
lab = Lab(root=root, runtime_root=root / "runtime-root")
lab.runtime_root.mkdir()


def unified(spec):
    # pyrunc has no cgroup v2 device filter yet: allow every device, as a privileged container would
    spec["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}


task = lab.task(["sh", "-c", "sleep 60 & i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; wait"], edit=unified)
result = {"leftovers": [], "task": task.cgroups_path.lstrip("/")}
cgroup = Path("/sys/fs/cgroup" + task.cgroups_path)
client = task.client()
try:
    client.create(id=task.id, bundle=str(task.bundle))
    client.start(id=task.id)
    procs = lambda: (cgroup / "cgroup.procs").read_text().split()
    wait_for(lambda: len(procs()) == 2, what="the task's two processes")
    time.sleep(0.5)  # let the loop burn some CPU
    stats = client.stats(id=task.id).stats
    metrics = metrics_pb2.Metrics.FromString(stats.value)
    direct = dict(line.split() for line in (cgroup / "cpu.stat").read_text().splitlines())
    result.update(
        type_url=stats.type_url,
        pids=[metrics.pids.current, metrics.pids.limit],
        procs=len(procs()),
        usage_usec=metrics.cpu.usage_usec,
        direct_usage_usec=int(direct["usage_usec"]),
        has_memory=metrics.HasField("memory"),
        memory_files="memory.stat" in os.listdir(cgroup),
    )
    client.kill(id=task.id, signal=signal.SIGKILL, all=True)
    result["exit_status"] = client.wait(id=task.id).exit_status
    client.delete(id=task.id)
    client.shutdown(id=task.id)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit")
finally:
    _force_stop(task)
    if cgroup.exists():
        result["leftovers"].append(f"cgroup {cgroup}")
    if (lab.runtime_root / os.path.basename(task.config.runtime) / task.id).exists():
        result["leftovers"].append("runtime state")
    if task.state_dir.exists():
        result["leftovers"].append(f"shim files {sorted(os.listdir(task.state_dir))}")
    print(json.dumps(result))
"""


def test_stats_of_a_task_on_a_unified_host(tmp_path: Path) -> None:
    python = str(REPO / ".venv" / "bin" / "python")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", python, "-c", DRIVER, str(REPO), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["leftovers"] == []
    assert result["type_url"] == "io.containerd.cgroups.v2.Metrics"
    assert result["pids"] == [2, 0] and result["procs"] == 2  # counted from cgroup.procs
    assert 0 < result["usage_usec"] <= result["direct_usage_usec"]
    assert result["has_memory"] == result["memory_files"]
    assert result["exit_status"] == 128 + 9
    # the namespace's /sys/fs/cgroup was the host's cgroup2 hierarchy: nothing left there either
    with open("/proc/self/mountinfo") as f:
        host_v2 = [line.split()[4] for line in f if line.split(" - ")[1].startswith("cgroup2 ")]
    assert host_v2 and not any(
        os.listdir(p) and os.path.exists(os.path.join(p, result["task"])) for p in host_v2
    )
