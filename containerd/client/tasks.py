"""The tasks service: a container's running part, its init process (exec id "") and the
processes exec'd into it.

Stdio is by path, as containerd's: the client makes FIFOs (or names files) and hands their
paths to create/exec; the shim opens them. For containerd's own runc shim the client opens
its end of each output FIFO first (the shim waits for a reader) and gives stdout and stderr
both or neither (unless the process has a terminal); pycontainerd's shim has neither need. Exits arrive as `/tasks/exit` events (see
containerd.client.events) or through wait(); delete() reaps the task and returns its exit.
"""

from __future__ import annotations

import builtins
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from containerd.client.mount import Mount
from containerd.client.snapshots import mount_to_pb
from containerd.client.typeurl import PROCESS_TYPE, RESOURCES_TYPE, Payload
from protos.gen.containerd_api.cgroups.stats.v1 import metrics_pb2 as cgroups_v1
from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2 as pb
from protos.gen.containerd_api.types.task import task_pb2

if TYPE_CHECKING:
    from containerd.client.client import Client

CgroupsV1Metrics = cgroups_v1.Metrics


class Status(enum.Enum):
    """A process's state (containerd.v1.types.Status)."""

    UNKNOWN = task_pb2.UNKNOWN
    CREATED = task_pb2.CREATED
    RUNNING = task_pb2.RUNNING
    STOPPED = task_pb2.STOPPED
    PAUSED = task_pb2.PAUSED
    PAUSING = task_pb2.PAUSING

    @property
    def alive(self) -> bool:
        """Created, running or (being) paused: it has a live pid."""
        return self in (Status.CREATED, Status.RUNNING, Status.PAUSED, Status.PAUSING)


@dataclass(frozen=True)
class IO:
    """The paths the process's stdio goes to ("" for none); `terminal`: one pty on stdout."""

    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    terminal: bool = False


@dataclass(frozen=True)
class Process:
    """A task's init (exec_id "") or an exec'd process, as the daemon reports it."""

    container_id: str
    exec_id: str
    pid: int
    status: Status
    io: IO
    exit_status: int = 0
    exited_at: int = 0  # ns since the epoch; 0 while it runs


@dataclass(frozen=True)
class Exit:
    """How a process ended: its status (128 + signal for a killed one) and when."""

    status: int
    exited_at: int = 0  # ns since the epoch
    pid: int = 0


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    info: Payload | None = None  # runtime-specific details (runc: containerd.runc.v1.ProcessDetails)


@dataclass(frozen=True)
class Metric:
    container_id: str
    timestamp: int  # ns since the epoch
    data: Payload | None

    def cgroups_v1(self) -> cgroups_v1.Metrics | None:
        """The cgroup v1 statistics inside, if that is what the runtime reported."""
        if (
            self.data is None
            or self.data.type_url.rsplit("/", 1)[-1] != cgroups_v1.Metrics.DESCRIPTOR.full_name
        ):
            return None
        return self.data.unpack(cgroups_v1.Metrics)


def _status(value: int) -> Status:
    try:
        return Status(value)
    except ValueError:
        return Status.UNKNOWN


def _process(msg: task_pb2.Process, container_id: str = "") -> Process:
    # containerd leaves container_id empty and names the init by the container's id.
    container_id = msg.container_id or container_id or msg.id
    return Process(
        container_id=container_id,
        exec_id=msg.id if msg.id != container_id else "",
        pid=int(msg.pid),
        status=_status(msg.status),
        io=IO(msg.stdin, msg.stdout, msg.stderr, msg.terminal),
        exit_status=int(msg.exit_status),
        exited_at=int(msg.exited_at.ToNanoseconds()),
    )


def _payload(value: Payload | Mapping[str, Any], type_url: str) -> Payload:
    return value if isinstance(value, Payload) else Payload.json(type_url, value)


class Tasks:
    def __init__(self, client: Client) -> None:
        self.client = client

    # --- the init process --------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        rootfs: Sequence[Mount] = (),
        io: IO = IO(),
        *,
        options: Payload | None = None,
        runtime_path: str = "",
    ) -> int:
        """Create the container's task (its init, not yet started) on ROOTFS, the snapshot's
        mounts (none: the spec's root is used as it is); returns the init's pid."""
        req = pb.CreateTaskRequest(
            container_id=container_id,
            rootfs=[mount_to_pb(m) for m in rootfs],
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
            runtime_path=runtime_path,
        )
        if options is not None:
            req.options.CopyFrom(options.to_pb())
        return int(self.client.call(self.client.api.tasks.Create, req).pid)

    def start(self, container_id: str, exec_id: str = "") -> int:
        """Start the init (or the exec EXEC_ID); returns its pid."""
        req = pb.StartRequest(container_id=container_id, exec_id=exec_id)
        return int(self.client.call(self.client.api.tasks.Start, req).pid)

    def delete(self, container_id: str) -> Exit:
        """Remove the task once its init has exited (FailedPrecondition while it runs)."""
        resp = self.client.call(self.client.api.tasks.Delete, pb.DeleteTaskRequest(container_id=container_id))
        return Exit(int(resp.exit_status), int(resp.exited_at.ToNanoseconds()), int(resp.pid))

    def get(self, container_id: str, exec_id: str = "") -> Process:
        req = pb.GetRequest(container_id=container_id, exec_id=exec_id)
        return _process(self.client.call(self.client.api.tasks.Get, req).process, container_id)

    def list(self, filter: str = "") -> list[Process]:
        """Every task of the namespace (their init processes)."""
        resp = self.client.call(self.client.api.tasks.List, pb.ListTasksRequest(filter=filter))
        return [_process(t) for t in resp.tasks]

    def kill(self, container_id: str, signal: int, *, exec_id: str = "", all: bool = False) -> None:
        """Signal the init (or an exec); `all`: every process of the container."""
        req = pb.KillRequest(container_id=container_id, exec_id=exec_id, signal=signal, all=all)
        self.client.call(self.client.api.tasks.Kill, req)

    def wait(self, container_id: str, exec_id: str = "", *, timeout: float | None = None) -> Exit:
        """Block until the process exits (no deadline unless TIMEOUT seconds are given)."""
        req = pb.WaitRequest(container_id=container_id, exec_id=exec_id)
        resp = self.client.call(self.client.api.tasks.Wait, req, no_deadline=timeout is None, timeout=timeout)
        return Exit(int(resp.exit_status), int(resp.exited_at.ToNanoseconds()))

    def pause(self, container_id: str) -> None:
        self.client.call(self.client.api.tasks.Pause, pb.PauseTaskRequest(container_id=container_id))

    def resume(self, container_id: str) -> None:
        self.client.call(self.client.api.tasks.Resume, pb.ResumeTaskRequest(container_id=container_id))

    # --- exec'd processes --------------------------------------------------------------------

    def exec(
        self, container_id: str, exec_id: str, process: Payload | Mapping[str, Any], io: IO = IO()
    ) -> None:
        """Add a process (an OCI runtime-spec Process, as a dict or packed) to the running
        task; start() then starts it."""
        req = pb.ExecProcessRequest(
            container_id=container_id,
            exec_id=exec_id,
            stdin=io.stdin,
            stdout=io.stdout,
            stderr=io.stderr,
            terminal=io.terminal,
        )
        req.spec.CopyFrom(_payload(process, PROCESS_TYPE).to_pb())
        self.client.call(self.client.api.tasks.Exec, req)

    def delete_process(self, container_id: str, exec_id: str) -> Exit:
        """Remove an exec'd process once it has exited."""
        req = pb.DeleteProcessRequest(container_id=container_id, exec_id=exec_id)
        resp = self.client.call(self.client.api.tasks.DeleteProcess, req)
        return Exit(int(resp.exit_status), int(resp.exited_at.ToNanoseconds()), int(resp.pid))

    # --- stdio -------------------------------------------------------------------------------

    def resize_pty(self, container_id: str, width: int, height: int, *, exec_id: str = "") -> None:
        req = pb.ResizePtyRequest(container_id=container_id, exec_id=exec_id, width=width, height=height)
        self.client.call(self.client.api.tasks.ResizePty, req)

    def close_io(self, container_id: str, *, exec_id: str = "", stdin: bool = True) -> None:
        """Close the process's stdin (its reader then sees EOF)."""
        req = pb.CloseIORequest(container_id=container_id, exec_id=exec_id, stdin=stdin)
        self.client.call(self.client.api.tasks.CloseIO, req)

    # --- inspection and resources ------------------------------------------------------------

    def pids(self, container_id: str) -> builtins.list[ProcessInfo]:
        """Every process in the container (its cgroup), the init and execs included."""
        resp = self.client.call(self.client.api.tasks.ListPids, pb.ListPidsRequest(container_id=container_id))
        return [ProcessInfo(int(p.pid), Payload.from_pb(p.info)) for p in resp.processes]

    def metrics(self, *filters: str) -> builtins.list[Metric]:
        """Statistics of the tasks matching containerd's filters (`id==<container>`), all if none."""
        resp = self.client.call(self.client.api.tasks.Metrics, pb.MetricsRequest(filters=list(filters)))
        return [Metric(m.id, int(m.timestamp.ToNanoseconds()), Payload.from_pb(m.data)) for m in resp.metrics]

    def update(
        self,
        container_id: str,
        resources: Payload | Mapping[str, Any] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """Change a running task's resources (an OCI LinuxResources, as a dict or packed)."""
        req = pb.UpdateTaskRequest(container_id=container_id, annotations=dict(annotations or {}))
        if resources is not None:
            req.resources.CopyFrom(_payload(resources, RESOURCES_TYPE).to_pb())
        self.client.call(self.client.api.tasks.Update, req)
