"""A real pycontainerd per test (temp root, state and socket), busybox imported, a Builder on it.

At the end nothing of the test may remain: no build container or task, no work snapshot
(only committed layers), no mount under its directory, no process mentioning it, no cgroup."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from containerd.client import IO, Client, Container, ContainerdError, Runtime, import_archive
from dockerd.builder import Builder, BuilderConfig, BuildFailed, BuildOptions, BuildResult, RunSettings
from dockerd.builder import image as images
from runtime.spec_default import default_spec
from tests.daemon.conftest import RunningDaemon, start_daemon, stop_daemon
from tests.daemon.test_tasks_ctr import BUSYBOX, ours

NAMESPACE = "moby"


def context(files: dict[str, str | bytes], mtime: int = 1700000000, mode: int = 0o644) -> io.BytesIO:
    """A build context tar: FILES by name (a name ending in "/" is a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = mtime
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            raw = data.encode() if isinstance(data, str) else data
            info.size, info.mode = len(raw), mode
            tar.addfile(info, io.BytesIO(raw))
    buf.seek(0)
    return buf


@dataclass
class Build:
    result: BuildResult | None
    messages: list[dict[str, Any]]
    error: BuildFailed | None = None

    @property
    def text(self) -> str:
        return "".join(m.get("stream", "") for m in self.messages)


@dataclass
class Env:
    daemon: RunningDaemon
    client: Client
    builder: Builder
    base: Path

    def build(self, files: dict[str, str | bytes], **options: Any) -> Build:
        messages: list[dict[str, Any]] = []
        try:
            result = self.builder.build(context(files), BuildOptions(**options), messages.append)
        except BuildFailed as exc:
            messages.append(exc.stream_message())
            return Build(None, messages, exc)
        return Build(result, messages)

    def image(self, image_id: str) -> images.ImageState:
        from containerd.client import list_images

        for image in list_images(self.client):
            state = images.load_image(self.client, image.target)
            if state.id == image_id:
                return state
        raise AssertionError(f"no image {image_id}")

    def run(self, image_id: str, *argv: str) -> str:
        """What a container of the image prints (its stdout), run through the client."""
        state = self.image(image_id)
        cid = f"check-{os.urandom(4).hex()}"
        spec = default_spec()
        env = state.run_config.get("Env") or [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ]
        spec["process"].update(
            args=list(argv), terminal=False, env=env, cwd=state.run_config.get("WorkingDir") or "/"
        )
        spec["root"] = {"path": "rootfs"}
        spec["linux"]["cgroupsPath"] = f"/pybuild-test-{os.getpid()}/{cid}"
        out = self.base / f"{cid}.out"
        out.touch()
        mounts = self.client.snapshots().prepare(cid, state.chain)
        self.client.containers.create(
            Container.with_oci_spec(cid, spec, runtime=Runtime(), snapshotter="overlayfs", snapshot_key=cid)
        )
        try:
            self.client.tasks.create(cid, mounts, IO(stdout=str(out), stderr=str(out)))
            self.client.tasks.start(cid)
            self.client.tasks.wait(cid, timeout=60)
            self.client.tasks.delete(cid)
        finally:
            self.client.snapshots().remove(cid)
            self.client.containers.delete(cid)
        return out.read_text()

    def leftovers(self) -> list[str]:
        """Build containers, tasks and snapshots that are not committed layers."""
        found = [f"container {c.id}" for c in self.client.containers.list()]
        found += [f"task {t.container_id}" for t in self.client.tasks.list()]
        found += [
            f"snapshot {s.name} ({s.kind})" for s in self.client.snapshots().list() if s.kind != "committed"
        ]
        found += [f"snapshot {s.name}" for s in self.client.snapshots().list() if s.name.startswith("build-")]
        return found


def start(base: Path) -> tuple[RunningDaemon, Client]:
    daemon = start_daemon(base)
    return daemon, Client(str(daemon.address), NAMESPACE)


def make_builder(client: Client, base: Path) -> Builder:
    tmp = base / "tmp"
    tmp.mkdir(exist_ok=True)
    settings = RunSettings(cgroup_parent=f"/pybuild-test-{os.getpid()}")
    return Builder(client, BuilderConfig(tmp_dir=str(tmp), docker_version="pydocker-test", run=settings))


@pytest.fixture
def env() -> Iterator[Env]:
    import protos

    protos.load()
    base = Path(tempfile.mkdtemp(prefix=f"bld-{os.getpid()}-", dir="/tmp"))
    try:
        daemon, client = start(base)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)  # nothing was mounted yet
        raise
    handle = None
    try:
        import_archive(client, BUSYBOX)
        handle = Env(daemon, client, make_builder(client, base), base)
        yield handle
        assert not handle.leftovers(), handle.leftovers()
    finally:
        if handle is not None:
            client, daemon = handle.client, handle.daemon  # a test may have restarted the daemon
            for c in client.containers.list():
                try:
                    client.tasks.kill(c.id, 9, all=True)
                    client.tasks.wait(c.id, timeout=10)
                    client.tasks.delete(c.id)
                except ContainerdError:
                    pass
        client.close()
        stop_daemon(daemon)
        log = daemon.log.read_text()
        mounts = [
            line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(base))
        ]
        left = ours(base)
        cgroups = [p for p in Path("/sys/fs/cgroup/pids").glob(f"pybuild-test-{os.getpid()}/*")]
        if not mounts:
            shutil.rmtree(base, ignore_errors=True)
    assert not mounts, f"mounts left behind: {mounts}"
    assert not left, f"processes left behind: {left}"
    assert not cgroups, f"cgroups left behind: {cgroups}"
    assert "Traceback" not in log, log
