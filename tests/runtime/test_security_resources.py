"""What the kernel enforces on a pyrunc container: capabilities, no_new_privs, seccomp, masked
paths, user namespaces, memory (OOM) and pids limits, rlimits, sysctl."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tests.runtime.conftest import Pyrunc


def status_fields(output: str) -> dict[str, str]:
    fields = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_capabilities_nnp_and_seccomp_in_proc_status(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "cat /proc/self/status; mkdir /denied && echo mkdir-worked; true"])
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["capabilities"] = {
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
        "inheritable": [],
        "ambient": [],
    }
    bundle.config["process"]["noNewPrivileges"] = True
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    fields = status_fields(done.stdout.decode())
    expected = (1 << 0) | (1 << 5) | (1 << 10)
    assert int(fields["CapEff"], 16) == expected
    assert int(fields["CapPrm"], 16) == expected
    assert int(fields["CapBnd"], 16) == expected
    assert int(fields["CapInh"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2"
    assert "mkdir-worked" not in done.stdout.decode()
    assert b"Operation not permitted" in done.stderr


def test_non_root_user_and_groups(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "id -u; id -g; id -G; umask"])
    bundle.config["process"]["user"] = {
        "uid": 65534,
        "gid": 65534,
        "additionalGids": [10, 20],
        "umask": 0o077,
    }
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    uid, gid, *groups = done.stdout.decode().split()
    assert (uid, gid) == ("65534", "65534")
    assert set(groups[:-1]) >= {"10", "20"}
    assert groups[-1] == "0077"


def test_masked_and_readonly_paths(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    script = (
        "wc -c < /proc/keys; ls /proc/acpi | wc -l; "
        "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable || echo sys-readonly"
    )
    bundle = pyrunc.bundle(["sh", "-c", script])
    assert os.path.getsize("/proc/keys") == 0 and open("/proc/keys").read(), (
        "the host's /proc/keys has content"
    )
    bundle.config["linux"]["maskedPaths"] = ["/proc/keys", "/proc/acpi", "/proc/does-not-exist"]
    bundle.config["linux"]["readonlyPaths"] = ["/proc/sys"]
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["0", "0", "sys-readonly"]


def test_user_namespace_mapping() -> None:
    # The mapped root (host uid 100000) must be able to walk to the rootfs: use a world-readable directory.
    base = Path(tempfile.mkdtemp(prefix="pyrunc-userns-"))
    base.chmod(0o755)
    try:
        tool = Pyrunc(root=base / "state", workdir=base)
        cid = tool.new_id()
        bundle = tool.bundle(
            ["sh", "-c", "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; stat -c %u /bin/busybox"]
        )
        bundle.config["linux"]["namespaces"].append({"type": "user"})
        bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        for m in bundle.config["mounts"]:
            if m["destination"] == "/sys":
                m["options"] = [o for o in m["options"] if o != "nodev"]
        bundle.write()
        done = tool("run", "--bundle", str(bundle.path), cid)
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode().split()
        assert out[0:3] == ["0", "100000", "65536"]
        assert out[3:6] == ["0", "100000", "65536"]
        assert out[6] == "0"
        assert out[7] == "65534"  # host root is unmapped inside: the overflow uid
        assert not (tool.root / cid).exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_memory_limit_oom_kills(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    # A shell variable that keeps growing: 64 MiB of data against a 16 MiB limit.
    bundle = pyrunc.bundle(["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"])
    bundle.config["linux"]["resources"] = {"memory": {"limit": 16 << 20, "swap": 16 << 20}}
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert b"survived" not in done.stdout
    assert done.returncode == 137, done  # SIGKILL from the OOM killer


def test_memory_oom_is_recorded_in_cgroup(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"])
    bundle.config["linux"]["resources"] = {"memory": {"limit": 16 << 20, "swap": 16 << 20}}
    bundle.write()
    pyrunc.ok("create", "--bundle", str(bundle.path), cid)
    pyrunc.ok("start", cid)
    cg = f"/sys/fs/cgroup/memory/pyrunc-test-{cid}"
    import time

    deadline = time.monotonic() + 30
    while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    oom_control = open(f"{cg}/memory.oom_control").read()
    assert "oom_kill 0" not in oom_control, oom_control
    pyrunc.ok("delete", cid)


def test_pids_limit_stops_fork_bomb(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", "for i in $(seq 1 60); do sleep 30 & done; sleep 30"])
    bundle.config["linux"]["resources"] = {"pids": {"limit": 16}}
    bundle.write()
    pyrunc.ok("run", "-d", "--bundle", str(bundle.path), cid)
    cg = f"/sys/fs/cgroup/pids/pyrunc-test-{cid}"
    import time

    deadline = time.monotonic() + 10
    while "max 0" in open(f"{cg}/pids.events").read() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "max 0" not in open(f"{cg}/pids.events").read(), "no fork was refused"
    pids = json.loads(pyrunc.ok("ps", "--format", "json", cid))
    assert len(pids) <= 16  # busybox sh gives up when fork fails; the limit held either way
    pyrunc.ok("delete", "--force", cid)


def test_rlimits_and_sysctl(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(
        ["sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/ip_unprivileged_port_start"]
    )
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 300}]
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0"}
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["200", "300", "0"]


def test_device_cgroup_denies_unlisted_device(pyrunc: Pyrunc) -> None:
    cid = pyrunc.new_id()
    # mknod of anything is allowed (as in runc); reading a device outside the allow list is not.
    bundle = pyrunc.bundle(
        ["sh", "-c", "head -c 4 /dev/zero | wc -c; mknod /tmp/kmsg c 1 11; head -c 4 /tmp/kmsg | wc -c"]
    )
    bundle.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    out = done.stdout.decode().split()
    assert out[0] == "4"
    assert out[1] == "0", "reading /dev/kmsg should be denied by the device cgroup"
    assert b"Operation not permitted" in done.stderr
