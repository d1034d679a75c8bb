"""The shim's own protobuf codec and ttrpc framing against the real thing.

The shim never imports protobuf; these tests hold its field tables to the generated
classes (both directions), and hold pycontainerd's ttrpc client to containerd's own shim
(containerd-shim-runc-v2 from the Debian package).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2
from google.protobuf.descriptor import Descriptor

import ttrpc
from containerd import errors
from containerd.shim_client import ShimClient, TtrpcClient
from protos.gen.containerd_api.cgroups.stats.v1 import metrics_pb2
from protos.gen.containerd_api.cgroups.stats.v2 import metrics_pb2 as metrics_v2_pb2
from protos.gen.containerd_api.runtime.task.v2 import shim_events_pb2, shim_pb2
from protos.gen.containerd_api.types.task import task_pb2
from shim import messages as m
from tests.shim.conftest import DEFAULT_ROOTFS, RUNC, FifoReader, Lab, pid_alive, wait_for
from ttrpc.wire import FIXED64, INT, MESSAGE, STRING, UINT, WireError, decode, encode, timestamp


def test_requests_encode_like_protobuf() -> None:
    values = {
        "id": "c1",
        "bundle": "/run/b",
        "rootfs": [{"type": "overlay", "source": "overlay", "options": ["lowerdir=/a:/b", "upperdir=/u"]}],
        "terminal": True,
        "stdout": "/fifo/out",
        "options": {"type_url": "x.y/Z", "value": b"\x00\x01"},
        "oom_path": "",
    }
    parsed = shim_pb2.CreateTaskRequest()
    parsed.ParseFromString(encode(m.CREATE_TASK_REQUEST, values))
    assert (
        parsed.id == "c1" and parsed.bundle == "/run/b" and parsed.terminal and parsed.stdout == "/fifo/out"
    )
    assert list(parsed.rootfs[0].options) == ["lowerdir=/a:/b", "upperdir=/u"]
    assert parsed.options.type_url == "x.y/Z" and parsed.options.value == b"\x00\x01"
    # Same bytes as protobuf's own serialization (fields in number order, defaults omitted).
    assert parsed.SerializeToString() == encode(m.CREATE_TASK_REQUEST, values)


def test_responses_decode_what_protobuf_writes() -> None:
    state = shim_pb2.StateResponse(
        id="c1", pid=4242, status=task_pb2.Status.STOPPED, exit_status=137, terminal=True, exec_id="e"
    )
    state.exited_at.FromNanoseconds(1_700_000_000_123_456_789)
    decoded = decode(m.STATE_RESPONSE, state.SerializeToString())
    assert decoded == {
        "id": "c1",
        "pid": 4242,
        "status": 3,
        "terminal": True,
        "exit_status": 137,
        "exited_at": timestamp(1_700_000_000_123_456_789),
        "exec_id": "e",
    }
    # Repeated numbers: packed by protobuf, read either way; unknown fields are skipped.
    metrics = metrics_pb2.Metrics()
    metrics.cpu.usage.per_cpu.extend([1, 2**40, 3])
    metrics.rdma.current.add(device="mlx")  # a field the shim's table leaves out
    metrics.pids.current = 9
    decoded = decode(m.METRICS_V1, metrics.SerializeToString())
    assert decoded["cpu"]["usage"]["per_cpu"] == [1, 2**40, 3]
    assert decoded["pids"] == {"current": 9}
    assert "rdma" not in decoded


def _schema_matches(schema: tuple[Any, ...], descriptor: Descriptor, where: str) -> None:
    """Every field of SCHEMA is the descriptor's field of that number: name, repeatedness, kind."""
    by_number = {f.number: f for f in descriptor.fields}
    for field in schema:
        number, name, kind = field[:3]
        proto = by_number[number]
        assert proto.name == name, f"{where}.{name}: protobuf calls field {number} {proto.name}"
        repeated = isinstance(kind, list)
        assert proto.is_repeated == repeated, f"{where}.{name}: repeated?"
        kind = kind[0] if repeated else kind
        if kind == MESSAGE:
            assert proto.message_type is not None, f"{where}.{name} is not a message"
            _schema_matches(field[3], proto.message_type, f"{where}.{name}")
        else:
            expected = {UINT: (proto.TYPE_UINT64, proto.TYPE_UINT32), STRING: (proto.TYPE_STRING,)}[kind]
            assert proto.type in expected, f"{where}.{name}: type {proto.type}"


def test_cgroup_metrics_tables_are_containerds() -> None:
    _schema_matches(m.METRICS_V1, metrics_pb2.Metrics.DESCRIPTOR, "v1")
    _schema_matches(m.METRICS_V2, metrics_v2_pb2.Metrics.DESCRIPTOR, "v2")
    # every v2 field the shim fills, through protobuf and back
    values = {
        "pids": {"current": 3, "limit": 2**64 - 1},
        "cpu": {
            "usage_usec": 10,
            "user_usec": 7,
            "system_usec": 3,
            "nr_periods": 1,
            "nr_throttled": 1,
            "throttled_usec": 2,
        },
        "memory": {
            **{k: i + 1 for i, k in enumerate(m.MEMORY_STAT_V2_KEYS)},
            "usage": 5,
            "usage_limit": 2**64 - 1,
        },
        "io": {"usage": [{"major": 8, "minor": 1, "rbytes": 1, "wbytes": 2, "rios": 3, "wios": 4}]},
        "hugetlb": [{"current": 0, "max": 4096, "pagesize": "2MB"}],
        "memory_events": {"low": 1, "high": 2, "max": 3, "oom": 4, "oom_kill": 5},
    }
    parsed = metrics_v2_pb2.Metrics.FromString(encode(m.METRICS_V2, values))
    assert parsed.pids.limit == 2**64 - 1 and parsed.cpu.throttled_usec == 2
    assert parsed.memory.thp_collapse_alloc == len(m.MEMORY_STAT_V2_KEYS) and parsed.memory.usage == 5
    assert parsed.io.usage[0].wios == 4 and parsed.hugetlb[0].pagesize == "2MB"
    assert parsed.memory_events.oom_kill == 5
    assert decode(m.METRICS_V2, parsed.SerializeToString()) == {
        **values,
        "hugetlb": [{"max": 4096, "pagesize": "2MB"}],  # proto3: a zero is not written
    }


def test_signed_and_large_numbers_round_trip() -> None:
    schema = ((1, "a", INT), (2, "b", UINT), (3, "c", FIXED64))
    for values in ({"a": -1, "b": 2**64 - 1, "c": 2**63}, {"a": -(2**63), "b": 1, "c": 1}, {"a": 2**63 - 1}):
        assert decode(schema, encode(schema, values)) == values
    with pytest.raises(WireError):
        decode(m.STATE_RESPONSE, b"\x0a\x05ab")  # a string that runs past the end
    with pytest.raises(WireError):
        decode(m.STATE_RESPONSE, b"\x18" + b"\xff" * 11)  # a varint that never ends


def test_events_are_containerd_messages() -> None:
    raw = encode(
        m.SHIM_EVENT,
        {
            "seq": 5,
            "topic": "/tasks/exit",
            "event": {"type_url": "containerd.events.TaskExit", "value": b"\x0a\x01x"},
        },
    )
    event = shim_events_pb2.ShimEvent()
    event.ParseFromString(raw)
    assert (event.seq, event.topic, event.event.type_url) == (5, "/tasks/exit", "containerd.events.TaskExit")


def test_frames_split_and_join() -> None:
    frames = ttrpc.frame(1, ttrpc.TYPE_REQUEST, b"abc") + ttrpc.frame(3, ttrpc.TYPE_REQUEST, b"", flags=2)
    assert frames[:10] == b"\x00\x00\x00\x03\x00\x00\x00\x01\x01\x00"
    reader = ttrpc.FrameReader()
    got = []
    for i in range(len(frames)):  # byte by byte: frames come out whole, in order
        got += reader.feed(frames[i : i + 1])
    assert got == [(1, 1, 0, b"abc"), (3, 1, 2, b"")]
    with pytest.raises(ttrpc.ProtocolError):
        reader.feed((5 << 20).to_bytes(4, "big") + b"\x00" * 6)


def test_protocol_errors_do_not_hurt_the_shim(lab: Lab) -> None:
    task = lab.task(["true"])
    path = task.address[len("unix://") :]
    raw = TtrpcClient(task.address)
    with pytest.raises(errors.Unimplemented, match="/containerd.task.v2.Task/Frobnicate"):
        raw.call("containerd.task.v2.Task", "Frobnicate", b"")
    with pytest.raises(errors.InvalidArgument, match="malformed"):
        raw.call("containerd.task.v2.Task", "State", b"\x0a\x09short")
    raw.close()
    # Garbage and an oversized header: the shim drops that connection and serves the next.
    for junk in (b"\xff" * 64, (64 << 20).to_bytes(4, "big") + b"\x00\x00\x00\x01\x01\x00"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(junk)
        sock.settimeout(5)
        assert sock.recv(100) == b""
        sock.close()
    # One client shared by many threads: every answer reaches its own caller.
    client = task.client()
    failures: list[str] = []

    def hammer(n: int) -> None:
        for i in range(25):
            exec_id = f"x{n}-{i}"
            try:
                client.state(id=task.id, exec_id=exec_id)
                failures.append(f"{exec_id}: no error")
            except errors.NotFound as exc:
                if exec_id not in str(exc):
                    failures.append(f"{exec_id}: answered with {exc}")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert client.connect(id=task.id).shim_pid == task.shim_pid
    client.shutdown(id=task.id)
    wait_for(lambda: not pid_alive(task.shim_pid), what="the shim to exit")


@pytest.mark.skipif(not shutil.which("containerd-shim-runc-v2"), reason="containerd's shim is not installed")
def test_client_drives_containerds_own_shim(tmp_path: Path) -> None:
    """pycontainerd's ttrpc client against containerd-shim-runc-v2: the wire contract is containerd's."""
    cid = f"ref{os.getpid()}"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(DEFAULT_ROOTFS, bundle / "rootfs", symlinks=True)
    from runtime.spec_default import default_spec

    spec = default_spec()
    spec["process"].update(terminal=False, args=["sh", "-c", "echo hello from runc; exit 4"])
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["linux"]["cgroupsPath"] = f"/pydocker-shimtest-{cid}"
    (bundle / "config.json").write_text(json.dumps(spec))
    os.mkfifo(bundle / "log")  # the shim logs into this FIFO, which containerd reads
    log_reader = os.open(bundle / "log", os.O_RDONLY | os.O_NONBLOCK)
    stdout, stderr = tmp_path / "out", tmp_path / "err"
    os.mkfifo(stdout)
    os.mkfifo(stderr)
    out, err = FifoReader(stdout), FifoReader(stderr)
    sock_path = str(tmp_path / "ref.sock")
    # containerd's shim makes /run/containerd/s even when told where its socket goes.
    made_dirs = [d for d in ("/run/containerd/s", "/run/containerd") if not os.path.exists(d)]
    runc_root = tmp_path / "runc-root"
    started = subprocess.run(
        ["containerd-shim-runc-v2", "-namespace", "shimtest", "-address", str(tmp_path / "none.sock"),
         "-publish-binary", "/bin/true", "-id", cid, "-socket", sock_path, "start"],
        cwd=bundle, capture_output=True, timeout=30,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    address = started.stdout.decode().strip()
    client = ShimClient(address)
    shim_pid = client.connect(id=cid).shim_pid
    try:
        # containerd.runc.v1.Options{root: ...} keeps runc's state in the temp dir.
        options = any_pb2.Any(
            type_url="containerd.runc.v1.Options",
            value=encode(((7, "root", STRING),), {"root": str(runc_root)}),
        )
        pid = client.create(
            id=cid, bundle=str(bundle), stdout=str(stdout), stderr=str(stderr), options=options
        ).pid
        assert client.start(id=cid).pid == pid
        assert client.wait(id=cid).exit_status == 4
        assert out.read_to_eof() == b"hello from runc\n"
        with pytest.raises(errors.NotFound):
            client.kill(id=cid, signal=signal.SIGKILL)
        assert client.delete(id=cid).exit_status == 4
        client.shutdown(id=cid)
        wait_for(lambda: not pid_alive(shim_pid), what="containerd's shim to exit")
    finally:
        client.close()
        out.close()
        err.close()
        os.close(log_reader)
        if pid_alive(shim_pid):
            os.kill(shim_pid, signal.SIGKILL)
        subprocess.run([RUNC, "--root", str(runc_root), "delete", "--force", cid], capture_output=True)
        for d in made_dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass
