"""The cgroup manager against this machine's real cgroups (v1 hierarchies + a cgroup2 mount).

Every test works under a unique top-level name, puts real child processes into the cgroups it
makes, and checks what the kernel's own files say. Expected paths are computed here from
/proc/self/mountinfo and /proc/self/cgroup directly, not through the code under test.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from common.cgroups.layout import parse_mountinfo, parse_proc_cgroup
from common.cgroups.stats import format_page_size
from runtime.linux.cgroups import (
    CgroupError,
    CgroupManager,
    V1Manager,
    V2Manager,
    load_manager,
    new_manager,
    runc_default_devices,
)
from runtime.linux.cgroups.devices import DeviceState, parse_devices_list, target_state, transition
from runtime.linux.cgroups.resources import DeviceRule

# ---- independent view of the machine ------------------------------------------------------------

_NOT_CONTROLLERS = {"rw", "ro", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "favordynmods"}


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: str
    fstype: str
    controllers: tuple[str, ...]


def hierarchies() -> list[Hierarchy]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, opts = right.split()[:3]
            if fstype == "cgroup":
                ctrls = tuple(o for o in opts.split(",") if o not in _NOT_CONTROLLERS)
                out.append(Hierarchy(left.split()[4], fstype, ctrls))
            elif fstype == "cgroup2":
                out.append(Hierarchy(left.split()[4], fstype, ()))
    return out


V1 = [h for h in hierarchies() if h.fstype == "cgroup"]
UNIFIED = next((h.mountpoint for h in hierarchies() if h.fstype == "cgroup2"), None)


def own_cgroup() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def leftovers(name: str) -> list[str]:
    """Every directory anywhere in any cgroup hierarchy whose path mentions name."""
    found = []
    for h in hierarchies():
        for root, dirs, _files in os.walk(h.mountpoint):
            for d in dirs:
                if name in d:
                    found.append(os.path.join(root, d))
    return found


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def proc_state(pid: int, want: str, timeout: float = 3.0) -> str:
    """The process's state letter, polled until it is `want` (a task may be briefly R on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(f"/proc/{pid}/status") as f:
            state = next(line.split()[1] for line in f if line.startswith("State:"))
        if state == want or time.monotonic() >= deadline:
            return state
        time.sleep(0.005)


# ---- children -----------------------------------------------------------------------------------

# Waits until the parent has moved it into the cgroup, then charges memory there (a moved process
# keeps its old charges), tries the devices named in argv and reports back.
CHILD = r"""
import errno, os, sys, time
sys.stdin.readline()
ballast = b"x" * (int(os.environ.get("BALLAST_MB", "8")) << 20)
results = []
for dev in sys.argv[1:]:
    try:
        os.close(os.open(dev, os.O_RDONLY))
        results.append("ok")
    except OSError as e:
        results.append(errno.errorcode[e.errno])
print("ready", *results, flush=True)
time.sleep(120)
"""


class Child:
    def __init__(self, *devices: str, ballast_mb: int = 8) -> None:
        env = dict(os.environ, BALLAST_MB=str(ballast_mb))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *devices],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.pid = self.proc.pid

    def go(self) -> list[str]:
        """Let it run inside its cgroup; returns what it reported (device checks)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["ready"], f"child did not start: {line}"
        return line[1:]

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def name() -> str:
    return f"pyrunc-test-cg-{os.getpid()}-{secrets.token_hex(3)}"


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def make(*devices: str, ballast_mb: int = 8) -> Child:
        child = Child(*devices, ballast_mb=ballast_mb)
        children.append(child)
        return child

    yield make
    for child in children:
        child.cleanup()


@pytest.fixture
def managers(name: str) -> Iterator[list[CgroupManager]]:
    """Managers a test made; all destroyed at teardown, and nothing named after the test may remain."""
    made: list[CgroupManager] = []
    yield made
    for m in made:
        m.destroy()
    left = leftovers(name)
    for d in sorted(left, key=lambda p: p.count("/"), reverse=True):
        os.rmdir(d)
    assert left == [], f"cgroup directories leaked: {left}"


@pytest.fixture
def cg(name: str, managers: list[CgroupManager]) -> Callable[..., CgroupManager]:
    def make(path: str | None = None, container_id: str = "ctr") -> CgroupManager:
        m = new_manager(f"/{name}/ctr" if path is None else path, container_id)
        managers.append(m)
        return m

    return make


# ---- path resolution ----------------------------------------------------------------------------


def test_absolute_path_is_under_every_hierarchy_root(cg: Callable[..., CgroupManager], name: str) -> None:
    m = cg(f"/{name}/a/b")
    assert isinstance(m, V1Manager)
    expected = {c: f"{h.mountpoint}/{name}/a/b" for h in V1 for c in h.controllers}
    if UNIFIED is not None:
        expected[""] = f"{UNIFIED}/{name}/a/b"
    assert m.paths == expected
    # Every hierarchy the kernel shows us (named ones like name=systemd too) is covered.
    assert set(own_cgroup()) == set(m.paths)


def test_relative_path_is_below_the_callers_cgroup(cg: Callable[..., CgroupManager], name: str) -> None:
    own = own_cgroup()
    m = cg(f"{name}/rel")
    for h in V1:
        for c in h.controllers:
            assert m.paths[c] == os.path.normpath(f"{h.mountpoint}/{own[c]}/{name}/rel")
    if UNIFIED is not None:
        assert m.paths[""] == os.path.normpath(f"{UNIFIED}/{own['']}/{name}/rel")
    m.create()
    for d in m.dirs():
        assert os.path.isdir(d)
    m.destroy()
    for d in m.dirs():
        assert not os.path.exists(d)
    # Our own cgroups are untouched.
    for h in V1:
        assert os.path.isdir(os.path.normpath(f"{h.mountpoint}/{own[h.controllers[0]]}"))


def test_default_path_is_the_container_id_like_runc(cg: Callable[..., CgroupManager], name: str) -> None:
    # runc (observed with 1.1 on this machine) treats a missing cgroupsPath as the relative path
    # "<id>", so memory lands below the caller's memory cgroup.
    relative = new_manager(name, "other").paths
    assert new_manager(None, name).paths == relative
    assert new_manager("", name).paths == relative
    own = own_cgroup()
    assert relative["memory"].endswith(os.path.normpath(f"{own['memory']}/{name}"))


def test_paths_cannot_escape_and_roots_are_refused(cg: Callable[..., CgroupManager], name: str) -> None:
    m = cg(f"/../../{name}/../{name}/x")
    assert m.paths["memory"] == f"{next(h.mountpoint for h in V1 if 'memory' in h.controllers)}/{name}/x"
    for bad in ("/", "/..", ".", "a/.."):
        with pytest.raises(CgroupError, match="hierarchy root or our own cgroup"):
            new_manager(bad, "x")


def test_systemd_style_path_is_refused() -> None:
    with pytest.raises(CgroupError, match="^systemd cgroup driver is not supported$"):
        new_manager("system.slice:pyrunc:abc", "abc")


def test_mount_sources_name_each_hierarchy(cg: Callable[..., CgroupManager], name: str) -> None:
    src = cg().mount_sources()
    assert src["__version__"] == "1"
    expected = {",".join(h.controllers): f"{h.mountpoint}/{name}/ctr" for h in V1}
    if UNIFIED is not None:
        expected["unified"] = f"{UNIFIED}/{name}/ctr"
    assert {k: v for k, v in src.items() if k != "__version__"} == expected


# ---- lifecycle ----------------------------------------------------------------------------------


def test_process_joins_every_hierarchy(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child], name: str
) -> None:
    m = cg()
    m.create()
    child = spawn()
    m.add_process(child.pid)
    child.go()
    lines = read(f"/proc/{child.pid}/cgroup").splitlines()
    assert len(lines) == len(V1) + (1 if UNIFIED else 0)
    for line in lines:
        assert line.split(":", 2)[2] == f"/{name}/ctr", line
    assert m.pids() == [child.pid]


def test_resources_reach_the_kernel(cg: Callable[..., CgroupManager], spawn: Callable[..., Child]) -> None:
    m = cg()
    m.create()
    child = spawn()
    m.add_process(child.pid)
    child.go()
    disk = next(
        read(f"/sys/block/{b}/dev")
        for b in sorted(os.listdir("/sys/block"))
        if not b.startswith(("loop", "ram"))
    )
    resources: dict[str, Any] = {
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {
            "weight": 300,
            "throttleReadBpsDevice": [
                {"major": int(disk.split(":")[0]), "minor": int(disk.split(":")[1]), "rate": 1 << 20}
            ],
        },
    }
    p = m.paths
    has_weight = any(os.path.exists(f"{p['blkio']}/{f}") for f in ("blkio.weight", "blkio.bfq.weight"))
    if not has_weight:
        with pytest.raises(CgroupError, match="blkio.weight"):
            m.set_resources(resources)
        del resources["blockIO"]["weight"]
    m.set_resources(resources)
    assert read(f"{p['memory']}/memory.limit_in_bytes") == str(64 << 20)
    assert read(f"{p['memory']}/memory.memsw.limit_in_bytes") == str(128 << 20)
    assert read(f"{p['memory']}/memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(f"{p['memory']}/memory.swappiness") == "10"
    assert read(f"{p['cpu']}/cpu.shares") == "512"
    assert read(f"{p['cpu']}/cpu.cfs_quota_us") == "50000"
    assert read(f"{p['cpu']}/cpu.cfs_period_us") == "100000"
    assert read(f"{p['cpuset']}/cpuset.cpus") == "0"
    assert read(f"{p['cpuset']}/cpuset.mems") == "0"
    assert read(f"/proc/{child.pid}/status").split("Cpus_allowed_list:")[1].split()[0] == "0"
    assert read(f"{p['pids']}/pids.max") == "50"
    assert read(f"{p['blkio']}/blkio.throttle.read_bps_device") == f"{disk} {1 << 20}"
    if has_weight:
        weight_file = "blkio.weight" if os.path.exists(f"{p['blkio']}/blkio.weight") else "blkio.bfq.weight"
        assert read(f"{p['blkio']}/{weight_file}").split()[-1] == "300"

    # -1 is unlimited, and lifts memory+swap along with memory; a partial update leaves the rest.
    m.set_resources({"memory": {"limit": -1}, "pids": {"limit": -1}})
    unlimited = read(f"{p['memory']}/memory.limit_in_bytes")
    assert int(unlimited) > 1 << 60
    assert read(f"{p['memory']}/memory.memsw.limit_in_bytes") == unlimited
    assert read(f"{p['pids']}/pids.max") == "max"
    assert read(f"{p['cpu']}/cpu.shares") == "512"


def test_memory_and_swap_are_written_in_an_order_the_kernel_accepts(cg: Callable[..., CgroupManager]) -> None:
    m = cg()
    m.create()
    d = m.paths["memory"]
    for limit, swap in ((100 << 20, 200 << 20), (300 << 20, 400 << 20), (50 << 20, 60 << 20)):
        # Raising needs swap first, lowering needs memory first: either wrong order is EINVAL.
        m.set_resources({"memory": {"limit": limit, "swap": swap}})
        assert (read(f"{d}/memory.limit_in_bytes"), read(f"{d}/memory.memsw.limit_in_bytes")) == (
            str(limit),
            str(swap),
        )


def test_cpu_period_and_budget_are_ordered(cg: Callable[..., CgroupManager], name: str) -> None:
    # Directly under the root, which has realtime budget to share (a new parent would have none).
    m = cg(f"/{name}")
    m.create()
    d = m.paths["cpu"]
    m.set_resources({"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 20000}})
    assert (read(f"{d}/cpu.rt_period_us"), read(f"{d}/cpu.rt_runtime_us")) == ("100000", "20000")
    # A period shorter than the current runtime is refused until the runtime has been lowered.
    m.set_resources({"cpu": {"realtimePeriod": 10000, "realtimeRuntime": 1000}})
    assert (read(f"{d}/cpu.rt_period_us"), read(f"{d}/cpu.rt_runtime_us")) == ("10000", "1000")
    m.set_resources({"cpu": {"realtimeRuntime": 0}})  # 0 means "unchanged", as in runc
    assert read(f"{d}/cpu.rt_runtime_us") == "1000"


def test_kernel_refusals_are_clear_errors(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child]
) -> None:
    m = cg()
    m.create()
    child = spawn(ballast_mb=16)
    m.add_process(child.pid)
    child.go()
    with pytest.raises(CgroupError) as info:
        m.set_resources({"cpu": {"cpus": "99"}})
    assert str(info.value) == f"cgroup: setting cpuset.cpus to 99 failed: {os.strerror(errno.ERANGE)}"
    with pytest.raises(CgroupError) as info:
        m.set_resources({"memory": {"limit": 1 << 20}})
    assert str(info.value) == (
        f"cgroup: setting memory.limit_in_bytes to {1 << 20} failed: {os.strerror(errno.EBUSY)}"
    )
    with pytest.raises(CgroupError, match="minimum allowed cpu-shares is 2"):
        m.set_resources({"cpu": {"shares": 1}})
    with pytest.raises(CgroupError, match="swappiness 101"):
        m.set_resources({"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match=r"linux.resources.memory.limit: expected an integer"):
        m.set_resources({"memory": {"limit": "lots"}})
    with pytest.raises(CgroupError, match="unified needs cgroup v2"):
        m.set_resources({"unified": {"memory.high": "1M"}})
    assert "\n" not in str(info.value)


def test_device_rules_deny_and_allow(cg: Callable[..., CgroupManager], spawn: Callable[..., Child]) -> None:
    m = cg()
    m.create()
    d = m.paths["devices"]
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
    ]
    m.set_resources({"devices": rules})
    assert read(f"{d}/devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 r"]
    child = spawn("/dev/null", "/dev/zero", "/dev/full")
    m.add_process(child.pid)
    assert child.go() == ["ok", "ok", "EPERM"]
    # An update only adds and removes what changed.
    m.set_resources(
        {
            "devices": [
                rules[0],
                rules[1],
                {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rw"},
            ]
        }
    )
    assert read(f"{d}/devices.list").splitlines() == ["c 1:3 rwm", "c 1:7 rw"]
    m.set_resources({"devices": [{"allow": True, "access": "rwm"}]})
    assert read(f"{d}/devices.list") == "a *:* rwm"
    # Absent devices: leave them alone.
    m.set_resources({"pids": {"limit": 5}})
    assert read(f"{d}/devices.list") == "a *:* rwm"


def test_runc_default_device_rules(cg: Callable[..., CgroupManager]) -> None:
    m = cg()
    m.create()
    rules = [{"allow": False, "access": "rwm"}, *runc_default_devices()]
    m.set_resources({"devices": rules})
    # What runc 1.1 leaves in devices.list for a default spec.
    assert sorted(read(f"{m.paths['devices']}/devices.list").splitlines()) == sorted(
        [
            "b *:* m",
            "c *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 10:200 rwm",
            "c 136:* rwm",
        ]
    )


def test_freeze_and_thaw(cg: Callable[..., CgroupManager], spawn: Callable[..., Child]) -> None:
    m = cg()
    m.create()
    child = spawn()
    m.add_process(child.pid)
    child.go()
    assert not m.is_frozen()
    assert proc_state(child.pid, "S") == "S"
    m.freeze()
    assert m.is_frozen()
    assert read(f"{m.paths['freezer']}/freezer.state") == "FROZEN"
    assert proc_state(child.pid, "D", timeout=0) == "D"  # frozen tasks sleep uninterruptibly
    m.freeze()  # idempotent
    m.thaw()
    assert not m.is_frozen()
    assert read(f"{m.paths['freezer']}/freezer.state") == "THAWED"
    assert proc_state(child.pid, "S") == "S"


def test_pids_are_recursive_and_kill_all_signals_them(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child]
) -> None:
    m = cg()
    m.create()
    a, b = spawn(), spawn()
    m.add_process(a.pid)
    m.add_process(b.pid)
    # The container made a sub-cgroup of its own (as systemd inside a container would).
    for d in m.dirs():
        os.mkdir(f"{d}/inner")
    primary = m.primary_dir()
    with open(f"{primary}/inner/cgroup.procs", "w") as f:
        f.write(str(b.pid))
    a.go()
    b.go()
    assert m.pids() == sorted([a.pid, b.pid])
    m.kill_all(signal.SIGTERM)
    assert a.wait() == -signal.SIGTERM
    assert b.wait() == -signal.SIGTERM
    assert m.pids() == []
    assert not m.is_frozen()


def test_kill_all_sigkill_on_a_paused_container(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child]
) -> None:
    m = cg()
    m.create()
    child = spawn()
    m.add_process(child.pid)
    child.go()
    m.freeze()
    m.kill_all(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


def test_stats_have_runcs_shape(cg: Callable[..., CgroupManager], spawn: Callable[..., Child]) -> None:
    m = cg()
    m.create()
    m.set_resources({"memory": {"limit": 256 << 20}, "pids": {"limit": 10}})
    child = spawn(ballast_mb=8)
    m.add_process(child.pid)
    child.go()
    s = json.loads(json.dumps(m.stats()))
    assert list(s) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    usage = s["cpu"]["usage"]
    assert set(usage) == {"total", "percpu", "percpu_kernel", "percpu_user", "kernel", "user"}
    assert usage["total"] > 0
    assert len(usage["percpu"]) == len(usage["percpu_user"]) == os.cpu_count()
    assert isinstance(s["cpu"]["throttling"], dict)
    assert s["cpuset"]["cpus"] == list(range(os.cpu_count() or 1))
    assert set(s["cpuset"]) >= {"cpu_exclusive", "mems", "sched_load_balance", "sched_relax_domain_level"}
    mem = s["memory"]
    assert set(mem) - {"cache"} == {"usage", "swap", "kernel", "kernelTCP", "raw"}
    assert mem["usage"]["limit"] == 256 << 20
    assert mem["usage"]["usage"] >= 8 << 20
    assert mem["usage"]["max"] >= mem["usage"]["usage"]
    assert mem["usage"]["failcnt"] == 0
    assert mem["swap"]["usage"] >= mem["usage"]["usage"]
    assert set(mem["kernelTCP"]) >= {"limit", "failcnt"}
    assert mem["raw"]["total_rss"] >= 8 << 20
    assert s["pids"] == {"current": 1, "limit": 10}
    assert s["hugetlb"] == {} and s["intel_rdt"] == {} and s["network_interfaces"] is None
    assert m.oom_kill_count() == 0


def test_oom_kills_are_counted(cg: Callable[..., CgroupManager], spawn: Callable[..., Child]) -> None:
    m = cg()
    m.create()
    m.set_resources({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    child = spawn(ballast_mb=128)
    m.add_process(child.pid)
    assert child.proc.stdin is not None
    child.proc.stdin.write("go\n")
    child.proc.stdin.flush()
    assert child.wait() == -signal.SIGKILL
    assert m.oom_kill_count() == 1
    # The peak shows the container ran into its limit.
    assert m.stats()["memory"]["usage"]["max"] == 32 << 20


def test_destroy_kills_leftovers_and_removes_every_directory(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child], name: str
) -> None:
    m = cg(f"/{name}/a/b")
    m.create()
    assert len(m.created) == 3 * len(m.dirs())  # /name, /name/a, /name/a/b everywhere
    child = spawn()
    m.add_process(child.pid)
    child.go()
    m.destroy()
    assert child.wait() == -signal.SIGKILL
    assert leftovers(name) == []
    assert not m.exists()
    m.destroy()  # idempotent


def test_destroy_keeps_directories_it_did_not_create(cg: Callable[..., CgroupManager], name: str) -> None:
    parents = [f"{h.mountpoint}/{name}" for h in hierarchies()]
    for p in parents:
        os.mkdir(p)
    try:
        m = cg(f"/{name}/shared/ctr")
        m.create()
        m.destroy()
        for p in parents:
            assert os.path.isdir(p)
            assert not os.path.exists(f"{p}/shared")
    finally:
        for p in parents:
            os.rmdir(p)


def test_state_round_trips_through_json(
    cg: Callable[..., CgroupManager], spawn: Callable[..., Child], name: str
) -> None:
    m = cg()
    m.create()
    saved = json.loads(json.dumps(m.to_dict()))
    again = load_manager(saved)
    assert type(again) is type(m)
    assert again.to_dict() == m.to_dict()
    child = spawn()
    again.add_process(child.pid)
    child.go()
    assert m.pids() == [child.pid]
    again.destroy()  # the reloaded manager knows what was created
    assert child.wait() == -signal.SIGKILL
    assert leftovers(name) == []
    with pytest.raises(CgroupError, match="saved cgroup state is invalid"):
        load_manager({"version": 7, "paths": {}})
    with pytest.raises(CgroupError, match="saved cgroup state is invalid"):
        load_manager({})


# ---- cgroup v2 (on this hybrid machine: the cgroup2 mount, with a test directory as root) -------


@pytest.fixture
def v2root(name: str, managers: list[CgroupManager]) -> Iterator[str]:
    """A cgroup2 directory standing in for the hierarchy root (as a cgroup namespace would show it)."""
    if UNIFIED is None:
        pytest.fail("this machine has no cgroup2 mount")
    root = f"{UNIFIED}/{name}"
    os.mkdir(root)
    yield root
    for m in managers:
        m.destroy()
    os.rmdir(root)


def test_v2_lifecycle(v2root: str, managers: list[CgroupManager], spawn: Callable[..., Child]) -> None:
    m = V2Manager(f"{v2root}/ctr", v2root)
    managers.append(m)
    m.create()
    assert m.created == [f"{v2root}/ctr"]
    child = spawn()
    m.add_process(child.pid)
    child.go()
    assert read(f"/proc/{child.pid}/cgroup").splitlines()[-1].endswith(f"{v2root[len(UNIFIED or '') :]}/ctr")
    assert m.pids() == [child.pid]
    m.freeze()
    assert m.is_frozen()
    assert "frozen 1" in read(f"{v2root}/ctr/cgroup.events")
    m.thaw()
    assert not m.is_frozen()
    s = json.loads(json.dumps(m.stats()))
    assert list(s) == [
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    ]
    assert set(s["cpu"]["usage"]) >= {"kernel", "user"}
    assert s["pids"] == {"current": 1}
    assert load_manager(json.loads(json.dumps(m.to_dict()))).to_dict() == m.to_dict()
    assert m.mount_sources() == {"__version__": "2", "": f"{v2root}/ctr"}
    m.kill_all(signal.SIGKILL)  # cgroup.kill
    assert child.wait() == -signal.SIGKILL
    m.destroy()
    assert not os.path.exists(f"{v2root}/ctr")
    assert os.path.isdir(v2root)


def test_v2_resources_and_refusals(
    v2root: str, managers: list[CgroupManager], spawn: Callable[..., Child]
) -> None:
    m = V2Manager(f"{v2root}/ctr", v2root)
    managers.append(m)
    m.create()
    available = read(f"{v2root}/ctr/cgroup.controllers").split()
    # Default allow-all needs no eBPF program; anything else does.
    m.set_resources({"devices": [{"allow": True, "access": "rwm"}]})
    with pytest.raises(CgroupError, match="^device rules on cgroup v2 are not supported yet$"):
        m.set_resources({"devices": [{"allow": False, "access": "rwm"}]})
    if "memory" not in available:
        with pytest.raises(CgroupError, match="setting memory.max to 1048576 failed: No such file"):
            m.set_resources({"memory": {"limit": 1 << 20}})
        with pytest.raises(CgroupError, match="controller 'memory' not available"):
            m.set_resources({"unified": {"memory.high": "1M"}})
    else:
        m.set_resources({"memory": {"limit": 1 << 20}, "unified": {"memory.high": "1048576"}})
        assert read(f"{v2root}/ctr/memory.max") == "1048576"
        assert read(f"{v2root}/ctr/memory.high") == "1048576"
    with pytest.raises(CgroupError, match="must be a file name"):
        m.set_resources({"unified": {"../cgroup.procs": "1"}})
    with pytest.raises(CgroupError, match="swap limit needs a memory limit"):
        m.set_resources({"memory": {"swap": 1 << 20}})
    # Realtime and net_cls have no v2 form; runc ignores them there.
    m.set_resources({"cpu": {"realtimeRuntime": 1000}, "network": {"classID": 1}})


# ---- pure parts ---------------------------------------------------------------------------------


def test_parse_mountinfo_and_proc_cgroup() -> None:
    text = (
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "40 31 0:37 /sub /mnt/with\\040space rw - cgroup cgroup rw,xattr,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
    )
    mounts = parse_mountinfo(text)
    assert [(m.mountpoint, m.root, m.version, m.controllers) for m in mounts] == [
        ("/sys/fs/cgroup/cpu,cpuacct", "/", 1, ("cpu", "cpuacct")),
        ("/mnt/with space", "/sub", 1, ("name=systemd",)),
        ("/sys/fs/cgroup/unified", "/", 2, ()),
    ]
    assert mounts[1].dir_for("/sub/x") == "/mnt/with space/x"
    assert mounts[1].dir_for("/elsewhere") == "/mnt/with space"
    assert parse_proc_cgroup("2:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n") == {
        "cpu": "/a",
        "cpuacct": "/a",
        "name=systemd": "/b",
        "": "/c",
    }


def test_device_model_matches_kernel_semantics() -> None:
    def rule(allow: bool, t: str, major: int | None, minor: int | None, access: str) -> DeviceRule:
        return DeviceRule(allow, t, major, minor, access)

    target = target_state(
        [rule(True, "c", 1, 3, "r"), rule(True, "c", 1, 3, "w"), rule(False, "c", 1, 3, "r")]
    )
    assert not target.default_allow and target.exceptions == {("c", 1, 3): "w"}
    current = parse_devices_list("c 1:3 rwm\nc 136:* rwm\n")
    steps = transition(current, target)
    assert [s.cgroup_string() for s in steps] == ["c 1:3 rm", "c 136:* rwm"]
    assert [s.allow for s in steps] == [False, False]
    assert transition(DeviceState(True), target_state([rule(True, "a", None, None, "rwm")])) == []
    assert [s.cgroup_string() for s in transition(DeviceState(True), target)] == ["a *:* rwm", "c 1:3 w"]


def test_page_size_names() -> None:
    assert [format_page_size(s) for s in (64 << 10, 2 << 20, 1 << 30)] == ["64KB", "2MB", "1GB"]
