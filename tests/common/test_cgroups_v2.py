"""The cgroup v2 reader (common/cgroups/) on a real cgroup2 hierarchy, checked against the files read
directly here.

The test mounts cgroup2 itself on a temporary directory, so it does not depend on the host's layout
(this one is hybrid: v1 controllers, a cgroup2 mount with none). Without controllers a v2 cgroup has
only the core files (cgroup.procs, cgroup.events, cpu.stat): pids are counted from cgroup.procs, cpu
usage comes from cpu.stat, and there is no memory controller, so memory statistics and memory.events
cannot be exercised here. The notification the shim's OOM watch relies on for memory.events (a
changed kernfs file wakes poll() for POLLPRI, re-armed by reading it) is exercised on cgroup.events,
which the kernel notifies the same way.
"""

from __future__ import annotations

import errno
import os
import secrets
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.cgroups import EventsFile
from common.cgroups import stats as files
from common.cgroups.layout import CgroupLayout, CgroupMount, process_cgroups

BURN_THEN_SLEEP = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 60"


class V2:
    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.dirs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def cgroup(self, *parts: str) -> Path:
        path = self.mount.joinpath(*parts)
        path.mkdir()
        self.dirs.append(path)
        return path

    def start_in(self, cgroup: Path, script: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sh", "-c", script])
        self.procs.append(proc)
        (cgroup / "cgroup.procs").write_text(str(proc.pid))
        return proc


@pytest.fixture
def v2(tmp_path: Path) -> Iterator[V2]:
    mount = tmp_path / "cgroup2"
    mount.mkdir()
    subprocess.run(["mount", "-t", "cgroup2", "none", str(mount)], check=True)
    tool = V2(mount)
    try:
        yield tool
    finally:
        for proc in tool.procs:
            proc.kill()
            proc.wait()
        for d in reversed(tool.dirs):
            for _ in range(100):  # a killed process leaves its cgroup a moment later
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
        subprocess.run(["umount", str(mount)], check=True)


def _flat(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_v2_reader_on_a_real_cgroup(v2: V2) -> None:
    top = v2.cgroup(f"pydocker-common-{os.getpid()}-{secrets.token_hex(3)}")
    sub = v2.cgroup(top.name, "sub")
    busy = v2.start_in(top, BURN_THEN_SLEEP)
    v2.start_in(sub, "exec sleep 60")
    deadline = time.monotonic() + 30
    while _comm(busy.pid) != "sleep":  # the loop ran in the cgroup, then it sleeps: counters settle
        assert time.monotonic() < deadline, "the busy loop did not end"
        time.sleep(0.05)

    # pids: no pids controller, so the processes of the cgroup and its descendants are counted
    assert "pids.current" not in os.listdir(top)
    direct = len((top / "cgroup.procs").read_text().split()) + len((sub / "cgroup.procs").read_text().split())
    assert files.v2_pids(str(top)) == (direct, 0) == (2, 0)
    # cpu: cpu.stat is a core file of every v2 cgroup
    cpu = files.v2_cpu_stat(str(top))
    assert cpu == _flat(top / "cpu.stat")
    assert cpu["usage_usec"] > 1000 and cpu["usage_usec"] >= cpu["user_usec"]
    # memory: only with the memory controller, which this hierarchy may not have
    memory = files.v2_memory(str(top))
    assert (memory is None) == ("memory.stat" not in os.listdir(top))

    # where the shim finds the task's cgroup on a unified host (this hierarchy standing for it)
    layout = CgroupLayout(v1=(), v2=CgroupMount(str(v2.mount), "/", 2, ()), unified=True)
    found = process_cgroups(busy.pid, layout)
    assert (found.version, found.paths) == (2, {"": str(top)})

    # the shim's io.containerd.cgroups.v2.Metrics, decoded by containerd's own message
    from protos.gen.containerd_api.cgroups.stats.v2 import metrics_pb2
    from shim import messages as m
    from shim import stats as shim_stats
    from ttrpc.wire import encode

    type_url, schema, values = shim_stats.metrics(found)
    assert type_url == "io.containerd.cgroups.v2.Metrics"
    metrics = metrics_pb2.Metrics.FromString(encode(schema, values))
    assert schema is m.METRICS_V2
    assert metrics.pids.current == 2 and metrics.pids.limit == 0
    assert metrics.cpu.usage_usec == cpu["usage_usec"] and metrics.cpu.user_usec == cpu["user_usec"]
    assert metrics.HasField("memory") == (memory is not None)

    # pyrunc's `events --stats` from the same reader
    from runtime.linux.cgroups.stats import v2_stats

    runc = v2_stats(str(top))
    assert runc["pids"] == {"current": 2}
    assert runc["cpu"]["usage"]["total"] == cpu["usage_usec"] * 1000


def test_a_changed_events_file_wakes_poll_until_it_is_read(v2: V2) -> None:
    cgroup = v2.cgroup(f"pydocker-events-{os.getpid()}-{secrets.token_hex(3)}")
    events = EventsFile(str(cgroup), "cgroup.events")
    epoll = select.epoll()
    try:
        assert events.read()["populated"] == 0
        epoll.register(events.fd, select.EPOLLPRI)
        assert epoll.poll(0.2) == []

        proc = v2.start_in(cgroup, "exec sleep 60")
        ready = epoll.poll(5)
        assert ready and ready[0][0] == events.fd and ready[0][1] & select.EPOLLPRI
        assert epoll.poll(0.1) != []  # level-triggered: still ready until read
        assert events.read()["populated"] == 1
        assert epoll.poll(0.2) == []  # reading re-armed it

        proc.kill()
        proc.wait()
        assert epoll.poll(5) != []
        assert events.read()["populated"] == 0

        cgroup.rmdir()
        v2.dirs.remove(cgroup)
        assert epoll.poll(5) != []  # a removed cgroup's file polls as ready...
        with pytest.raises(OSError) as gone:
            events.read()  # ...and cannot be read: the watcher stops there
        assert gone.value.errno == errno.ENODEV
    finally:
        epoll.close()
        events.close()
