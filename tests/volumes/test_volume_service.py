"""The volume service and the local driver on a real data root: Docker's JSON, names, options,
filters, references, remove and prune, persistence across restarts and kill -9, real mounts."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common.mount import mount_points
from dockerd.engine.errors import Conflict, InvalidParameter, NotFound
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.errors import DriverError
from dockerd.volumes.filters import Filters
from dockerd.volumes.names import ANONYMOUS_LABEL
from dockerd.volumes.service import VolumeService
from dockerd.volumes.store import StoreVersionError
from tests.volumes.vol_helpers import FAST, PublishedEvents

REPO = Path(__file__).resolve().parents[2]
CID1 = "a" * 64
CID2 = "b" * 64


def names(svc: VolumeService, **filters: list[str]) -> list[str]:
    vols, _ = svc.list_volumes(Filters({k.replace("_not", "!"): frozenset(v) for k, v in filters.items()}))
    return [v.name for v in vols]


def test_create_inspect_json_as_docker(service: VolumeService, root: Path) -> None:
    vol = service.create("foo", "local")
    data = service.inspect("foo")
    assert list(data) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert data["Driver"] == "local" and data["Name"] == "foo" and data["Scope"] == "local"
    assert data["Labels"] is None and data["Options"] is None
    assert data["Mountpoint"] == str(root / "data" / "volumes" / "foo" / "_data") == vol.mountpoint
    assert os.path.isdir(data["Mountpoint"])
    assert oct(os.stat(data["Mountpoint"]).st_mode & 0o777) == "0o755"
    # RFC 3339 to the second, in the daemon's zone ("Z" for UTC), as Go prints it
    assert len(data["CreatedAt"]) in (20, 25) and data["CreatedAt"][10] == "T"
    labelled = service.create("bar", labels={"a": "b", "c": ""}).to_api()
    assert labelled["Labels"] == {"a": "b", "c": ""}


def test_create_is_idempotent_and_keeps_the_first_options(service: VolumeService) -> None:
    first = service.create("same", "local", labels={"x": "1"})
    again = service.create("same", "local", options={"type": "tmpfs", "device": "tmpfs"}, labels={"y": "2"})
    assert again.mountpoint == first.mountpoint
    assert service.inspect("same")["Labels"] == {"x": "1"} and service.inspect("same")["Options"] is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a", "create a: volume name is too short, names should be at least two alphanumeric characters"),
        ("foo/bar", 'create foo/bar: "foo/bar" includes invalid characters for a local volume name, only '
         '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
        ("-ab", 'create -ab: "-ab" includes invalid characters for a local volume name, only '
         '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
        ("..", 'create ..: ".." includes invalid characters for a local volume name, only '
         '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path'),
    ],
)  # fmt: skip
def test_invalid_names(service: VolumeService, root: Path, name: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as exc:
        service.create(name, "local")
    assert str(exc.value) == message
    assert sorted(os.listdir(root / "data" / "volumes")) == ["metadata.db"]  # nothing half-created


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"foo": "bar"}, 'create vv: invalid option: "foo"'),
        ({"type": "tmpfs"}, 'create vv: missing required option: "device"'),
        ({"device": "tmpfs"}, 'create vv: missing required option: "type"'),
        ({"o": "size=1m"}, 'create vv: missing required option: "device"'),
        ({"size": "10m"}, "create vv: quota size requested but no quota support"),
        ({"size": "lots"}, "create vv: invalid size: 'lots'"),
    ],
)
def test_invalid_local_options(
    service: VolumeService, root: Path, opts: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidParameter) as exc:
        service.create("vv", "local", options=opts)
    assert str(exc.value) == message
    assert service.list_volumes()[0] == []
    assert sorted(os.listdir(root / "data" / "volumes")) == ["metadata.db"]


def test_unknown_driver(service: VolumeService) -> None:
    with pytest.raises(NotFound) as exc:
        service.create("bar", "nosuch")
    assert str(exc.value) == 'create bar: error looking up volume plugin nosuch: plugin "nosuch" not found'


def test_anonymous_volumes(service: VolumeService) -> None:
    vol = service.create()
    assert len(vol.name) == 64 and all(c in "0123456789abcdef" for c in vol.name)
    assert vol.labels == {ANONYMOUS_LABEL: ""} and vol.driver == "local"


def test_get_and_remove_missing(service: VolumeService) -> None:
    with pytest.raises(NotFound) as exc:
        service.inspect("nosuch")
    assert str(exc.value) == "get nosuch: no such volume"
    with pytest.raises(NotFound) as exc:
        service.remove("nosuch")
    assert str(exc.value) == "get nosuch: no such volume"
    service.remove("nosuch", force=True)  # docker volume rm -f: no error


def test_in_use_is_a_conflict_naming_the_containers(service: VolumeService, events: PublishedEvents) -> None:
    service.create("used", ref=CID2)
    service.get("used", ref=CID1)
    for force in (False, True):
        with pytest.raises(Conflict) as exc:
            service.remove("used", force=force)
        assert str(exc.value) == f"remove used: volume is in use - [{CID1}, {CID2}]"
    service.release("used", CID1)
    service.release_all(CID2)
    service.remove("used")
    assert names(service) == []
    assert [e[1] for e in events if e[2] == "used"] == ["create", "destroy"]


def test_list_filters(service: VolumeService) -> None:
    service.create("ab.c_d-e")
    service.create("v7", labels={"a": "b", "c": ""})
    service.create("v8", labels={"a": "x"})
    service.create("foo", ref=CID1)
    assert names(service) == ["ab.c_d-e", "foo", "v7", "v8"]
    assert names(service, dangling=["true"]) == ["ab.c_d-e", "v7", "v8"]
    assert names(service, dangling=["0"]) == ["foo"]
    assert names(service, name=["v"]) == ["v7", "v8"]  # a regular expression, unanchored
    assert names(service, name=["^v[7]$"]) == ["v7"]
    assert names(service, label=["a"]) == ["v7", "v8"]
    assert names(service, label=["a=b"]) == ["v7"]
    assert names(service, label=["a", "c"]) == ["v7"]
    assert names(service, driver=["loc"]) == []
    assert names(service, driver=["local"]) == ["ab.c_d-e", "foo", "v7", "v8"]
    with pytest.raises(InvalidParameter) as exc:
        names(service, dangling=["maybe"])
    assert str(exc.value) == "Invalid filter 'dangling=[maybe]'"
    with pytest.raises(InvalidParameter) as exc:
        names(service, bogus=["1"])
    assert str(exc.value) == "Invalid filter 'bogus'"
    # the wire form of GET /volumes?filters=
    assert [v["Name"] for v in service.list_api(Filters.parse('{"label":{"a=b":true}}'))["Volumes"]] == ["v7"]


def test_prune_anonymous_unless_all(service: VolumeService, events: PublishedEvents) -> None:
    anon_free = service.create()
    anon_used = service.create(ref=CID1)
    service.create("named")
    service.create("keep", labels={"keep": "yes"})
    service.create("mounted", options={"type": "tmpfs", "device": "tmpfs"})
    Path(anon_free.mountpoint, "f").write_bytes(b"x" * 1000)
    report = service.prune()
    assert report.to_api() == {"VolumesDeleted": [anon_free.name], "SpaceReclaimed": 1000}
    assert events[-1] == ("volume", "prune", "", {"reclaimed": "1000"})
    report = service.prune(Filters.parse('{"all":["true"],"label!":["keep"]}'))
    # named volumes with all=true; never a used one, one with mount options, or one filtered out
    assert report.deleted == ["named"]
    assert sorted(names(service)) == sorted([anon_used.name, "keep", "mounted"])
    assert service.prune(Filters.parse('{"all":["1"],"label":["keep=yes"]}')).deleted == ["keep"]
    for raw, message in [
        ('{"dangling":["true"]}', "Invalid filter 'dangling'"),
        ('{"all":["maybe"]}', "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax"),
        ('{"all":["1","0"]}', "invalid filter 'all=[0 1]': only one value is expected"),
    ]:
        with pytest.raises(InvalidParameter) as exc:
            service.prune(Filters.parse(raw))
        assert str(exc.value) == message


def test_usage_for_system_df(service: VolumeService) -> None:
    vol = service.create("sized", ref=CID1)
    data = Path(vol.mountpoint)
    (data / "a").write_bytes(b"1" * 300)
    os.link(data / "a", data / "hard")  # counted once
    (data / "d").mkdir()
    (data / "d" / "b").write_bytes(b"2" * 5)
    os.symlink("a", data / "sym")  # a symlink's own size: its target's length
    service.create("withopts", options={"type": "tmpfs", "device": "tmpfs"})
    usage = service.usage()
    assert [u["Name"] for u in usage] == ["sized"]
    assert usage[0]["UsageData"] == {"RefCount": 1, "Size": 306}


def test_references_reconciled_from_the_containers(service: VolumeService) -> None:
    service.create("v1", ref=CID1)
    service.create("v2", ref=CID2)
    service.reconcile_references({CID2: ["v1", "v2"]})  # CID1's record is gone
    assert service.references("v1") == [CID2] and service.references("v2") == [CID2]


def test_tmpfs_volume_mounted_on_first_use_unmounted_after_last(service: VolumeService) -> None:
    vol = service.create("tmp", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0711"})
    assert service.inspect("tmp")["Options"] == {"device": "tmpfs", "o": "size=1m,mode=0711", "type": "tmpfs"}
    assert vol.mountpoint not in mount_points(vol.mountpoint)
    path = service.mount("tmp", "m1")
    assert path == vol.mountpoint
    service.mount("tmp", "m2")
    info = _mountinfo(path)
    assert info["fstype"] == "tmpfs" and "size=1024k" in info["super"] and "mode=711" in info["super"]
    Path(path, "f").write_text("x")
    service.unmount("tmp", "m1")
    assert path in mount_points(path)  # m2 still uses it
    with pytest.raises(DriverError) as exc:
        service.remove("tmp")
    assert str(exc.value) == "remove tmp: volume has active mounts"
    service.unmount("tmp", "m2")
    assert path not in mount_points(path) and not os.path.exists(Path(path, "f"))
    service.remove("tmp")


def test_bind_volume_of_a_host_directory(service: VolumeService, root: Path) -> None:
    host = root / "host"
    host.mkdir()
    (host / "data").write_text("from the host")
    service.create("hb", options={"type": "none", "o": "bind,ro", "device": str(host)})
    path = service.mount("hb", "m")
    assert Path(path, "data").read_text() == "from the host"
    with pytest.raises(OSError):
        Path(path, "new").write_text("x")  # o=ro: the bind is read-only
    service.unmount("hb", "m")
    service.remove("hb")
    assert (host / "data").read_text() == "from the host"  # removing the volume never touches the source


def test_failed_mount_worded_as_docker(service: VolumeService, root: Path) -> None:
    missing = root / "nowhere"
    service.create("bad", options={"type": "none", "o": "bind", "device": str(missing)})
    vol = service.inspect("bad")
    with pytest.raises(DriverError) as exc:
        service.mount("bad", "m", source=vol["Mountpoint"])
    assert str(exc.value) == (
        f"error while mounting volume '{vol['Mountpoint']}': failed to mount local volume: "
        f"mount {missing}:{vol['Mountpoint']}, flags: 0x1000: no such file or directory"
    )
    service.remove("bad")


def test_survives_restart(root: Path, plugin_dirs: PluginDirs) -> None:
    data = str(root / "data")
    svc = VolumeService(data, plugin_dirs, FAST)
    svc.create("persist", labels={"k": "v"}, ref=CID1)
    svc.create("opts", options={"type": "tmpfs", "device": "tmpfs"})
    Path(svc.inspect("persist")["Mountpoint"], "file").write_text("kept")
    svc.close()
    again = VolumeService(data, plugin_dirs, FAST)
    try:
        assert again.inspect("persist")["Labels"] == {"k": "v"}
        assert again.inspect("opts")["Options"] == {"device": "tmpfs", "type": "tmpfs"}
        assert again.references("persist") == [CID1]
        assert Path(again.inspect("persist")["Mountpoint"], "file").read_text() == "kept"
        # the local driver re-reads opts.json: the volume is still a tmpfs one
        path = again.mount("opts", "m")
        assert _mountinfo(path)["fstype"] == "tmpfs"
        again.unmount("opts", "m")
    finally:
        again.close()


_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from dockerd.volumes.service import VolumeService
    svc = VolumeService(sys.argv[1])
    for i in range(int(sys.argv[2])):
        svc.create(f"vol{i}", labels={"i": str(i)}, ref="c" * 64)
        print(i, flush=True)
    time.sleep(60)
    """
)


def test_survives_kill_9(root: Path) -> None:
    """Every create answered before SIGKILL is there after it, complete; no half-made volume."""
    data = str(root / "data")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, data, "40"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    done = -1
    for line in child.stdout:
        done = int(line)
        if done == 9:
            break
    time.sleep(0.01 * (os.getpid() % 7))  # somewhere in the middle of the next creates
    child.send_signal(signal.SIGKILL)
    child.wait()
    svc = VolumeService(data)
    try:
        vols = {v.name: v for v in svc.list_volumes()[0]}
        for i in range(done + 1):
            assert vols[f"vol{i}"].labels == {"i": str(i)}
            assert svc.references(f"vol{i}") == ["c" * 64]
        for v in vols.values():
            assert os.path.isdir(v.mountpoint)
        hidden = [n for n in os.listdir(root / "data" / "volumes") if n.startswith(".")]
        assert hidden == []  # interrupted creates were cleared at start
    finally:
        svc.close()


def test_removed_directory_forgotten_at_start(root: Path) -> None:
    data = str(root / "data")
    svc = VolumeService(data)
    svc.create("gone")
    svc.close()
    os.rename(root / "data" / "volumes" / "gone", root / "data" / "volumes" / ".removing-gone-1234")
    svc = VolumeService(data)  # as after a kill -9 in the middle of a remove
    try:
        assert svc.list_volumes()[0] == []
        with pytest.raises(NotFound):
            svc.inspect("gone")
        assert not (root / "data" / "volumes" / ".removing-gone-1234").exists()
    finally:
        svc.close()


def test_opts_json_is_mobys(service: VolumeService, root: Path) -> None:
    """moby's field names plus the format's version (moby ignores fields it does not know)."""
    service.create("oo", options={"type": "tmpfs", "device": "tmpfs", "o": "size=2m"})
    raw = json.loads((root / "data" / "volumes" / "oo" / "opts.json").read_text())
    assert raw == {"Version": 1, "MountType": "tmpfs", "MountOpts": "size=2m", "MountDevice": "tmpfs"}


def test_newer_or_damaged_opts_json_refuses_that_volume_only(root: Path) -> None:
    """An opts.json of a newer release (or half written) is refused naming the file, left as it
    is with its metadata, and its name not reused; the other volumes still work."""
    data = str(root / "data")
    svc = VolumeService(data)
    for name in ("newer", "half", "fine"):
        svc.create(name, options={"type": "tmpfs", "device": "tmpfs"}, labels={"k": name})
    svc.create("plain")
    svc.close()
    vols = root / "data" / "volumes"
    newer, half = vols / "newer" / "opts.json", vols / "half" / "opts.json"
    newer.write_text(json.dumps({"Version": 2, "MountType": "tmpfs", "MountDevice": "tmpfs", "Future": 1}))
    half.write_text(half.read_text()[:20])
    damaged = {p: p.read_bytes() for p in (newer, half)}
    svc = VolumeService(data)
    try:
        assert names(svc) == ["fine", "plain"] and svc.inspect("fine")["Labels"] == {"k": "fine"}
        svc.mount("fine", "m0")  # a tmpfs
        svc.unmount("fine", "m0")
        why = {
            "newer": f"{newer}: layout version 2 is newer than this build reads (up to 1)",
            "half": f"{half}: not a complete JSON document",
        }
        assert sorted(svc.list_api()["Warnings"]) == sorted(
            [f"list local: {svc.local.refused()[n]}" for n in ("half", "newer")]
        )
        for name, text in why.items():
            for call in (
                lambda: svc.inspect(name),  # noqa: B023 - called at once
                lambda: svc.remove(name, force=True),  # noqa: B023
                lambda: svc.create(name),  # noqa: B023
                lambda: svc.mount(name, "m1"),  # noqa: B023
            ):
                with pytest.raises(Conflict) as exc:
                    call()
                assert f"volume {name} is not usable by this build: {text}" in str(exc.value)
        assert svc.prune(Filters({"all": frozenset(["true"])})).deleted == ["plain"]
    finally:
        svc.close()
    assert {p: p.read_bytes() for p in (newer, half)} == damaged  # nothing rewritten
    assert sorted(os.listdir(vols)) == ["fine", "half", "metadata.db", "newer"]
    svc = VolumeService(data)  # the metadata of the refused volumes is kept across restarts
    try:
        assert sorted(m.name for m in svc.meta.all()) == ["fine", "half", "newer"]
    finally:
        svc.close()


def test_metadata_carries_its_schema_version(root: Path) -> None:
    data = str(root / "data")
    svc = VolumeService(data)
    svc.close()
    db = sqlite3.connect(root / "data" / "volumes" / "metadata.db")
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        db.execute("PRAGMA user_version = 2")
    finally:
        db.close()
    with pytest.raises(StoreVersionError, match="layout version 2 is newer"):
        VolumeService(data)  # written by a newer pydockerd: refused, not misread


def _mountinfo(path: str) -> dict[str, str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ", 1)
            if left.split()[4] == path:
                fstype, _source, sup = right.split(" ", 2)
                return {"fstype": fstype, "super": sup}
    raise AssertionError(f"{path} is not mounted")


def test_mounted_volume_across_a_restart(root: Path, plugin_dirs: PluginDirs) -> None:
    """Live restore: a volume still mounted for a running container is counted again, and one
    that nobody claims after the restart is unmounted by unmount_idle."""
    data = str(root / "data")
    svc = VolumeService(data, plugin_dirs, FAST)
    svc.create("kept", options={"type": "tmpfs", "device": "tmpfs"})
    svc.create("orphan", options={"type": "tmpfs", "device": "tmpfs"})
    kept, orphan = svc.mount("kept", "m-kept"), svc.mount("orphan", "m-orphan")
    Path(kept, "f").write_text("still here")
    svc.close()  # the daemon stops; the containers (and so the mounts) live on
    again = VolumeService(data, plugin_dirs, FAST)
    try:
        again.mount("kept", "m-kept")  # containermounts.restore_mounts does this per running container
        assert again.unmount_idle() == ["orphan"]
        assert orphan not in mount_points(orphan)
        assert Path(kept, "f").read_text() == "still here"  # not mounted a second time
        again.unmount("kept", "m-kept")
        assert kept not in mount_points(kept)
    finally:
        again.close()


def test_router_helpers(service: VolumeService) -> None:
    from dockerd.volumes import api

    args = api.create_args({"Name": "rv", "Driver": "local", "DriverOpts": None, "Labels": {"a": "b"}})
    assert service.create(**args).to_api()["Labels"] == {"a": "b"}
    with pytest.raises(InvalidParameter) as exc:
        api.create_args({"Name": 5})
    assert (
        str(exc.value)
        == "json: cannot unmarshal number into Go struct field VolumeCreateBody.Name of type string"
    )
    service.create()  # anonymous
    old = api.prune_filters(None, (1, 41))
    assert old.get("all") == ["true"]  # an old client's prune takes named volumes too
    assert api.prune_filters(None, (1, 43)).get("all") == []
    assert len(service.prune(old).deleted) == 2 and service.list_volumes()[0] == []
    assert api.truthy("1") and api.truthy("True") and not api.truthy("0") and not api.truthy(None)
