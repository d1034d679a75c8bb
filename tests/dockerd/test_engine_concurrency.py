"""Many clients at once: requests that block for a container's lifetime (the wait a `run -d`
leaves behind, `logs -f`, `events`) must not starve the others, and concurrent runs and
removals all complete. A thread pool of anyio's default size (40) once let 40 detached runs
deadlock the daemon; these tests hold more followers than that."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.pydockerd_harness import PyDockerd, pydockerd_engine

FOLLOWERS = 60


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


def hold(engine: PyDockerd, method: str, path: str) -> socket.socket:
    """Send a request whose answer will not come while the container runs; keep the connection open."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(engine.socket))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n".encode())
    return s


def test_blocked_followers_do_not_starve_other_requests(engine: PyDockerd) -> None:
    cid = engine.docker_ok("run", "-d", "busybox", "sleep", "1000").strip()
    held: list[socket.socket] = []
    try:
        for i in range(FOLLOWERS):
            held.append(hold(engine, "POST", f"/v1.41/containers/{cid}/wait?condition=not-running"))
            held.append(hold(engine, "GET", f"/v1.41/containers/{cid}/logs?stdout=1&follow=1"))
            if i % 10 == 0:
                held.append(hold(engine, "GET", "/v1.41/events"))
        time.sleep(1)
        started = time.monotonic()
        done = engine.docker("run", "--rm", "busybox", "echo", "still serving", timeout=60)
        assert (done.returncode, done.stdout) == (0, "still serving\n"), done.stderr
        assert engine.docker_ok("ps", "-q", "--no-trunc").split() == [cid]
        assert time.monotonic() - started < 20
    finally:
        for s in held:
            s.close()
    # Clients that hung up leave nothing blocking: stop and wait still answer at once.
    engine.docker_ok("stop", "-t", "1", cid)
    assert engine.docker_ok("wait", cid) == "137\n"
    engine.docker_ok("rm", cid)


def test_fifty_concurrent_runs_then_parallel_removal(engine: PyDockerd) -> None:
    def run(_: int) -> subprocess.CompletedProcess[str]:
        return engine.docker("run", "-d", "busybox", "sleep", "1000", timeout=120)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(run, range(50)))
    failed = [r.stderr for r in results if r.returncode != 0]
    assert not failed, failed[:3]
    ids = engine.docker_ok("ps", "-q", "--no-trunc").split()
    assert sorted(ids) == sorted(r.stdout.strip() for r in results)
    started = time.monotonic()
    engine.docker_ok("rm", "-f", *ids, timeout=120)
    assert engine.docker_ok("ps", "-aq") == ""
    assert time.monotonic() - started < 60
