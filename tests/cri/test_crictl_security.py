"""Security context and namespace settings of pods and containers, run through crictl against
pycontainerd's CRI plugin and, with the same test body, containerd 1.6's: seccomp profiles
(RuntimeDefault, Unconfined, Localhost), privileged, capabilities added, masked and read-only
paths, host PID/IPC/network namespaces, the pod's shared PID namespace and
restrict_oom_score_adj. Each check reads what the kernel says inside the container."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.cri.harness import Engine

# Capability numbers (linux/capability.h) for the masks /proc/PID/status shows.
CAP = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8,
       "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13, "SYS_CHROOT": 18, "SYS_ADMIN": 21, "MKNOD": 27,
       "AUDIT_WRITE": 29, "SETFCAP": 31}  # fmt: skip
CRI_DEFAULT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                    "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"]  # fmt: skip
NODE, CONTAINER = 2, 1  # runtime.v1 NamespaceMode
RUNTIME_DEFAULT, UNCONFINED, LOCALHOST = 0, 1, 2  # runtime.v1 SecurityProfile.ProfileType


def _mask(names: list[str]) -> int:
    return sum(1 << CAP[n] for n in names)


def _running(e: Engine, tmp: Path, name: str, pod_linux: dict[str, Any] | None = None,
             ctr_linux: dict[str, Any] | None = None, **pod_extra: Any) -> tuple[str, str]:  # fmt: skip
    """A ready pod with one running container (sleep) configured as asked; (pod id, container id)."""
    pod_json = e.pod_config(tmp / f"{name}-pod.json", name, linux=pod_linux or {}, **pod_extra)
    ctr_json = e.container_config(
        tmp / f"{name}-c.json", name, command=["sleep", "1000"], linux=ctr_linux or {}
    )
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    cid = e.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    e.crictl("start", cid)
    return pod, cid


def _status_field(e: Engine, cid: str, field: str) -> str:
    status = e.crictl("exec", "-s", cid, "cat", "/proc/self/status").stdout
    m = re.search(rf"^{field}:\s+(\S+)$", status, re.M)
    assert m, status
    return m.group(1)


def _sh(e: Engine, cid: str, script: str) -> tuple[int, str]:
    """Exit status and merged output of `sh -c SCRIPT` in the container (crictl exits 1 on a non-zero status)."""
    done = e.crictl("exec", "-s", cid, "sh", "-c", f"{{ {script}; }} 2>&1; echo rc=$?", check=False)
    out, _, rc = done.stdout.rpartition("rc=")
    return int(rc.strip()), out


def test_seccomp_profiles(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }))  # fmt: skip
    _, default = _running(
        e,
        tmp_path,
        "rtdefault",
        ctr_linux={"security_context": {"seccomp": {"profile_type": RUNTIME_DEFAULT}}},
    )
    _, unconfined = _running(
        e, tmp_path, "unconfined", ctr_linux={"security_context": {"seccomp": {"profile_type": UNCONFINED}}}
    )
    _, local = _running(
        e,
        tmp_path,
        "local",
        ctr_linux={
            "security_context": {"seccomp": {"profile_type": LOCALHOST, "localhost_ref": str(profile)}}
        },
    )
    _, unset = _running(e, tmp_path, "unset")
    assert _status_field(e, default, "Seccomp") == "2"
    assert _status_field(e, local, "Seccomp") == "2"
    assert _status_field(e, unconfined, "Seccomp") == "0"
    assert _status_field(e, unset, "Seccomp") == "0"  # containerd 1.6: no profile asked, none applied
    # RuntimeDefault refuses what the default profile refuses (unshare of a user namespace needs
    # CAP_SYS_ADMIN there), Unconfined does not
    assert _sh(e, default, "unshare -U true")[0] != 0
    assert _sh(e, unconfined, "unshare -U true")[0] == 0
    # Localhost: the file's rules, errno EPERM for the denied call
    rc, out = _sh(e, local, "mkdir /tmp/d")
    assert rc != 0 and "Operation not permitted" in out, out
    assert _sh(e, default, "mkdir /tmp/d")[0] == 0


def test_seccomp_localhost_missing_profile_is_refused(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    pod_json = e.pod_config(tmp_path / "pod.json", "nolocal")
    ctr_json = e.container_config(tmp_path / "c.json", "nolocal", command=["true"],
                                  linux={"security_context": {"seccomp": {"profile_type": LOCALHOST, "localhost_ref": str(tmp_path / "absent.json")}}})  # fmt: skip
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    created = e.crictl("create", pod, str(ctr_json), str(pod_json), check=False)
    assert created.returncode != 0 and "absent.json" in created.stderr, created.stderr
    assert e.json("ps", "-a")["containers"] == []  # nothing half-created


def test_capabilities_and_privileged(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    _, default = _running(e, tmp_path, "defcaps")
    _, added = _running(
        e,
        tmp_path,
        "added",
        ctr_linux={
            "security_context": {
                "capabilities": {"add_capabilities": ["NET_ADMIN"], "drop_capabilities": ["KILL"]}
            }
        },
    )
    _, priv = _running(e, tmp_path, "priv", pod_linux={"security_context": {"privileged": True}},
                       ctr_linux={"security_context": {"privileged": True}})  # fmt: skip
    assert int(_status_field(e, default, "CapEff"), 16) == _mask(CRI_DEFAULT_CAPS)
    want = _mask([c for c in CRI_DEFAULT_CAPS if c != "KILL"] + ["NET_ADMIN"])
    assert int(_status_field(e, added, "CapEff"), 16) == want
    assert _sh(e, added, "ip link set lo mtu 65000")[0] == 0
    assert _sh(e, default, "ip link set lo mtu 65000")[0] != 0
    # privileged: every capability the engine holds, the cgroup tree writable, the host's devices, no seccomp
    with open("/proc/self/status") as f:
        found = re.search(r"^CapBnd:\s+(\S+)$", f.read(), re.M)
    assert found
    bounding = int(found.group(1), 16)
    assert int(_status_field(e, priv, "CapEff"), 16) == bounding
    assert _status_field(e, priv, "Seccomp") == "0"

    def memory_cgroup_options(cid: str) -> list[str]:
        mounts = e.crictl("exec", "-s", cid, "cat", "/proc/self/mounts").stdout
        found = [
            line.split()[3].split(",")
            for line in mounts.split("\n")
            if line.strip() and line.split()[1] == "/sys/fs/cgroup/memory"
        ]
        assert found, mounts
        return found[0]

    assert "rw" in memory_cgroup_options(priv) and "ro" in memory_cgroup_options(default)
    assert _sh(e, priv, "test -c /dev/null && test -e /dev/kmsg")[0] == 0
    assert _sh(e, default, "test -e /dev/kmsg")[0] != 0
    # a privileged container in a pod that is not privileged is refused, as containerd refuses it
    pod_json = e.pod_config(tmp_path / "plain.json", "plain")
    ctr_json = e.container_config(
        tmp_path / "privc.json", "privc", linux={"security_context": {"privileged": True}}
    )
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    refused = e.crictl("create", pod, str(ctr_json), str(pod_json), check=False)
    assert refused.returncode != 0 and "privileged" in refused.stderr, refused.stderr


def test_masked_and_readonly_paths(engine: Engine, tmp_path: Path) -> None:
    """containerd 1.6 masks and write-protects exactly what the request lists (kubelet always
    sends its defaults; crictl sends none unless the config has them)."""
    e = engine
    e.crictl("pull", e.image())
    _, default = _running(e, tmp_path, "defpaths")
    _, custom = _running(e, tmp_path, "custom", ctr_linux={"security_context": {
        "masked_paths": ["/proc/keys", "/etc/hostname"], "readonly_paths": ["/proc/sys", "/tmp"]}})  # fmt: skip
    assert e.crictl("exec", "-s", default, "cat", "/proc/keys").stdout.strip() != ""
    assert e.crictl("exec", "-s", default, "cat", "/etc/hostname").stdout.strip() == "defpaths-host"
    assert _sh(e, default, "touch /tmp/x")[0] == 0
    assert e.crictl("exec", "-s", custom, "cat", "/proc/keys").stdout.strip() == ""  # /dev/null bound on it
    assert e.crictl("exec", "-s", custom, "cat", "/etc/hostname").stdout.strip() == ""
    rc, out = _sh(e, custom, "touch /tmp/x")
    assert rc != 0 and "Read-only file system" in out, out
    assert _sh(e, custom, "echo 1 > /proc/sys/kernel/ns_last_pid")[0] != 0
    mounts = e.crictl("exec", "-s", custom, "cat", "/proc/self/mounts").stdout
    assert any(
        line.split()[1] == "/tmp" and "ro" in line.split()[3].split(",")
        for line in mounts.split("\n")
        if line.strip()
    ), mounts


def test_host_namespaces(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    host_ns = {"security_context": {"namespace_options": {"network": NODE, "pid": NODE, "ipc": NODE}}}
    # no hostname for a host-network pod (kubelet sets none: runc cannot set one in the host's UTS namespace)
    _, host = _running(e, tmp_path, "hostns", pod_linux=host_ns, ctr_linux=host_ns, hostname="")
    _, pod_ns = _running(e, tmp_path, "podns")

    def ns(cid: str, kind: str) -> str:
        return e.crictl("exec", "-s", cid, "readlink", f"/proc/self/ns/{kind}").stdout.strip()

    node_net = f"net:[{os.stat(e.ns.path).st_ino}]"  # the node is the engine's network namespace
    assert ns(host, "net") == node_net and ns(pod_ns, "net") != node_net
    assert ns(host, "pid") == os.readlink("/proc/self/ns/pid") != ns(pod_ns, "pid")
    assert ns(host, "ipc") == os.readlink("/proc/self/ns/ipc") != ns(pod_ns, "ipc")
    # host network: no pod IP, the node's interfaces (the CNI bridge, once a pod made it)
    pods = {p["metadata"]["name"]: p["id"] for p in e.json("pods")["items"]}
    assert e.json("inspectp", pods["hostns"])["status"]["network"]["ip"] == ""
    assert e.cni["bridge"] in e.crictl("exec", "-s", host, "ip", "-o", "link").stdout
    # the pod's own pid namespace is shared by its containers (pid mode POD) with the pause process
    procs = e.crictl("exec", "-s", pod_ns, "ps", "-o", "pid,args").stdout
    assert re.search(r"^\s*1\s+\S*(catatonit|pause)", procs, re.M), procs


def test_container_pid_namespace_of_its_own(engine: Engine, tmp_path: Path) -> None:
    """pid mode CONTAINER (what kubelet asks without shareProcessNamespace): the command is pid 1."""
    e = engine
    e.crictl("pull", e.image())
    _, cid = _running(
        e, tmp_path, "ownpid", ctr_linux={"security_context": {"namespace_options": {"pid": CONTAINER}}}
    )
    procs = e.crictl("exec", "-s", cid, "ps", "-o", "pid,args").stdout
    assert re.search(r"^\s*1\s+sleep 1000$", procs, re.M), procs


def test_restrict_oom_score_adj(engine: Engine, tmp_path: Path) -> None:
    """Both engines run with restrict_oom_score_adj: a container never gets a score below the
    engine's own (lowering needs CAP_SYS_RESOURCE, which this machine's bounding set lacks), a
    higher one is kept, and the pause container asks -998 and gets the engine's."""
    e = engine
    e.crictl("pull", e.image())
    assert e.proc is not None
    with open(f"/proc/{e.proc.pid}/oom_score_adj") as f:
        own = int(f.read())
    own_pid = {"namespace_options": {"pid": CONTAINER}}  # pid 1 is the container's command
    _, low = _running(
        e, tmp_path, "low", ctr_linux={"resources": {"oom_score_adj": -500}, "security_context": own_pid}
    )
    _, high = _running(
        e, tmp_path, "high", ctr_linux={"resources": {"oom_score_adj": 800}, "security_context": own_pid}
    )
    _, shared = _running(e, tmp_path, "shared")  # pid 1 is the pause process
    assert int(e.crictl("exec", "-s", low, "cat", "/proc/1/oom_score_adj").stdout) == max(-500, own)
    assert int(e.crictl("exec", "-s", high, "cat", "/proc/1/oom_score_adj").stdout) == 800
    assert int(e.crictl("exec", "-s", shared, "cat", "/proc/1/oom_score_adj").stdout) == max(-998, own)


def test_cgroup_parent_and_user_name(engine: Engine, tmp_path: Path) -> None:
    """kubelet's cgroup parent (kubepods/...) holds the pod's cgroups; run_as_username is looked
    up in the image's /etc/passwd."""
    import secrets

    from tests.cri.harness import remove_all_pods, remove_empty_cgroups

    e = engine
    e.crictl("pull", e.image())
    parent = f"/cri-test-{secrets.token_hex(4)}"
    try:
        pod, cid = _running(e, tmp_path, "cg", pod_linux={"cgroup_parent": parent},
                            ctr_linux={"security_context": {"run_as_username": "nobody"}})  # fmt: skip
        assert e.crictl("exec", "-s", cid, "id", "-u").stdout.strip() == "65534"
        cgroups = e.crictl("exec", "-s", cid, "cat", "/proc/self/cgroup").stdout
        memory = next(line for line in cgroups.splitlines() if ":memory:" in line)
        assert memory.split(":", 2)[2] == f"{parent}/{cid}", cgroups
        assert os.path.isdir(f"/sys/fs/cgroup/memory{parent}/{pod}")  # the pause container's, beside it
    finally:
        remove_all_pods(e, check=False)
        remove_empty_cgroups(parent)
    assert not os.path.exists(f"/sys/fs/cgroup/memory{parent}")


def test_sysctls(engine: Engine, tmp_path: Path) -> None:
    """Namespaced sysctls of the pod reach its containers (IPC and network ones); a network sysctl
    in a host-network pod is refused by the runtime (it would change the node), nothing left."""
    e = engine
    e.crictl("pull", e.image())
    sysctls = {"kernel.shm_rmid_forced": "1", "net.ipv4.ping_group_range": "0 2147483647"}
    _, cid = _running(e, tmp_path, "sysctl", pod_linux={"sysctls": sysctls})
    assert e.crictl("exec", "-s", cid, "cat", "/proc/sys/kernel/shm_rmid_forced").stdout.strip() == "1"
    assert e.crictl("exec", "-s", cid, "cat", "/proc/sys/net/ipv4/ping_group_range").stdout.split() == [
        "0",
        "2147483647",
    ]

    def node_range() -> str:  # the node is the engine's network namespace
        return e.ns.exec("cat", "/proc/sys/net/ipv4/ping_group_range").stdout

    node_before = node_range()
    bad = e.pod_config(tmp_path / "bad.json", "hostsysctl", hostname="", linux={
        "sysctls": {"net.ipv4.ping_group_range": "0 1"},
        "security_context": {"namespace_options": {"network": NODE}}})  # fmt: skip
    refused = e.crictl("runp", str(bad), check=False)
    assert refused.returncode != 0 and "sysctl" in refused.stderr, refused.stderr
    assert node_range() == node_before
    assert [p["metadata"]["name"] for p in e.json("pods")["items"]] == ["sysctl"]
