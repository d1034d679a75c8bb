"""Volume plugins over Docker's plugin protocol: a plugin server written here (plugin_server.py)
on real unix sockets and a loopback TCP port, found through temporary plugin directories."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockerd.engine.errors import Conflict, NotFound
from dockerd.volumes import containermounts, mountplan
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.errors import DriverError
from dockerd.volumes.service import VolumeService
from tests.volumes.plugin_server import RunningPlugin, volume_plugin
from tests.volumes.vol_helpers import FAST

CID = "c" * 64


@pytest.fixture
def plugin(root: Path, plugin_dirs: PluginDirs) -> Iterator[RunningPlugin]:
    """A plugin named "myplug" on <sockets>/myplug.sock."""
    with volume_plugin(root / "myplug-data", Path(plugin_dirs.sockets[0]) / "myplug.sock") as p:
        yield p


def test_activate_create_inspect_list_remove(service: VolumeService, plugin: RunningPlugin) -> None:
    vol = service.create("pv1", "myplug", options={"a": "b"}, labels={"l": "v"})
    assert vol.driver == "myplug"
    assert plugin.methods()[:2] == ["Plugin.Activate", "VolumeDriver.Get"]
    assert ("VolumeDriver.Create", {"Name": "pv1", "Opts": {"a": "b"}}) in plugin.state.calls
    data = service.inspect("pv1")
    assert data == {
        "CreatedAt": "0001-01-01T00:00:00Z",  # the plugin gave no CreatedAt
        "Driver": "myplug",
        "Labels": {"l": "v"},
        "Mountpoint": "",
        "Name": "pv1",
        "Options": {"a": "b"},
        "Scope": "local",
        "Status": {"opts": {"a": "b"}},
    }
    assert [v.name for v in service.list_volumes()[0]] == ["pv1"]
    # the same name and driver again: the existing volume, no second Create
    service.create("pv1", "myplug")
    assert [m for m in plugin.methods() if m == "VolumeDriver.Create"] == ["VolumeDriver.Create"]
    service.remove("pv1")
    assert ("VolumeDriver.Remove", {"Name": "pv1"}) in plugin.state.calls
    assert service.list_volumes()[0] == []
    assert service.driver_names() == ["local", "myplug"]


def test_name_conflict_between_drivers(service: VolumeService, plugin: RunningPlugin) -> None:
    service.create("pv1", "myplug")
    for driver in ("local", ""):
        with pytest.raises(Conflict) as exc:
            service.create("pv1", driver or "local")
        assert (
            str(exc.value)
            == "create pv1: driver 'myplug' already has volume 'pv1': volume name must be unique"
        )
    # no driver named: the existing plugin volume is the one meant (as -v pv1:/data)
    assert service.create("pv1").driver == "myplug"


def test_plugin_errors_worded_as_docker(service: VolumeService, plugin: RunningPlugin) -> None:
    plugin.state.behaviour.errors["VolumeDriver.Create"] = "disk full"
    with pytest.raises(DriverError) as exc:
        service.create("bad1", "myplug")
    assert str(exc.value) == "create bad1: disk full" and exc.value.status == 500
    plugin.state.behaviour.errors.clear()
    plugin.state.behaviour.http_errors["VolumeDriver.Create"] = "boom"
    with pytest.raises(DriverError) as exc:
        service.create("bad2", "myplug")
    assert str(exc.value) == "create bad2: VolumeDriver.Create: boom"
    plugin.state.behaviour.http_errors.clear()
    assert service.list_volumes()[0] == []  # nothing half-created

    service.create("pv", "myplug")
    service.create("pv2", "myplug")
    plugin.state.behaviour.errors["VolumeDriver.Remove"] = "busy"
    for force in (False, True):
        with pytest.raises(DriverError) as exc:
            service.remove("pv", force=force)
        assert str(exc.value) == "remove pv: busy"
    plugin.state.behaviour.errors.clear()

    plugin.state.behaviour.errors["VolumeDriver.List"] = "list broke"
    vols, warnings = service.list_volumes()
    assert warnings == ["list myplug: list broke"]
    # still listed from what the daemon knows (pv's record went with the forced remove)
    assert [v.name for v in vols] == ["pv2"]
    plugin.state.behaviour.errors.clear()

    plugin.state.behaviour.errors["VolumeDriver.Get"] = "get broke"
    with pytest.raises(NotFound) as exc2:
        service.inspect("pv2")
    assert str(exc2.value) == "get pv2: no such volume"


def test_mount_and_unmount_through_the_plugin(service: VolumeService, plugin: RunningPlugin) -> None:
    points = mountplan.plan(
        {"Binds": ["pv1:/data"], "VolumeDriver": "myplug"}, [], lambda ref: [], "/nonexistent"
    )
    containermounts.create_volumes(points, service, CID)
    assert points[0].driver == "myplug" and points[0].mode == "" and service.references("pv1") == [CID]
    paths = containermounts.setup(points, service)
    mount_id = points[0].mount_id
    assert len(mount_id) == 64
    assert paths == {"/data": str(plugin.state.root / "pv1")}
    assert ("VolumeDriver.Mount", {"Name": "pv1", "ID": mount_id}) in plugin.state.calls
    containermounts.teardown(points, service)
    assert ("VolumeDriver.Unmount", {"Name": "pv1", "ID": mount_id}) in plugin.state.calls
    plugin.state.behaviour.errors["VolumeDriver.Mount"] = "cannot mount"
    with pytest.raises(DriverError) as exc:
        containermounts.setup(points, service)
    assert str(exc.value) == "error while mounting volume '': cannot mount"
    plugin.state.behaviour.errors.clear()
    with pytest.raises(Conflict):
        service.remove("pv1")
    assert containermounts.remove(points, service, CID, remove_anonymous=True) == []
    assert [v.name for v in service.list_volumes()[0]] == ["pv1"]  # named: never removed with the container


@pytest.mark.parametrize("kind", ["spec-unix", "spec-tcp", "json", "nested-sock"])
def test_discovery(root: Path, plugin_dirs: PluginDirs, kind: str) -> None:
    sockets, specs = Path(plugin_dirs.sockets[0]), Path(plugin_dirs.specs[0])
    sock = (sockets / "p" / "p.sock") if kind == "nested-sock" else (root / "elsewhere.sock")
    with volume_plugin(root / "pdata", sock, tcp=kind == "spec-tcp") as p:
        if kind.startswith("spec"):
            (specs / "p.spec").write_text(p.address + "\n")
        elif kind == "json":
            (specs / "p.json").write_text(json.dumps({"Name": "p", "Addr": p.address}))
        svc = VolumeService(str(root / "data"), plugin_dirs, FAST)
        try:
            assert svc.create("dv", "p").driver == "p"
            assert [(v.name, v.driver) for v in svc.list_volumes()[0]] == [("dv", "p")]
        finally:
            svc.close()


def test_a_spec_without_protocol(service: VolumeService, plugin_dirs: PluginDirs) -> None:
    Path(plugin_dirs.specs[0], "noproto.spec").write_text("/some/path.sock")
    with pytest.raises(DriverError) as exc:
        service.create("x1", "noproto")
    assert (
        str(exc.value) == "create x1: error looking up volume plugin noproto: legacy plugin: Unknown protocol"
    )


def test_a_plugin_that_is_no_volume_driver(
    service: VolumeService, root: Path, plugin_dirs: PluginDirs
) -> None:
    with volume_plugin(root / "nd", Path(plugin_dirs.sockets[0]) / "netonly.sock") as p:
        p.state.behaviour.implements = ["NetworkDriver"]
        with pytest.raises(DriverError) as exc:
            service.create("x1", "netonly")
        assert str(exc.value) == (
            "create x1: error looking up volume plugin netonly: legacy plugin: "
            "Plugin does not implement the requested driver"
        )
        assert service.list_volumes()[0] == []  # and the listing skips it


def test_a_plugin_that_never_answers(service: VolumeService, plugin: RunningPlugin) -> None:
    """The call fails after its deadline; the daemon (other volumes, other requests) goes on."""
    plugin.state.behaviour.hang.add("VolumeDriver.Create")
    outcome: list[BaseException] = []

    def slow() -> None:
        try:
            service.create("hung", "myplug")
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    started = time.monotonic()
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    service.create("meanwhile", "local")  # not blocked by the hung plugin call
    assert time.monotonic() - started < FAST.long
    t.join(FAST.long + 5)
    elapsed = time.monotonic() - started
    assert not t.is_alive()
    assert FAST.long - 0.5 < elapsed < FAST.long + 3
    sock = plugin.address.removeprefix("unix://")
    quoted = sock.replace("/", "%2F")
    assert (
        str(outcome[0])
        == f'create hung: Post "http://{quoted}/VolumeDriver.Create": context deadline exceeded'
    )
    assert [v.name for v in service.list_volumes()[0]] == ["meanwhile"]


def test_a_plugin_that_is_gone(service: VolumeService, root: Path, plugin_dirs: PluginDirs) -> None:
    """A socket nobody listens on: retried for connect_retry, then dockerd's wording."""
    path = Path(plugin_dirs.sockets[0]) / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound, never listening: connections are refused
    try:
        started = time.monotonic()
        with pytest.raises(DriverError) as exc:
            service.create("x1", "dead")
        elapsed = time.monotonic() - started
        quoted = str(path).replace("/", "%2F")
        assert str(exc.value) == (
            f'create x1: error looking up volume plugin dead: legacy plugin: Post "http://{quoted}/Plugin.Activate": '
            f"dial unix {path}: connect: connection refused"
        )
        assert 1 <= elapsed < FAST.connect_retry + 1
        assert service.list_volumes()[0] == []  # listing skips it without waiting
    finally:
        s.close()
        os.unlink(path)


def test_plugin_volume_gone_from_the_plugin(service: VolumeService, plugin: RunningPlugin) -> None:
    service.create("pv", "myplug")
    plugin.state.volumes.clear()  # removed behind the daemon's back
    with pytest.raises(NotFound):
        service.inspect("pv")
    assert service.create("pv", "local").driver == "local"  # the stale record does not block the name
