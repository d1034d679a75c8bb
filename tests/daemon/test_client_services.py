"""containerd/client's service wrappers (containers, tasks with exec and stdio, events, leases,
diff) against a real pycontainerd and against Debian's containerd 1.6, one test body for both.

Each engine gets its own temp root, state and socket; Docker's busybox archive is imported
and unpacked through the client. Against containerd, tasks run under its own
containerd-shim-runc-v2 and runc, told by the runc options on the container record to keep
runc's state in the test's directory. At the end no task, shim, mount or cgroup of the test
remains.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from containerd.client import (
    IO,
    AlreadyExists,
    Client,
    Container,
    ContainerdError,
    Envelope,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Payload,
    Resource,
    RuncOptions,
    Runtime,
    Status,
    Subscription,
    import_archive,
    unpack,
)
from containerd.client.events import (
    TaskCreate,
    TaskExecAdded,
    TaskExecStarted,
    TaskExit,
    TaskPaused,
    TaskStart,
)
from containerd.client.mount import temp_mount
from runtime.spec_default import default_spec
from tests.daemon.conftest import RunningDaemon, start_daemon, start_real_containerd, stop_daemon
from tests.daemon.test_tasks_ctr import BUSYBOX, IMAGE, ours
from tests.daemon.test_tasks_stubs import read_lines

NAMESPACE = "clienttest"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Engine:
    kind: str  # "pycontainerd" or "containerd"
    daemon: RunningDaemon
    client: Client
    runtime: Runtime
    top: str  # busybox's unpacked chain
    base: Path
    cgroups: list[str] = field(default_factory=list)

    def cgroup_path(self, cid: str) -> str:
        path = f"/pyclient-test-{os.getpid()}-{self.kind}-{cid}"
        self.cgroups.append(path)
        return path


def _clean_tasks(client: Client) -> None:
    """Whatever a failed test left running: killed and deleted through the API."""
    for task in client.tasks.list():
        try:
            if task.status.alive:
                client.tasks.kill(task.container_id, 9, all=True)
                client.tasks.wait(task.container_id, timeout=20)
            client.tasks.delete(task.container_id)
        except ContainerdError:
            pass
    for container in client.containers.list():
        with contextlib.suppress(ContainerdError):
            client.snapshots().remove(container.id)
        with contextlib.suppress(ContainerdError):
            client.containers.delete(container.id)


@pytest.fixture(params=["pycontainerd", "containerd"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "containerd" and not shutil.which("containerd-shim-runc-v2"):
        pytest.skip("Debian's containerd is not installed")
    # containerd's sockets must fit in sun_path: a short directory of our own, not tmp_path
    base = Path(tempfile.mkdtemp(prefix=f"cl-{os.getpid()}-", dir="/tmp"))
    # containerd's runc shim makes /run/containerd/s for its sockets, wherever containerd lives.
    made_dirs = [d for d in ("/run/containerd/s", "/run/containerd") if not os.path.exists(d)]
    if request.param == "containerd":
        daemon = start_real_containerd(base / "ctrd")
        runtime = Runtime("io.containerd.runc.v2", Payload.message(RuncOptions(root=str(base / "runc"))))
    else:
        daemon = start_daemon(base)
        runtime = Runtime("io.containerd.runc.v2")
    engine = None
    try:
        client = Client(str(daemon.address), NAMESPACE)
        image = import_archive(client, BUSYBOX)[0]
        engine = Engine(request.param, daemon, client, runtime, unpack(client, image).top, base)
        yield engine
    finally:
        if engine is not None:
            _clean_tasks(engine.client)
            engine.client.close()
        stop_daemon(daemon)
        log = daemon.log.read_text()
        mounts = [
            line.split()[4] for line in open("/proc/self/mountinfo") if line.split()[4].startswith(str(base))
        ]
        left = ours(base)
        cgroups = [c for c in (engine.cgroups if engine else []) if os.path.exists(f"/sys/fs/cgroup/pids{c}")]
        for d in made_dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass
        if not mounts:
            shutil.rmtree(base, ignore_errors=True)
    assert not mounts, f"mounts left behind: {mounts}"
    assert not left, f"processes left behind: {left}"
    assert not cgroups, f"cgroups left behind: {cgroups}"
    if request.param == "pycontainerd":
        assert "Traceback" not in log, log


def _spec(engine: Engine, cid: str, args: list[str]) -> dict[str, Any]:
    spec = default_spec()
    spec["process"].update(args=args, terminal=False)
    spec["root"] = {"path": "rootfs"}
    spec["hostname"] = cid
    spec["linux"]["cgroupsPath"] = engine.cgroup_path(cid)
    return spec


def _record(engine: Engine, cid: str, args: list[str], **fields: Any) -> Container:
    return Container.with_oci_spec(
        cid,
        _spec(engine, cid, args),
        runtime=engine.runtime,
        image=IMAGE,
        snapshotter="overlayfs",
        snapshot_key=cid,
        **fields,
    )


class _Collector:
    """Every envelope of a subscription, gathered by a thread until stop()."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.envelopes: list[Envelope] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for envelope in self.subscription:
                self.envelopes.append(envelope)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def wait_for(self, predicate: Any, timeout: float = 20) -> Envelope:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for envelope in list(self.envelopes):
                if predicate(envelope):
                    return envelope
            time.sleep(0.05)
        raise AssertionError(f"no such event; got {[e.topic for e in self.envelopes]} ({self.error})")

    def stop(self) -> None:
        self.subscription.cancel()
        self._thread.join(10)
        assert not self._thread.is_alive()
        assert self.error is None, self.error


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


class _Stdio:
    """FIFOs for a process, the output ends opened first as containerd's cio does (its shim
    waits for a reader of each output FIFO, and wants both stdout and stderr, or none)."""

    def __init__(self, base: Path, stdin: bool = False, terminal: bool = False) -> None:
        self.io = IO(
            stdin=_fifo(base.with_name(base.name + "-in")) if stdin else "",
            stdout=_fifo(base.with_name(base.name + "-out")),
            stderr="" if terminal else _fifo(base.with_name(base.name + "-err")),
            terminal=terminal,
        )
        self.out = os.open(self.io.stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.err = os.open(self.io.stderr, os.O_RDONLY | os.O_NONBLOCK) if self.io.stderr else -1

    def lines(self, count: int) -> list[str]:
        return read_lines(self.out, count)

    def write_stdin(self, data: bytes) -> None:
        writer = os.open(self.io.stdin, os.O_WRONLY)
        try:
            os.write(writer, data)
        finally:
            os.close(writer)

    def close(self) -> None:
        os.close(self.out)
        if self.err >= 0:
            os.close(self.err)


def test_task_lifecycle_exec_stdio_and_events(engine: Engine, tmp_path: Path) -> None:
    client, cid = engine.client, "life"
    events = _Collector(client.events.subscribe(f'topic~="^/tasks/",namespace=={NAMESPACE}'))
    mounts = client.snapshots().prepare(cid, engine.top)
    client.containers.create(_record(engine, cid, ["sh", "-c", "read line; echo got-$line; sleep 1000"]))
    init = _Stdio(tmp_path / "init", stdin=True)
    pid = client.tasks.create(cid, mounts, init.io)
    assert pid > 0
    try:
        assert client.tasks.start(cid) == pid
        init.write_stdin(b"hello\n")
        assert init.lines(1) == ["got-hello"]
    finally:
        init.close()
    task = client.tasks.get(cid)
    assert (task.container_id, task.exec_id, task.pid, task.status) == (cid, "", pid, Status.RUNNING)
    assert task.io.stdin == init.io.stdin and task.io.stdout == init.io.stdout
    assert [t.container_id for t in client.tasks.list()] == [cid]

    # An exec: the process spec as a dict, its own stdio, its exit through wait and delete.
    process = {
        "args": ["sh", "-c", "echo exec-$((6*7)); exit 4"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
    }
    x1 = _Stdio(tmp_path / "x1")
    client.tasks.exec(cid, "x1", process, x1.io)
    try:
        exec_pid = client.tasks.start(cid, "x1")
        assert x1.lines(1) == ["exec-42"]
    finally:
        x1.close()
    assert client.tasks.wait(cid, "x1").status == 4
    assert client.tasks.delete_process(cid, "x1").status == 4
    with pytest.raises(NotFound):
        client.tasks.get(cid, "x1")

    # close_io: an exec reading stdin to its end sees EOF once the client closes it.
    cat = _Stdio(tmp_path / "cat", stdin=True)
    client.tasks.exec(cid, "cat", {**process, "args": ["sh", "-c", "cat; echo eof-seen"]}, cat.io)
    try:
        client.tasks.start(cid, "cat")
        cat.write_stdin(b"abc\n")
        client.tasks.close_io(cid, exec_id="cat")
        assert cat.lines(2) == ["abc", "eof-seen"]
    finally:
        cat.close()
    assert client.tasks.wait(cid, "cat").status == 0
    client.tasks.delete_process(cid, "cat")

    # resize_pty: a terminal exec sees the size the client set.
    tty = _Stdio(tmp_path / "tty", terminal=True)
    client.tasks.exec(
        cid, "tty", {**process, "args": ["sh", "-c", "sleep 1; stty size"], "terminal": True}, tty.io
    )
    try:
        client.tasks.start(cid, "tty")
        client.tasks.resize_pty(cid, 100, 30, exec_id="tty")
        assert tty.lines(1) == ["30 100"]
    finally:
        tty.close()
    assert client.tasks.wait(cid, "tty").status == 0
    client.tasks.delete_process(cid, "tty")

    assert pid in [p.pid for p in client.tasks.pids(cid)]
    client.tasks.pause(cid)
    assert client.tasks.get(cid).status == Status.PAUSED
    client.tasks.resume(cid)
    assert client.tasks.get(cid).status == Status.RUNNING

    [metric] = client.tasks.metrics(f"id=={cid}")
    stats = metric.cgroups_v1()
    assert metric.container_id == cid and stats is not None and metric.timestamp > 0
    assert stats.pids.current >= 1 and stats.memory.usage.usage > 0
    client.tasks.update(cid, {"pids": {"limit": 42}})
    cgroup = f"/sys/fs/cgroup/pids{engine.cgroups[0]}/pids.max"
    assert open(cgroup).read().strip() == "42"

    # Deleting a running task is refused: containerd says so as UNKNOWN ("cannot delete a running
    # process"), pycontainerd as FailedPrecondition; a client can only rely on the refusal.
    with pytest.raises(
        FailedPrecondition if engine.kind == "pycontainerd" else ContainerdError, match="running"
    ):
        client.tasks.delete(cid)
    client.tasks.kill(cid, 9)
    exited = client.tasks.wait(cid)
    assert exited.status == 137 and exited.exited_at > 0
    deleted = client.tasks.delete(cid)
    assert (deleted.status, deleted.pid) == (137, pid)
    with pytest.raises(NotFound):
        client.tasks.get(cid)
    client.snapshots().remove(cid)
    client.containers.delete(cid)

    # The events of all that, decoded to containerd's own event types.
    init_exit = events.wait_for(lambda e: e.topic == "/tasks/exit" and e.unpack(TaskExit).id == cid)
    events.wait_for(lambda e: e.topic == "/tasks/delete")
    events.stop()
    assert init_exit.namespace == NAMESPACE and init_exit.timestamp > 0
    assert init_exit.unpack(TaskExit).exit_status == 137 and init_exit.unpack(TaskExit).pid == pid
    decoded = {e.topic: e.decode() for e in events.envelopes}
    assert isinstance(decoded["/tasks/create"], TaskCreate) and decoded["/tasks/create"].pid == pid
    assert isinstance(decoded["/tasks/start"], TaskStart)
    assert isinstance(decoded["/tasks/paused"], TaskPaused)
    added = [e.unpack(TaskExecAdded).exec_id for e in events.envelopes if e.topic == "/tasks/exec-added"]
    assert added == ["x1", "cat", "tty"]
    started = {
        e.unpack(TaskExecStarted).exec_id: e.unpack(TaskExecStarted).pid
        for e in events.envelopes
        if e.topic == "/tasks/exec-started"
    }
    assert started["x1"] == exec_pid
    exits = {
        e.unpack(TaskExit).id: e.unpack(TaskExit).exit_status
        for e in events.envelopes
        if e.topic == "/tasks/exit"
    }
    assert exits == {"x1": 4, "cat": 0, "tty": 0, cid: 137}


def test_task_errors(engine: Engine) -> None:
    client = engine.client
    with pytest.raises(NotFound):
        client.tasks.get("nosuch")
    with pytest.raises(NotFound):
        client.tasks.kill("nosuch", 9)
    with pytest.raises(NotFound):
        client.tasks.create("nosuch")  # no such container
    cid = "err"
    mounts = client.snapshots().prepare(cid, engine.top)
    client.containers.create(_record(engine, cid, ["/no/such/binary"]))
    with pytest.raises(ContainerdError) as failed:
        client.tasks.create(cid, mounts)
    assert "no/such/binary" in str(failed.value)
    with pytest.raises(NotFound):
        client.tasks.get(cid)  # a task that could not be created is not left behind
    client.snapshots().remove(cid)
    client.containers.delete(cid)


def test_container_records(engine: Engine) -> None:
    client = engine.client
    options = Payload.message(RuncOptions(binary_name="runc", root="/run/pyclient-test-nowhere"))
    ext = Payload("example.com/ext", b"\x01\x02")
    record = Container.with_oci_spec(
        "rec",
        {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"}},
        runtime=Runtime("io.containerd.runc.v2", options),
        image=IMAGE,
        snapshotter="overlayfs",
        snapshot_key="rec",
        labels={"test": "yes", "other": "1"},
        extensions={"ext": ext},
    )
    created = client.containers.create(record)
    assert created.created_at > 0 and created.updated_at >= created.created_at
    got = client.containers.get("rec")
    assert got == created
    assert (got.runtime, got.image, got.snapshotter, got.snapshot_key) == (
        record.runtime,
        IMAGE,
        "overlayfs",
        "rec",
    )
    assert got.runtime.options is not None and got.runtime.options.unpack(RuncOptions).binary_name == "runc"
    assert got.labels == {"test": "yes", "other": "1"} and got.extensions == {"ext": ext}
    assert got.oci_spec()["process"]["args"] == ["true"]
    with pytest.raises(AlreadyExists):
        client.containers.create(record)

    # ctr reads the same record: the wire format is containerd's
    info = json.loads(engine.daemon.ctr("containers", "info", "rec", namespace=NAMESPACE).stdout)
    assert info["Runtime"]["Name"] == "io.containerd.runc.v2" and info["SnapshotKey"] == "rec"
    assert info["Labels"] == {"test": "yes", "other": "1"} and info["Spec"]["process"]["args"] == ["true"]

    with pytest.raises(InvalidArgument):  # as containerd: a record without a spec is refused
        client.containers.create(Container("plain"))
    client.containers.create(Container.with_oci_spec("plain", {"ociVersion": "1.0.2"}))
    assert sorted(c.id for c in client.containers.list()) == ["plain", "rec"]
    assert [c.id for c in client.containers.list('labels."test"==yes')] == ["rec"]

    changed = Container.with_oci_spec(
        "rec", {"ociVersion": "1.0.2", "process": {"args": ["false"]}}, labels={"test": "no"}
    )
    updated = client.containers.update(changed, ["labels.test", "spec"])
    assert updated.labels == {"test": "no", "other": "1"} and updated.oci_spec()["process"]["args"] == [
        "false"
    ]
    assert updated.image == IMAGE and updated.updated_at > created.updated_at  # untouched fields stay
    again = client.containers.create_or_update(
        Container.with_oci_spec("rec", {"process": {"args": ["x"]}}, image="other")
    )
    assert again.image == "other" and again.labels == {"test": "no", "other": "1"}

    client.containers.delete("rec")
    client.containers.delete("plain")
    with pytest.raises(NotFound):
        client.containers.get("rec")
    with pytest.raises(NotFound):
        client.containers.delete("rec")


def test_leases_hold_content_until_deleted(engine: Engine) -> None:
    client = engine.client
    lease = client.leases.create(ttl=timedelta(hours=1), labels={"purpose": "test"})
    listed = {item.id: item for item in client.leases.list()}
    assert lease.id in listed and listed[lease.id].labels["purpose"] == "test"
    assert "containerd.io/gc.expire" in listed[lease.id].labels and lease.created_at > 0

    with client.using_lease(lease.id):
        assert client.current_lease == lease.id
        digest, written = client.content.write(b"held by a lease\n", size=16)
    assert written and client.current_lease == ""
    assert Resource(digest, "content") in client.leases.resources(lease.id)
    extra = Resource("sha256:" + "0" * 64, "content")
    client.leases.add_resource(lease.id, extra)
    assert extra in client.leases.resources(lease.id)
    client.leases.delete_resource(lease.id, extra)
    assert extra not in client.leases.resources(lease.id)

    client.leases.delete(lease.id, sync=True)  # the blob was only held by the lease: collected
    assert lease.id not in {item.id for item in client.leases.list()}
    assert not client.content.exists(digest)

    with client.lease() as scoped:  # a lease for a block, removed at its end
        assert client.current_lease == scoped and scoped in {item.id for item in client.leases.list()}
    assert scoped not in {item.id for item in client.leases.list()}
    with pytest.raises(NotFound):
        client.leases.delete(scoped)


def test_diff_compare_and_apply(engine: Engine, tmp_path: Path) -> None:
    client = engine.client
    snaps = client.snapshots()
    with client.lease():
        lower = snaps.view("lower", engine.top)
        upper = snaps.prepare("upper", engine.top)
        with temp_mount(upper, str(tmp_path)) as root:
            Path(root, "hello.txt").write_text("hi from the client\n")
            os.unlink(Path(root, "bin", "sh"))
        layer = client.diff.compare(lower, upper, media_type=LAYER_TAR)
        assert layer.media_type == LAYER_TAR and layer.size > 0
        with tarfile.open(fileobj=BytesIO(client.content.read_all(layer.digest, 1 << 20))) as tar:
            names = tar.getnames()
        assert "hello.txt" in names and "bin/.wh.sh" in names

        applied_mounts = snaps.prepare("applied", engine.top)
        applied = client.diff.apply(layer, applied_mounts)
        assert applied.digest == layer.digest  # uncompressed: the diff id is the blob's digest
        with temp_mount(applied_mounts, str(tmp_path)) as root:
            assert Path(root, "hello.txt").read_text() == "hi from the client\n"
            assert not os.path.lexists(Path(root, "bin", "sh")) and os.path.exists(
                Path(root, "bin", "busybox")
            )
        for key in ("lower", "upper", "applied"):
            snaps.remove(key)
    assert snaps.usage(engine.top).inodes > 0
    with pytest.raises(NotFound):
        snaps.usage("upper")


def test_events_publish_and_forward(engine: Engine) -> None:
    client = engine.client
    events = _Collector(client.events.subscribe(f'topic~="^/pyclient/",namespace=={NAMESPACE}'))
    # A subscription delivers only what is published after it is live: publish until one arrives.
    deadline = time.monotonic() + 20
    while not events.envelopes and time.monotonic() < deadline:
        client.events.publish("/pyclient/marker", TaskPaused(container_id="marker"), timeout=5)
        time.sleep(0.1)
    marker = events.wait_for(lambda e: e.topic == "/pyclient/marker")
    assert marker.namespace == NAMESPACE and marker.unpack(TaskPaused).container_id == "marker"
    assert isinstance(marker.decode(), TaskPaused)

    client.events.publish("/pyclient/raw", Payload("pyclient.test/opaque", b"\x00token"))
    raw = events.wait_for(lambda e: e.topic == "/pyclient/raw")
    assert raw.event == Payload("pyclient.test/opaque", b"\x00token") and raw.decode() is None

    forwarded = Envelope(
        1_600_000_000_123_456_789,
        NAMESPACE,
        "/pyclient/forwarded",
        Payload.message(TaskPaused(container_id="f")),
    )
    client.events.forward(forwarded)
    got = events.wait_for(lambda e: e.topic == "/pyclient/forwarded")
    assert got == forwarded  # its timestamp and namespace kept
    events.stop()
    with events.subscription:  # cancelling twice is harmless
        pass
