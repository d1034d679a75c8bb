"""A real pycontainerd per test (temp root, state and socket) with busybox imported, and
`Box.run()` to start real busybox containers (tasks) in it for the health monitor to probe.

At the end nothing of the test may remain: no task, container, process, mount or cgroup."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from containerd.client import IO, Client, Container, ContainerdError, Runtime, chain_ids, import_archive
from containerd.client.images import list_images
from containerd.client.unpack import image_manifest
from dockerd.health import ContainerdExecProbe, HealthMonitor
from runtime.spec_default import default_spec
from tests.daemon.conftest import RunningDaemon, start_daemon, stop_daemon
from tests.daemon.test_tasks_ctr import BUSYBOX, ours

NAMESPACE = "moby"


@dataclass
class Recorder:
    """What the monitor told the engine: status changes and the saved State.Health."""

    statuses: list[tuple[str, str]] = field(default_factory=list)
    saved: dict[str, dict[str, Any]] = field(default_factory=dict)
    exec_events: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def on_status(self, cid: str, status: str) -> None:
        self.statuses.append((cid, status))

    def on_update(self, cid: str, health: dict[str, Any]) -> None:
        self.saved[cid] = health

    def on_exec_event(self, cid: str, action: str, attrs: dict[str, str]) -> None:
        self.exec_events.append((cid, action, attrs))


@dataclass
class Box:
    base: Path
    daemon: RunningDaemon
    client: Client
    chain: str
    containers: list[str] = field(default_factory=list)
    monitors: list[HealthMonitor] = field(default_factory=list)

    @property
    def fifo_dir(self) -> str:
        return str(self.base / "fifo")

    def run(self, *argv: str, env: tuple[str, ...] = ()) -> tuple[str, float]:
        """Start a busybox container running ARGV; returns its id and start time (Unix seconds)."""
        cid = f"hc-{os.urandom(6).hex()}"
        spec = default_spec()
        spec["process"].update(
            args=list(argv), terminal=False, cwd="/",
            env=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"HOSTNAME={cid}", *env],
        )  # fmt: skip
        spec["root"] = {"path": "rootfs"}
        spec["hostname"] = cid
        spec["linux"]["cgroupsPath"] = f"/pyhealth-test-{os.getpid()}/{cid}"
        mounts = self.client.snapshots().prepare(cid, self.chain)
        self.client.containers.create(
            Container.with_oci_spec(cid, spec, runtime=Runtime(), snapshotter="overlayfs", snapshot_key=cid)
        )
        self.containers.append(cid)
        self.client.tasks.create(cid, mounts, IO())
        self.client.tasks.start(cid)
        return cid, time.time()

    def monitor(
        self, recorder: Recorder, client: Client | None = None
    ) -> tuple[HealthMonitor, ContainerdExecProbe]:
        runner = ContainerdExecProbe(
            client or self.client, self.fifo_dir, on_exec_event=recorder.on_exec_event
        )
        monitor = HealthMonitor(runner, on_status=recorder.on_status, on_update=recorder.on_update)
        self.monitors.append(monitor)
        return monitor, runner

    def processes(self, cid: str) -> list[str]:
        """The command lines of the container's processes (its cgroup), init first."""
        out = []
        for info in self.client.tasks.pids(cid):
            with contextlib.suppress(OSError):
                out.append(
                    Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                )
        return out

    def remove(self, cid: str) -> None:
        with contextlib.suppress(ContainerdError):
            self.client.tasks.kill(cid, 9, all=True)
            self.client.tasks.wait(cid, timeout=20)
        with contextlib.suppress(ContainerdError):
            self.client.tasks.delete(cid)
        with contextlib.suppress(ContainerdError):
            self.client.containers.delete(cid)
        with contextlib.suppress(ContainerdError):
            self.client.snapshots().remove(cid)

    def restart_daemon(self) -> None:
        """Stop pycontainerd and start it again on the same roots (the shims and tasks survive)."""
        self.client.close()
        stop_daemon(self.daemon)
        self.daemon = start_daemon(self.base)
        self.client = Client(str(self.daemon.address), NAMESPACE)


def _busybox_chain(client: Client) -> str:
    image = next(i for i in list_images(client) if "busybox" in i.name)
    _desc, _manifest, config = image_manifest(client, image)
    return chain_ids(config.diff_ids)[-1]


@pytest.fixture
def box() -> Iterator[Box]:
    import protos

    protos.load()
    base = Path(tempfile.mkdtemp(prefix=f"hc-{os.getpid()}-", dir="/tmp"))
    daemon = start_daemon(base)
    client = Client(str(daemon.address), NAMESPACE)
    handle = Box(base, daemon, client, "")
    try:
        import_archive(client, BUSYBOX)
        handle.chain = _busybox_chain(client)
        yield handle
    finally:
        for monitor in handle.monitors:
            monitor.close()
        for cid in handle.containers:
            handle.remove(cid)
        tasks = [t.container_id for t in handle.client.tasks.list()]
        handle.client.close()
        stop_daemon(handle.daemon)
        log = handle.daemon.log.read_text()
        mounts = [
            line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(base))
        ]
        left = ours(base)
        cgroups = list(Path("/sys/fs/cgroup/pids").glob(f"pyhealth-test-{os.getpid()}/*"))
        fifos = [str(p) for p in (base / "fifo").rglob("*-std*")] if (base / "fifo").exists() else []
        if not mounts:
            shutil.rmtree(base, ignore_errors=True)
    assert not tasks, f"tasks left behind: {tasks}"
    assert not mounts, f"mounts left behind: {mounts}"
    assert not left, f"processes left behind: {left}"
    assert not cgroups, f"cgroups left behind: {cgroups}"
    assert not fifos, f"probe FIFOs left behind: {fifos}"
    assert "Traceback" not in log, log
