"""A real pycontainerd process per test, on its own temp root, state and socket."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.unixsock import accepting

REPO = Path(__file__).resolve().parents[2]
PYCONTAINERD = REPO / ".venv" / "bin" / "pycontainerd"


@dataclass
class RunningDaemon:
    root: Path
    state: Path
    address: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def channel(self, namespace: str | None = "default") -> grpc.Channel:
        channel = grpc.insecure_channel(f"unix://{self.address}")
        if namespace is None:
            return channel
        return grpc.intercept_channel(channel, _NamespaceHeader(namespace))

    def ctr(
        self, *args: str, namespace: str = "default", timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.address), "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None


class _NamespaceHeader(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    # Any, as in containerd/client's interceptor: grpc hands over a namedtuple that the stubs
    # type as the abstract ClientCallDetails, which has no _replace.
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _details(self, details: Any) -> Any:
        metadata = list(details.metadata or []) + [("containerd-namespace", self.namespace)]
        return details._replace(metadata=metadata)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def start_daemon(base: Path, extra: list[str] | None = None) -> RunningDaemon:
    root, state, address, log = base / "root", base / "state", base / "pycontainerd.sock", base / "daemon.log"
    proc = subprocess.Popen(
        [
            str(PYCONTAINERD),
            "--root",
            str(root),
            "--state",
            str(state),
            "--address",
            str(address),
            *(extra or []),
        ],
        stdout=open(log, "ab"),  # the daemon owns it
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not accepting(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"pycontainerd did not start: {log.read_text()}")
        time.sleep(0.05)
    return RunningDaemon(root, state, address, proc, log)


def stop_daemon(daemon: RunningDaemon) -> None:
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[RunningDaemon]:
    import protos

    protos.load()
    running = start_daemon(tmp_path)
    yield running
    stop_daemon(running)
    log = running.log.read_text()
    assert "Traceback" not in log, f"the daemon hit an unexpected error:\n{log}"
    leftovers = [
        line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(tmp_path))
    ]
    assert not leftovers, f"mounts left behind: {leftovers}"
    assert os.path.exists(running.root)


# --- real containerd (Debian's), for proving clients work against the reference too ------------

REAL_CONTAINERD = "/usr/bin/containerd"


def start_real_containerd(base: Path) -> RunningDaemon:
    """Debian's containerd on private root, state, socket and opt dirs under BASE (no CRI).

    Returned as a RunningDaemon, so `ctr()` and `channel()` work the same; stop it with
    stop_daemon(). Only content, images, leases, snapshots and diff are meant to be used:
    nothing here isolates tasks. BASE must be short: containerd refuses socket paths longer
    than 104 bytes (pytest's tmp_path under xdist is too long).
    """
    base.mkdir(parents=True, exist_ok=True)
    root, state, address, log = (
        base / "root",
        base / "state",
        base / "containerd.sock",
        base / "containerd.log",
    )
    config = base / "config.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{root}"\nstate = "{state}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",'
        ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]\n'
        f'[grpc]\n  address = "{address}"\n'
        f'[ttrpc]\n  address = "{address}.ttrpc"\n'
        '[debug]\n  address = ""\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{base / "opt"}"\n'
    )
    proc = subprocess.Popen(
        [REAL_CONTAINERD, "--config", str(config)],
        stdout=open(log, "ab"),  # the daemon owns it
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not accepting(address):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_daemon(RunningDaemon(root, state, address, proc, log))
            raise AssertionError(f"containerd did not start: {log.read_text()}")
        time.sleep(0.05)
    return RunningDaemon(root, state, address, proc, log)
