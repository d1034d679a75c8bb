"""pycontainerd's version, introspection, namespaces and events services, through the
generated stubs (as a user's gRPC client would) and through containerd's own `ctr`."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, empty_pb2, field_mask_pb2

from tests.daemon.conftest import PYCONTAINERD, RunningDaemon, start_daemon, stop_daemon


def test_version_and_server_info(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.services.introspection.v1 import introspection_pb2_grpc
    from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc

    version = version_pb2_grpc.VersionStub(daemon.channel()).Version(empty_pb2.Empty())
    assert version.version == "0.1.0"
    server = introspection_pb2_grpc.IntrospectionStub(daemon.channel()).Server(empty_pb2.Empty())
    assert server.pid == daemon.proc.pid
    assert len(server.uuid) == 36
    out = daemon.ctr("version")
    assert out.returncode == 0, out.stderr
    assert "Version:  0.1.0" in out.stdout and server.uuid in out.stdout


def test_plugins_listed_and_filtered(daemon: RunningDaemon) -> None:
    out = daemon.ctr("plugins", "ls")
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    assert ["io.containerd.snapshotter.v1", "overlayfs", "linux/amd64", "ok"] in rows
    assert any(r[:2] == ["io.containerd.grpc.v1", "tasks"] for r in rows)
    filtered = daemon.ctr("plugins", "ls", "type==io.containerd.snapshotter.v1")
    assert [line.split()[1] for line in filtered.stdout.splitlines()[1:]] == ["overlayfs"]


def test_socket_is_private_and_single(daemon: RunningDaemon, tmp_path: Path) -> None:
    assert stat.S_IMODE(os.stat(daemon.address).st_mode) == 0o660
    second = subprocess.run(
        [
            str(PYCONTAINERD),
            "--root",
            str(tmp_path / "r2"),
            "--state",
            str(tmp_path / "s2"),
            "--address",
            str(daemon.address),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1 and "another daemon is serving" in second.stderr
    assert daemon.alive()


def test_stale_socket_after_kill_is_reclaimed(tmp_path: Path) -> None:
    first = start_daemon(tmp_path)
    uuid = first.ctr("version").stdout.split("UUID: ")[1].strip()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    assert first.address.exists()  # a killed daemon leaves its socket
    second = start_daemon(tmp_path)
    try:
        out = second.ctr("version")
        assert out.returncode == 0, out.stderr
        assert uuid in out.stdout  # same root, same identity
    finally:
        stop_daemon(second)


def test_namespaces_lifecycle_and_errors(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc

    stub = namespace_pb2_grpc.NamespacesStub(daemon.channel(None))
    created = stub.Create(
        namespace_pb2.CreateNamespaceRequest(
            namespace=namespace_pb2.Namespace(name="team-a", labels={"tier": "dev"})
        )
    )
    assert created.namespace.labels["tier"] == "dev"
    with pytest.raises(grpc.RpcError) as err:
        stub.Create(namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name="team-a")))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        stub.Create(namespace_pb2.CreateNamespaceRequest(namespace=namespace_pb2.Namespace(name="bad name!")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        stub.Get(namespace_pb2.GetNamespaceRequest(name="nosuch"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.Delete(namespace_pb2.DeleteNamespaceRequest(name="nosuch"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    updated = stub.Update(
        namespace_pb2.UpdateNamespaceRequest(
            namespace=namespace_pb2.Namespace(name="team-a", labels={"owner": "x"}),
            update_mask=field_mask_pb2.FieldMask(paths=["labels.owner"]),
        )
    )
    assert dict(updated.namespace.labels) == {"tier": "dev", "owner": "x"}
    listed = stub.List(namespace_pb2.ListNamespacesRequest(filter='labels."tier"==dev'))
    assert [n.name for n in listed.namespaces] == ["team-a"]
    # ctr sees the same
    assert "team-a" in daemon.ctr("namespaces", "ls", "-q").stdout.split()
    assert daemon.ctr("namespaces", "create", "team-b").returncode == 0
    assert daemon.ctr("namespaces", "rm", "team-b").returncode == 0
    assert "team-b" not in daemon.ctr("namespaces", "ls", "-q").stdout.split()
    stub.Delete(namespace_pb2.DeleteNamespaceRequest(name="team-a"))
    assert daemon.alive()


def test_events_publish_subscribe_and_ctr_events(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.events import task_pb2
    from protos.gen.containerd_api.services.events.v1 import events_pb2, events_pb2_grpc

    stub = events_pb2_grpc.EventsStub(daemon.channel("ns1"))
    received: list[events_pb2.Envelope] = []
    stream = stub.Subscribe(events_pb2.SubscribeRequest(filters=['topic~="/tasks/"']))

    def collect() -> None:
        try:
            for envelope in stream:
                received.append(envelope)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=collect)
    reader.start()
    ctr_events = subprocess.Popen(
        ["ctr", "--address", str(daemon.address), "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.2)  # let both subscriptions register
        if len(received) == 0:
            break
    exit_event = task_pb2.TaskExit(container_id="c1", id="c1", pid=42, exit_status=3)
    payload = any_pb2.Any(type_url="containerd.events.TaskExit", value=exit_event.SerializeToString())
    stub.Publish(
        events_pb2.PublishRequest(topic="/images/create", event=payload)
    )  # filtered out for our subscriber
    stub.Publish(events_pb2.PublishRequest(topic="/tasks/exit", event=payload))
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    stream.cancel()
    reader.join(timeout=10)
    assert [e.topic for e in received] == ["/tasks/exit"]
    assert received[0].namespace == "ns1"
    decoded = task_pb2.TaskExit.FromString(received[0].event.value)
    assert decoded.exit_status == 3
    time.sleep(0.3)
    ctr_events.terminate()
    out, _ = ctr_events.communicate(timeout=10)
    assert "/tasks/exit" in out and '"exit_status":3' in out.replace(" ", "")
    # bad topics and a missing namespace are refused; the daemon stays up
    with pytest.raises(grpc.RpcError) as err:
        stub.Publish(events_pb2.PublishRequest(topic="no-slash", event=payload))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        events_pb2_grpc.EventsStub(daemon.channel(None)).Publish(
            events_pb2.PublishRequest(topic="/a/b", event=payload)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert daemon.alive()


def test_many_blocking_calls_leave_room_for_others(daemon: RunningDaemon) -> None:
    """40 open event subscriptions (each holds a server thread while it blocks, as a Tasks.Wait
    does) must not stop the daemon answering: with a 32-thread server, Version queued behind them."""
    from protos.gen.containerd_api.events import task_pb2
    from protos.gen.containerd_api.services.events.v1 import events_pb2, events_pb2_grpc
    from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc

    channel = daemon.channel("ns1")
    stub = events_pb2_grpc.EventsStub(channel)
    counts = [0] * 40
    streams = [stub.Subscribe(events_pb2.SubscribeRequest(filters=['topic=="/tasks/exit"'])) for _ in counts]

    def collect(i: int) -> None:
        try:
            for _ in streams[i]:
                counts[i] += 1
        except grpc.RpcError:
            pass

    readers = [threading.Thread(target=collect, args=(i,)) for i in range(len(streams))]
    for reader in readers:
        reader.start()
    try:
        # Every subscription registered (each got a thread): 40 subscribers of the exchange, seen
        # through what they receive; published until all have one, since a subscription is not
        # observable before its first event.
        exit_event = task_pb2.TaskExit(container_id="c1", id="c1", pid=42, exit_status=3)
        payload = any_pb2.Any(type_url="containerd.events.TaskExit", value=exit_event.SerializeToString())
        deadline = time.monotonic() + 30
        while min(counts) == 0 and time.monotonic() < deadline:
            stub.Publish(events_pb2.PublishRequest(topic="/tasks/exit", event=payload), timeout=10)
            time.sleep(0.2)
        assert min(counts) > 0, f"subscriptions that never received an event: {counts.count(0)}"
        version = version_pb2_grpc.VersionStub(channel).Version(empty_pb2.Empty(), timeout=10)
        assert version.version
    finally:
        for stream in streams:
            stream.cancel()
        for reader in readers:
            reader.join(timeout=10)
    assert daemon.alive()
