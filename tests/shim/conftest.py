"""Fixtures for driving real pycontainerd-shims through containerd/shim_client.py.

Every test gets its own temp tree: bundles (a copy of the default busybox rootfs each),
state directories, the runtime's --root and the stdio FIFOs. At teardown the `lab`
fixture stops what a test left running and then asserts that nothing of its shims
remains: no shim or container process, no cgroup, no mount, no runtime state, no shim
files.

The `lab` runs every test twice: with shims started by the command (`pycontainerd-shim start`),
which exec the runtime for every verb, and with shims forked from the warm template as
pycontainerd starts them, which fork this checkout's pyrunc instead (shim/runtimefork.py).
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from containerd.shim_client import ShimClient, ShimConfig, ShimSpawner, start_shim

REPO = Path(__file__).resolve().parents[2]
PYRUNC = str(REPO / ".venv" / "bin" / "pyrunc")
RUNC = "/usr/sbin/runc"
DEFAULT_ROOTFS = REPO / "images" / "busybox-bundle" / "rootfs"


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cgroup_dirs(path: str) -> list[str]:
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        candidate = os.path.join("/sys/fs/cgroup", hierarchy, path.lstrip("/"))
        if os.path.isdir(candidate):
            found.append(candidate)
    return found


def mounts_under(prefix: str) -> list[str]:
    # unescaped here, independently of common/mountinfo.py (under test): \040 is a space...
    with open("/proc/self/mountinfo") as f:
        points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
    return [p for p in points if p.startswith(prefix)]


class FifoReader:
    """The client's end of a stdio FIFO (what containerd's cio does), read without blocking."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    def read_available(self, settle: float = 0.2) -> bytes:
        """Whatever arrives until nothing has come for SETTLE seconds."""
        chunks: list[bytes] = []
        while True:
            ready, _, _ = select.select([self.fd], [], [], settle)
            if not ready:
                break
            data = os.read(self.fd, 65536)
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def read_to_eof(self, timeout: float = 30.0) -> bytes:
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                return b"".join(chunks)
            chunks.append(data)
        raise AssertionError(f"no EOF on {self.path} after {timeout}s ({sum(map(len, chunks))} bytes read)")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass
class ShimTask:
    id: str
    bundle: Path
    state_dir: Path
    config: ShimConfig
    address: str
    cgroups_path: str
    clients: list[ShimClient] = field(default_factory=list)
    shim_pid: int = 0

    def client(self) -> ShimClient:
        client = ShimClient(self.address)
        self.clients.append(client)
        return client

    def fifo(self, name: str) -> Path:
        path = self.bundle.parent / f"{self.id}.{name}"
        os.mkfifo(path, 0o600)
        return path


@dataclass
class Lab:
    root: Path
    runtime_root: Path
    tasks: list[ShimTask] = field(default_factory=list)
    readers: list[FifoReader] = field(default_factory=list)
    spawner: ShimSpawner | None = (
        None  # shims forked from a template (that fork pyrunc), or started by the command
    )

    def spec(self, args: list[str], cid: str, terminal: bool = False) -> dict[str, Any]:
        from runtime.spec_default import default_spec

        spec = copy.deepcopy(default_spec())
        spec["process"]["terminal"] = terminal
        spec["process"]["args"] = args
        spec["root"] = {"path": "rootfs", "readonly": False}
        spec["hostname"] = "shimtest"
        spec["linux"]["cgroupsPath"] = f"/pydocker-shimtest-{cid}"
        return spec

    def task(
        self,
        args: list[str],
        runtime: str = PYRUNC,
        terminal: bool = False,
        exit_timeout: float | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        copy_rootfs: bool = True,
        bundle_suffix: str = "",
    ) -> ShimTask:
        """A bundle for ARGS and a started shim for it (no task created yet)."""
        task = self.prepare(args, runtime, terminal, exit_timeout, edit, copy_rootfs, bundle_suffix)
        task.address = start_shim(task.config, spawner=self.spawner)
        task.shim_pid = int((task.state_dir / "shim.pid").read_text())
        return task

    def prepare(
        self,
        args: list[str],
        runtime: str = PYRUNC,
        terminal: bool = False,
        exit_timeout: float | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        copy_rootfs: bool = True,
        bundle_suffix: str = "",
    ) -> ShimTask:
        """A bundle for ARGS and the configuration of its shim, not started (cleaned up at teardown all the same)."""
        cid = f"s{os.getpid()}-{secrets.token_hex(3)}"
        bundle = self.root / f"bundle-{cid}{bundle_suffix}"
        bundle.mkdir()
        if copy_rootfs:
            shutil.copytree(DEFAULT_ROOTFS, bundle / "rootfs", symlinks=True)
        spec = self.spec(args, cid, terminal)
        if edit is not None:
            edit(spec)
        (bundle / "config.json").write_text(json.dumps(spec))
        state_dir = self.root / f"state-{cid}"
        config = ShimConfig(
            id=cid,
            bundle=str(bundle),
            namespace="shimtest",
            state_dir=str(state_dir),
            runtime=runtime,
            runtime_root=str(self.runtime_root / os.path.basename(runtime)),
            exit_timeout=exit_timeout,
        )
        task = ShimTask(
            cid,
            bundle,
            state_dir,
            config,
            "unix://" + str(state_dir / "shim.sock"),
            spec["linux"]["cgroupsPath"],
        )
        self.tasks.append(task)
        return task

    def reader(self, path: Path) -> FifoReader:
        reader = FifoReader(path)
        self.readers.append(reader)
        return reader


def _force_stop(task: ShimTask) -> None:
    for client in task.clients:
        client.close()
    if not task.shim_pid and (task.state_dir / "shim.pid").exists():
        task.shim_pid = int((task.state_dir / "shim.pid").read_text())
    if not task.shim_pid:
        return
    if pid_alive(task.shim_pid):
        try:
            with ShimClient(task.address, connect_timeout=2) as client:
                try:
                    client.kill(id=task.id, signal=9, all=True)
                except Exception:  # noqa: BLE001 - clean-up goes on whatever the shim answers
                    pass
                try:
                    client.wait(id=task.id, timeout=10)
                except Exception:  # noqa: BLE001 - clean-up goes on whatever the shim answers
                    pass
                try:
                    client.delete(id=task.id)
                except Exception:  # noqa: BLE001 - clean-up goes on whatever the shim answers
                    pass
                client.shutdown(id=task.id, now=True)
        except Exception:  # noqa: BLE001 - clean-up goes on whatever the shim answers
            pass
        try:
            wait_for(lambda: not pid_alive(task.shim_pid), timeout=5, what="the shim to exit")
        except AssertionError:
            os.kill(task.shim_pid, signal.SIGKILL)


@pytest.fixture(params=["command", "template"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    assert Path(PYRUNC).exists(), "run ./scripts/setup first"
    runtime_root = tmp_path / "runtime-root"
    runtime_root.mkdir()
    spawner = ShimSpawner() if request.param == "template" else None
    tool = Lab(root=tmp_path, runtime_root=runtime_root, spawner=spawner)
    yield tool
    if spawner is not None:
        spawner.close()  # its shims run on: the clean-up below stops them
    for reader in tool.readers:
        reader.close()
    leftovers = []
    for task in tool.tasks:
        _force_stop(task)  # a test that passed has already shut its shims down
        runtime = task.config.runtime
        root = Path(task.config.runtime_root) / task.id
        if root.exists():
            leftovers.append(f"runtime state {root}")
            os.system(f"{runtime} --root {task.config.runtime_root} delete --force {task.id} >/dev/null 2>&1")
        dirs = cgroup_dirs(task.cgroups_path)
        if dirs:
            leftovers.append(f"cgroups {dirs}")
            for d in dirs:
                for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for d in dirs:
                for _ in range(100):
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
        if task.state_dir.exists():
            leftovers.append(f"shim files {sorted(os.listdir(task.state_dir))}")
    mounts = mounts_under(str(tmp_path))
    if mounts:
        leftovers.append(f"mounts {mounts}")
        for mnt in reversed(mounts):
            subprocess.run(["umount", "-l", mnt], check=False)
    assert not leftovers, "left behind: " + "; ".join(leftovers)
