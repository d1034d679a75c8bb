"""Mount specifications (Binds, Mounts, VolumesFrom, image VOLUMEs): parsed, validated and merged
as dockerd does it, compared side by side with the reference dockerd's answers to
`POST /containers/create` (its message for every refusal, its `Mounts` for accepted requests)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockerd.engine.errors import EngineError, InvalidParameter, NotFound
from dockerd.volumes import containermounts, mountplan, oci
from dockerd.volumes.mountpoint import MountPoint
from dockerd.volumes.mountspec import parse_bind, parse_mount, parse_volumes_from
from dockerd.volumes.service import VolumeService
from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.volumes.vol_helpers import FAST

CID = "d" * 64


def no_containers(ref: str) -> Sequence[MountPoint]:
    raise InvalidParameter(f"No such container: {ref}")  # dockerd answers this one with 400


# --- pure parsing ------------------------------------------------------------------------------


def test_binds() -> None:
    named = parse_bind("foo:/data:ro,nocopy")
    assert (named.type, named.name, named.destination, named.rw, named.mode, named.copy_data) == (
        "volume", "foo", "/data", False, "ro,nocopy", False,
    )  # fmt: skip
    assert named.spec == {"Type": "volume", "Source": "foo", "Target": "/data", "ReadOnly": True,
                          "VolumeOptions": {"NoCopy": True}}  # fmt: skip
    bind = parse_bind("/host/dir/:/in/:rslave,z")
    assert (bind.type, bind.source, bind.destination, bind.propagation, bind.rw) == (
        "bind", "/host/dir", "/in", "rslave", True,
    )  # fmt: skip
    assert parse_bind("/host:/in").propagation == "rprivate"
    anon = parse_bind("/anon")
    assert anon.type == "volume" and anon.name == "" and anon.anonymous
    driven = parse_bind("foo:/x", volume_driver="myplug")
    assert driven.driver == "myplug" and not driven.anonymous
    assert parse_bind("/h:/x", volume_driver="myplug").driver == ""  # a driver is for volumes only


def test_mounts_api() -> None:
    mp = parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o700}})
    assert mp.type == "tmpfs" and not mp.copy_data
    assert oci.mounts([mp], {}) == [
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "rprivate", "mode=700", "size=1m"]},
    ]  # fmt: skip
    with pytest.raises(InvalidParameter) as exc:
        parse_mount({"Type": "volume", "Target": 5})
    assert "Mount.HostConfig.Mounts.Target" in str(exc.value)


def test_volumes_from() -> None:
    assert parse_volumes_from("c1") == ("c1", "rw")
    assert parse_volumes_from("c1:ro") == ("c1", "ro")
    for bad in ("c1:bogus", "c1:shared", "c1:nocopy"):
        with pytest.raises(InvalidParameter) as exc:
            parse_volumes_from(bad)
        assert str(exc.value) == f"invalid mode: {bad.split(':')[1]}"


def test_merge_order_and_image_volumes() -> None:
    source = [
        MountPoint(
            "volume",
            "/data",
            name="shared",
            driver="local",
            mode="z",
            spec={"Type": "volume", "Source": "shared"},
        ),
        MountPoint("bind", "/over", source="/h", propagation="rprivate", spec={"Type": "bind"}),
    ]
    points = mountplan.plan(
        {"VolumesFrom": ["src:ro"], "Binds": ["/host:/over"], "Tmpfs": {"/tmp": ""}},
        ["/img", "/data", "/tmp", "/img/"],
        lambda ref: source,
        "/var/lib/pydocker",
    )
    by_dest = {p.destination: p for p in points}
    assert set(by_dest) == {"/data", "/over", "/img"}
    assert by_dest["/data"].name == "shared" and not by_dest["/data"].rw and not by_dest["/data"].copy_data
    assert by_dest["/over"].source == "/host"  # the request's bind replaces the one copied
    assert by_dest["/img"].anonymous and by_dest["/img"].mode == "" and by_dest["/img"].copy_data
    with pytest.raises(InvalidParameter) as exc:
        mountplan.plan({}, ["rel"], no_containers, "/r")
    assert str(exc.value) == "invalid mount path: 'rel' mount path must be absolute"


def test_oci_mounts_parents_first() -> None:
    points = [
        MountPoint("volume", "/a/b", name="v2", rw=False),
        MountPoint("bind", "/a", source="/h", propagation="rslave"),
    ]
    assert oci.mounts(points, {"/a/b": "/vols/v2/_data", "/a": "/h"}) == [
        {"destination": "/a", "type": "bind", "source": "/h", "options": ["rbind", "rslave"]},
        {
            "destination": "/a/b",
            "type": "bind",
            "source": "/vols/v2/_data",
            "options": ["rbind", "ro", "rprivate"],
        },
    ]


def test_setup_creates_bind_sources_for_binds_only(tmp_path: Path, service: VolumeService) -> None:
    made = tmp_path / "made" / "deep"
    points = mountplan.plan({"Binds": [f"{made}:/x"]}, [], no_containers, "/nonexistent")
    containermounts.create_volumes(points, service, CID)
    assert containermounts.setup(points, service) == {"/x": str(made)}
    assert made.is_dir() and oct(made.stat().st_mode & 0o777) == "0o755"
    kept = tmp_path / "kept"
    kept.mkdir()
    points = mountplan.plan(
        {"Mounts": [{"Type": "bind", "Source": str(kept), "Target": "/y"}]}, [], no_containers, "/n"
    )
    kept.rmdir()  # gone between create and start
    with pytest.raises(InvalidParameter) as exc:
        containermounts.setup(points, service)
    assert str(exc.value) == f'invalid mount config for type "bind": bind source path does not exist: {kept}'
    assert not kept.exists()


def test_failed_create_leaves_nothing(service: VolumeService) -> None:
    points = mountplan.plan(
        {"Binds": ["first:/a", "/anon"], "Mounts": [{"Type": "volume", "Source": "bad", "Target": "/b",
                                                    "VolumeOptions": {"DriverConfig": {"Options": {"x": "y"}}}}]},
        [], no_containers, "/n",
    )  # fmt: skip
    with pytest.raises(InvalidParameter) as exc:
        containermounts.create_volumes(points, service, CID)
    assert str(exc.value) == 'create bad: invalid option: "x"'
    assert service.list_volumes()[0] == []


def test_rm_v_removes_only_anonymous(service: VolumeService) -> None:
    points = mountplan.plan({"Binds": ["named:/a", "/anon"]}, ["/img"], no_containers, "/n")
    containermounts.create_volumes(points, service, CID)
    assert len(service.list_volumes()[0]) == 3
    other = "e" * 64
    image_volume = next(p.name for p in points if p.destination == "/img")
    service.get(image_volume, ref=other)  # another container uses it too
    assert containermounts.remove(points, service, CID, remove_anonymous=True) == []
    assert sorted(v.name for v in service.list_volumes()[0]) == sorted(["named", image_volume])


# --- side by side with the reference dockerd ----------------------------------------------------


@pytest.fixture(scope="module")
def ref() -> Iterator[RefDockerd]:
    with reference_dockerd({}) as daemon:
        yield daemon


def ref_create(
    ref: RefDockerd, host_config: dict[str, Any], volumes: list[str]
) -> tuple[int, dict[str, Any]]:
    body = {"Image": "busybox", "HostConfig": host_config, "Volumes": {v: {} for v in volumes}}
    transport = httpx.HTTPTransport(uds=str(ref.socket))
    with httpx.Client(transport=transport, base_url="http://docker/v1.41", timeout=60) as client:
        resp = client.post(
            "/containers/create", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        if resp.status_code != 201:
            return resp.status_code, resp.json()
        cid = resp.json()["Id"]
        mounts = client.get(f"/containers/{cid}/json").json()["Mounts"]
        client.delete(f"/containers/{cid}?v=1&force=1")
        return 201, {"Mounts": mounts}


def ours_create(
    root: Path, host_config: dict[str, Any], volumes: list[str], daemon_root: str
) -> tuple[int, dict[str, Any]]:
    svc = VolumeService(str(root), timeouts=FAST)
    try:
        points = mountplan.plan(host_config, volumes, no_containers, daemon_root)
        containermounts.create_volumes(points, svc, CID)
        return 201, {"Mounts": [p.to_inspect() for p in points]}
    except EngineError as exc:
        return exc.status, {"message": str(exc)}
    finally:
        svc.close()


REFUSED: list[dict[str, Any]] = [
    {"Binds": ["foo:bar"]},
    {"Binds": ["/x:rw"]},
    {"Binds": ["foo:/x:bogus"]},
    {"Binds": ["foo:/x:ro,rw"]},
    {"Binds": ["foo:/x:a:b"]},
    {"Binds": ["foo:/"]},
    {"Binds": [":/x"]},
    {"Binds": ["foo/bar:/x"]},
    {"Binds": ["a:/x"]},
    {"Binds": ["foo:/x", "bar:/x/"]},
    {"Binds": ["foo:/x"], "Tmpfs": {"/x": ""}},
    {"Binds": ["/tmp/:/v/:rw,nocopy"]},
    {"Binds": ["/tmp:/z:rw,shared"]},
    {"Binds": ["foo:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/x"}]},
    {"Mounts": [{"Type": "volume", "Target": "/x", "BindOptions": {"Propagation": "shared"}}]},
    {"Mounts": [{"Type": "bind", "Source": "/nonexistent-pydocker-src", "Target": "/x"}]},
    {"Mounts": [{"Type": "bind", "Target": "/x"}]},
    {"Mounts": [{"Type": "bind", "Source": "rel", "Target": "/x"}]},
    {"Mounts": [{"Type": "volume", "Source": "foo", "Target": "rel"}]},
    {"Mounts": [{"Type": "volume", "Source": "foo"}]},
    {"Mounts": [{"Type": "tmpfs", "Source": "foo", "Target": "/x"}]},
    {"Mounts": [{"Type": "volume", "Target": "/x", "ReadOnly": True}]},
    {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "BindOptions": {"Propagation": "bogus"}}]},
    {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {}}]},
    {"Mounts": [{"Type": "bogus", "Target": "/x"}]},
    {"Mounts": [{"Type": "volume", "Target": "/x/../"}]},
    {"Mounts": [{"Type": "volume", "Source": "a/b", "Target": "/x"}]},
    {"Mounts": [{"Type": "volume", "Source": "zz", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nosuch"}}}]},
    {"Mounts": [{"Type": "volume", "Source": "zz", "Target": "/x",
                 "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs"}}}}]},
    {"Mounts": [{"Type": "volume", "Source": "foo", "Target": "/x"}, {"Type": "volume", "Source": "bar", "Target": "/x"}]},
    {"VolumesFrom": ["nosuch"]},
    {"VolumesFrom": ["nosuch:bogus"]},
    {"VolumesFrom": ["nosuch:shared"]},
]  # fmt: skip


def test_refusals_as_the_reference(ref: RefDockerd, tmp_path: Path) -> None:
    """Every refusal has the reference's wording (and its status, but where dockerd says 500 to a
    malformed spec, pydockerd says 400); nothing is left behind on either side."""
    daemon_root = str(ref.workdir / "data")
    for i, host_config in enumerate(REFUSED):
        want_status, want = ref_create(ref, host_config, [])
        got_status, got = ours_create(tmp_path / f"r{i}", host_config, [], daemon_root)
        assert want_status != 201, host_config
        assert got.get("message") == want["message"].replace(daemon_root, daemon_root), host_config
        assert got_status == (400 if want_status == 500 else want_status), (host_config, want)
        ours_left = VolumeService(str(tmp_path / f"r{i}"))
        assert ours_left.list_volumes()[0] == [], host_config
        ours_left.close()


def _comparable(mounts: list[dict[str, Any]], root_ref: str, root_ours: str) -> list[dict[str, Any]]:
    out = []
    for m in sorted(mounts, key=lambda m: m["Destination"]):
        m = dict(m)
        if m["Type"] == "volume":
            if re.fullmatch(r"[0-9a-f]{64}", m["Name"]):
                m["Name"] = "<anonymous>"
            m["Source"] = m["Source"].replace(root_ref, "<root>").replace(root_ours, "<root>")
            m["Source"] = re.sub(r"[0-9a-f]{64}", "<anonymous>", m["Source"])
        out.append(m)
    return out


def test_accepted_mounts_as_the_reference(ref: RefDockerd, tmp_path: Path) -> None:
    host_config = {
        "Binds": ["named1:/a", "named2:/b:ro,nocopy", "/tmp/pydocker-h1:/c:z", "/tmp:/d:ro,rslave", "/anonb",
                  "/etc:/e:Z"],
        "Mounts": [
            {"Type": "volume", "Target": "/f"},
            {"Type": "volume", "Source": "named3", "Target": "/g", "ReadOnly": True,
             "VolumeOptions": {"NoCopy": True, "Labels": {"l": "v"}}},
            {"Type": "tmpfs", "Target": "/h", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}},
            {"Type": "bind", "Source": "/tmp", "Target": "/i", "BindOptions": {"Propagation": "rslave"}},
            {"Type": "bind", "Source": "/etc", "Target": "/j/", "ReadOnly": True},
        ],
        "Tmpfs": {"/k": "size=1m"},
    }  # fmt: skip
    volumes = ["/img", "/f", "/k", "/a"]
    status, want = ref_create(ref, host_config, volumes)
    assert status == 201, want
    ours_root = tmp_path / "data"
    status, got = ours_create(ours_root, host_config, volumes, str(ref.workdir / "data"))
    assert status == 201, got
    root_ref, root_ours = str(ref.workdir / "data" / "volumes"), str(ours_root / "volumes")
    assert _comparable(got["Mounts"], root_ref, root_ours) == _comparable(want["Mounts"], root_ref, root_ours)
    svc = VolumeService(str(ours_root))
    try:
        assert svc.inspect("named3")["Labels"] == {"l": "v"}
    finally:
        svc.close()


def test_volume_create_refusals_as_the_reference(ref: RefDockerd, service: VolumeService) -> None:
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["a"], {}), (["foo/bar"], {}), (["ok1", "-d", "nosuch"], {}), (["ok2", "-o", "foo=bar"], {}),
        (["ok3", "-o", "type=tmpfs"], {}), (["ok4", "-o", "device=tmpfs"], {}), (["ok5", "-o", "o=size=1m"], {}),
        (["ok6", "-o", "size=10m"], {}),
    ]  # fmt: skip
    for args, _ in cases:
        res = ref.docker("volume", "create", *args)
        assert res.returncode == 1
        want = res.stderr.strip().removeprefix("Error response from daemon: ")
        name, rest = args[0], args[1:]
        driver = rest[rest.index("-d") + 1] if "-d" in rest else "local"
        opts = dict(o.split("=", 1) for o in rest[1::2]) if "-o" in rest else {}
        with pytest.raises(EngineError) as exc:
            service.create(name, driver, options=opts)
        assert str(exc.value) == want, args
    left = set(ref.docker_ok("volume", "ls", "-q").split())
    assert not left & {args[0] for args, _ in cases}
    assert service.list_volumes()[0] == []
    for raw, want_list in [("nosuch", ["get nosuch: no such volume"])]:
        res = ref.docker("volume", "rm", raw)
        assert res.stderr.strip().removeprefix("Error response from daemon: ") == want_list[0]
        with pytest.raises(NotFound) as nf:
            service.remove(raw)
        assert str(nf.value) == want_list[0]
