"""The CRI plugin's in-process calls (containerd/cri/local.py) answer as the daemon's socket does.

A real daemon in this process serves its socket; one client calls over it, another through a
LocalChannel on the same daemon's servicers. The same steps (successes, and failures of several
kinds: not found, already exists, invalid argument, failed precondition) must give the same results
and the same error kinds and messages, a container's own name aside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from containerd.client import Client, Container
from containerd.client.errors import ContainerdError
from containerd.config import load
from containerd.cri.local import LocalChannel, unary_handlers
from containerd.server import Daemon

SPEC = {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    cfg = load(
        None,
        {"root": str(tmp_path / "root"), "state": str(tmp_path / "state"),
         "address": str(tmp_path / "d.sock"), "cri_enabled": False},
    )  # fmt: skip
    d = Daemon(cfg)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _steps(name: str) -> list[Callable[[Client], Any]]:
    snaps = "overlayfs"
    return [
        lambda c: c.containers.get(name),  # not found
        lambda c: c.containers.create(Container.with_oci_spec(name, SPEC, labels={"a": "b"})).labels,
        lambda c: c.containers.create(Container.with_oci_spec(name, SPEC)),  # already exists
        lambda c: c.containers.create(Container.with_oci_spec(f"{name}!", SPEC)),  # invalid id
        lambda c: [r.labels for r in c.containers.list(f"id=={name}")],
        lambda c: c.containers.update(Container(name, labels={"x": "y"}), ["labels"]).labels,
        lambda c: c.containers.update(Container(name), ["nonsense"]),  # invalid field
        lambda c: c.snapshots(snaps).prepare(name, "sha256:" + "0" * 64),  # missing parent
        lambda c: [m.type for m in c.snapshots(snaps).prepare(name)],
        lambda c: c.snapshots(snaps).prepare(name),  # already exists
        lambda c: c.tasks.get(name),  # no task
        lambda c: c.tasks.kill(name, 9),
        lambda c: c.snapshots(snaps).remove(name),
        lambda c: c.containers.delete(name),
        lambda c: c.containers.delete(name),  # gone
    ]


def _outcome(client: Client, step: Callable[[Client], Any], name: str) -> tuple[str, str]:
    try:
        result = step(client)
    except ContainerdError as exc:
        return type(exc).__name__, str(exc).replace(name, "NAME")
    return "ok", repr(result).replace(name, "NAME")


def test_local_calls_answer_as_the_socket(daemon: Daemon) -> None:
    address = daemon.cfg.address
    remote = Client(address, "k8s.io")
    channel = LocalChannel(unary_handlers(daemon._services()), remote._raw)
    local = Client(address, "k8s.io", _channel=cast(grpc.Channel, channel))
    try:
        over_socket = [_outcome(remote, s, "by-socket") for s in _steps("by-socket")]
        in_process = [_outcome(local, s, "in-process") for s in _steps("in-process")]
    finally:
        remote.close()
    assert in_process == over_socket
    kinds = {kind for kind, _ in over_socket}
    assert {"ok", "NotFound", "AlreadyExists", "InvalidArgument"} <= kinds, over_socket
