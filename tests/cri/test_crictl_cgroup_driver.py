"""The cgroup driver, as containerd 1.6's runc options expose it (SystemdCgroup), on this machine,
where systemd is not the init. Side by side with containerd: the pod's cgroupsPath follows the
parent kubelet sends (a ".slice" parent, what kubelet's systemd driver sends, gives the systemd
driver's "slice:cri-containerd:id" form, any other a path below it); with SystemdCgroup = true
the runtime is run with --systemd-cgroup and RunPodSandbox is refused with runc's reason, as
containerd refuses it, nothing half-created."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cri.harness import Engine, cri_engine, grpc_code, remove_base, short_base

SLICE_PARENT = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice"


@pytest.fixture(params=["pycontainerd", "pycontainerd+runc", "containerd"])
def systemd_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine whose runc options say SystemdCgroup = true."""
    base = short_base(f"cri-sd{request.param[:2]}-")
    try:
        with cri_engine(request.param, base, systemd_cgroup=True) as e:
            yield e
    finally:
        remove_base(base)


@pytest.fixture(params=["pycontainerd+runc", "containerd"])
def runc_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    base = short_base(f"cri-rc{request.param[:2]}-")
    try:
        with cri_engine(request.param, base) as e:
            yield e
    finally:
        remove_base(base)


def _cgroup_dirs(name: str) -> list[str]:
    """Directories named NAME (or holding it) anywhere in the cgroup hierarchies."""
    found = []
    for controller in os.listdir("/sys/fs/cgroup"):
        for dirpath, dirnames, _ in os.walk(os.path.join("/sys/fs/cgroup", controller)):
            found += [os.path.join(dirpath, d) for d in dirnames if name in d]
    return found


def test_systemd_cgroup_refused_without_systemd(systemd_engine: Engine, tmp_path: Path) -> None:
    e = systemd_engine
    assert not os.path.isdir("/run/systemd/system"), "this test is about a machine without systemd as init"
    uid = secrets.token_hex(4)
    pod = e.pod_config(tmp_path / "pod.json", "sd", linux={"cgroup_parent": SLICE_PARENT.format(uid=uid)})
    refused = e.crictl("runp", str(pod), check=False)
    assert refused.returncode != 0 and grpc_code(refused.stderr) == "Unknown", refused.stderr
    assert "systemd not running on this host, cannot use systemd cgroups manager" in refused.stderr
    # a cgroupfs parent with the systemd driver: the path's form is refused first, as runc does
    plain = e.pod_config(tmp_path / "plain.json", "plain", linux={"cgroup_parent": f"/kubepods/pod{uid}"})
    refused = e.crictl("runp", str(plain), check=False)
    assert grpc_code(refused.stderr) == "Unknown", refused.stderr
    assert (
        'expected cgroupsPath to be of format \\"slice:prefix:name\\" for systemd cgroups' in refused.stderr
    )
    # nothing half-created: no pod, no cgroup (the fixture checks veths, netns, IPAM, mounts)
    assert e.json("pods")["items"] == []
    assert _cgroup_dirs(uid) == []


def test_slice_parent_gives_systemd_form(runc_engine: Engine, tmp_path: Path) -> None:
    """SystemdCgroup = false with kubelet's systemd-style parent: both engines name the cgroup in
    the systemd form, which runc's cgroupfs driver takes as a path below its own cgroup; a plain
    parent gives a path below it."""
    e = runc_engine
    e.crictl("pull", e.image())
    uid = secrets.token_hex(4)
    pod_json = e.pod_config(
        tmp_path / "pod.json", "slice", linux={"cgroup_parent": SLICE_PARENT.format(uid=uid)}
    )
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    ctr = e.container_config(tmp_path / "c.json", "c", command=["sleep", "1000"])
    cid = e.crictl("create", pod, str(ctr), str(pod_json)).stdout.strip()
    spec_path = e.json("inspectp", pod)["info"]["runtimeSpec"]["linux"]["cgroupsPath"]
    assert spec_path == f"kubepods-besteffort-pod{uid}.slice:cri-containerd:{pod}"
    assert e.json("inspect", cid)["info"]["runtimeSpec"]["linux"]["cgroupsPath"] == (
        f"kubepods-besteffort-pod{uid}.slice:cri-containerd:{cid}"
    )
    e.crictl("rmp", "-f", pod)
    assert _cgroup_dirs(uid) == []


def test_slice_parent_refused_by_pyrunc(pyengine: Engine, tmp_path: Path) -> None:
    """pyrunc has no systemd driver and does not take the systemd form as a cgroupfs path (runc
    does, putting the pod below the shim's own cgroup, outside kubelet's slice): it refuses it."""
    e = pyengine
    uid = secrets.token_hex(4)
    pod = e.pod_config(tmp_path / "pod.json", "slice", linux={"cgroup_parent": SLICE_PARENT.format(uid=uid)})
    refused = e.crictl("runp", str(pod), check=False)
    assert (
        grpc_code(refused.stderr) == "Unknown" and "systemd cgroup driver is not supported" in refused.stderr
    )
    assert e.json("pods")["items"] == []
    assert _cgroup_dirs(uid) == []


def _runtime_config(e: Engine) -> object:
    """RuntimeConfig (cri-api v0.28; crictl 1.26 has no command for it): the driver, or the gRPC code."""
    import grpc

    from protos.gen.cri_api.runtime.v1 import api_pb2 as cri
    from protos.gen.cri_api.runtime.v1 import api_pb2_grpc

    with grpc.insecure_channel(f"unix://{e.address}") as channel:
        try:
            resp = api_pb2_grpc.RuntimeServiceStub(channel).RuntimeConfig(
                cri.RuntimeConfigRequest(), timeout=30
            )
        except grpc.RpcError as exc:
            return exc.code()
    return cri.CgroupDriver.Name(resp.linux.cgroup_driver)


def test_runtime_config_tells_the_driver(systemd_engine: Engine, pyengine: Engine) -> None:
    """kubelet 1.28+ asks the runtime for its cgroup driver: SYSTEMD with SystemdCgroup = true,
    CGROUPFS without; containerd 1.6 predates the call."""
    import grpc

    expected = grpc.StatusCode.UNIMPLEMENTED if systemd_engine.name == "containerd" else "SYSTEMD"
    assert _runtime_config(systemd_engine) == expected
    assert _runtime_config(pyengine) == "CGROUPFS"
