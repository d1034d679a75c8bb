"""Fixtures for driving the real `pyrunc` binary against real bundles.

Every test gets its own --root, its own bundle (a copy of the default busybox rootfs)
and unique container ids; at teardown the `pyrunc` fixture asserts that nothing of its
containers remains: no state directory, no cgroup, no mount, no process.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYRUNC = REPO / ".venv" / "bin" / "pyrunc"
DEFAULT_ROOTFS = REPO / "images" / "busybox-bundle" / "rootfs"
SHARED_IMAGES = REPO.parent / "shared" / "images"


def base_config(args: list[str], container_id: str) -> dict[str, Any]:
    from runtime.spec_default import default_spec

    spec = copy.deepcopy(default_spec())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["hostname"] = "pyrunc-test"
    spec["linux"]["cgroupsPath"] = f"/pyrunc-test-{container_id}"
    return spec


@dataclass
class Bundle:
    path: Path
    config: dict[str, Any]

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config))
        return self


@dataclass
class Pyrunc:
    root: Path
    workdir: Path
    ids: list[str] = field(default_factory=list)
    cgroup_paths: list[str] = field(default_factory=list)

    def new_id(self) -> str:
        cid = f"t{os.getpid()}-{secrets.token_hex(4)}"
        self.ids.append(cid)
        self.cgroup_paths.append(f"/pyrunc-test-{cid}")
        return cid

    def bundle(
        self, args: list[str], container_id: str | None = None, rootfs: Path = DEFAULT_ROOTFS
    ) -> Bundle:
        cid = container_id or self.ids[-1]
        path = self.workdir / f"bundle-{cid}"
        path.mkdir(mode=0o755)
        shutil.copytree(rootfs, path / "rootfs", symlinks=True)
        return Bundle(path, base_config(args, cid))

    def __call__(
        self, *args: str, input: bytes | None = None, timeout: float = 60, wrap: list[str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        # Files, not pipes: a created or detached container inherits pyrunc's stdio (as under
        # containerd), so waiting for a pipe's EOF would wait for the container to exit.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = subprocess.run(
                [*(wrap or []), str(PYRUNC), "--root", str(self.root), *args],
                input=input,
                stdout=out,
                stderr=err,
                timeout=timeout,
            )
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())

    def ok(self, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
        done = self(*args, input=input, timeout=timeout)
        assert done.returncode == 0, (
            f"pyrunc {' '.join(args)} failed ({done.returncode}): {done.stderr.decode()}"
        )
        return done.stdout.decode()

    def state(self, cid: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ok("state", cid))
        return result


def cgroup_dirs(path: str) -> list[str]:
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        candidate = os.path.join("/sys/fs/cgroup", hierarchy, path.lstrip("/"))
        if os.path.isdir(candidate):
            found.append(candidate)
    return found


def mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


@pytest.fixture
def pyrunc(tmp_path: Path) -> Iterator[Pyrunc]:
    assert PYRUNC.exists(), "run ./scripts/setup first"
    workdir = tmp_path / "work"
    workdir.mkdir()
    tool = Pyrunc(root=tmp_path / "state", workdir=workdir)
    yield tool
    leftovers = []
    for cid in tool.ids:
        if (tool.root / cid).exists():
            state = tool("state", cid)
            leftovers.append(f"state dir of {cid} ({state.stdout.decode().strip()})")
            tool("delete", "--force", cid)
    for path in tool.cgroup_paths:
        dirs = cgroup_dirs(path)
        if dirs:
            leftovers.append(f"cgroups {dirs}")
            for d in dirs:
                for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                    try:
                        os.kill(int(pid), 9)
                    except ProcessLookupError:
                        pass
            # Reported above as a failure; removed so one broken test does not leak into the machine.
            for d in dirs:
                for _ in range(100):
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)
    mounts = mounts_under(str(tmp_path))
    if mounts:
        leftovers.append(f"mounts {mounts}")
    assert not leftovers, "left behind: " + "; ".join(leftovers)
