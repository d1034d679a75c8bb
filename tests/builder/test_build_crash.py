"""A pydockerd killed (SIGKILL) in the middle of a build: its next start removes what the build
left — the context unpacked on a tmpfs in <data-root>/tmp, RUN's files there, the build
container with its running task, the step snapshots and the build's lease — and builds again."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from common import mountinfo
from containerd.client import Client
from dockerd.builder.recovery import LABEL_CONTAINER, LABEL_LEASE, SNAPSHOT_PREFIX
from tests.dockerd_ref import DOCKER_CLI
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, start_pydockerd, until, wait_ready


def _build(engine: PyDockerd, ctx: Path, *args: str) -> subprocess.Popen[str]:
    env = {**engine._cli_env, "DOCKER_BUILDKIT": "0"}
    argv = [DOCKER_CLI, "-H", f"unix://{engine.socket}", "build", *args, "."]
    return subprocess.Popen(argv, cwd=ctx, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _client(engine: PyDockerd) -> Client:
    return Client(str(engine.exec_root / "containerd" / "pycontainerd.sock"), "moby")


def _build_state(engine: PyDockerd) -> dict[str, list[str]]:
    """What of a build there is in pycontainerd."""
    with _client(engine) as client:
        return {
            "containers": [c.id for c in client.containers.list(f'labels."{LABEL_CONTAINER}"==true')],
            "tasks": [t.container_id for t in client.tasks.list()],
            "snapshots": [
                s.name for s in client.snapshots("overlayfs").list() if s.name.startswith(SNAPSHOT_PREFIX)
            ],
            "leases": [lease.id for lease in client.leases.list(f'labels."{LABEL_LEASE}"==build')],
        }


def test_killed_mid_build_leaves_nothing_after_the_next_start(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "src").mkdir(parents=True)
    for i in range(50):
        (ctx / "src" / f"f{i}").write_text(f"{i}\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY src /src\nRUN echo started; sleep 120\n")
    with pydockerd_engine() as engine:
        assert isinstance(engine, PyDockerd)
        tmp = engine.data_root / "tmp"
        build = _build(engine, ctx, "-t", "crash:1")
        try:
            assert build.stdout is not None
            for line in build.stdout:
                if line.strip() == "started":
                    break
            else:
                raise AssertionError(
                    f"the build did not reach its RUN: {build.stderr.read() if build.stderr else ''}"
                )
            # the build is in its RUN: the context on its tmpfs, the container's task running
            contexts = [p for p in tmp.iterdir() if p.name.startswith("build-context-")]
            assert contexts and all(mountinfo.is_mount_point(str(p)) for p in contexts), list(tmp.iterdir())
            state = _build_state(engine)
            assert state["containers"] and state["tasks"] and state["snapshots"] and state["leases"], state
            old = engine.pid
            assert old is not None
            os.kill(old, signal.SIGKILL)
            os.waitpid(old, 0)  # (ours: the harness started it)
            assert build.wait(60) != 0
        finally:
            if build.poll() is None:
                build.kill()
                build.wait()
        # still there while pydockerd is down: what the next start has to clean
        assert any(p.name.startswith("build-context-") for p in tmp.iterdir())
        wait_ready(engine, start_pydockerd(engine))
        until("the build's leftovers removed", lambda: _build_state(engine) == {
            "containers": [], "tasks": [], "snapshots": [], "leases": []}, timeout=60)  # fmt: skip
        assert list(tmp.iterdir()) == []
        assert mountinfo.mount_points(str(tmp)) == []
        # and it builds again (the COPY step's cache record survived the crash)
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY src /src\nRUN cat /src/f7\n")
        again = _build(engine, ctx, "-t", "crash:1")
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert out.count(" ---> Using cache\n") == 1 and "\n7\n" in out, out
        engine.docker_ok("rmi", "crash:1")
        # what stays is the context kept for the next build of the same bytes (contexts.py),
        # until the cache is pruned
        kept = list(tmp.iterdir())
        assert len(kept) == 1 and kept[0].name.startswith("build-context-"), kept
        assert mountinfo.is_mount_point(str(kept[0]))
        engine.docker_ok("builder", "prune", "-af")
        assert list(tmp.iterdir()) == [] and mountinfo.mount_points(str(tmp)) == []
