"""The tasks service: thin glue from containerd's Tasks API to the task manager and its shims."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.errors import InvalidArgument, Unimplemented
from containerd.rpc import handler, namespace_of

if TYPE_CHECKING:
    from containerd.server import Daemon

from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from protos.gen.containerd_api.types import metrics_pb2
from protos.gen.containerd_api.types.task import task_pb2


def _process_from_state(namespace: str, container_id: str, state: Any) -> Any:
    process = task_pb2.Process(
        container_id=container_id,
        id=state.exec_id or state.id or container_id,
        pid=state.pid,
        status=state.status,
        stdin=state.stdin,
        stdout=state.stdout,
        stderr=state.stderr,
        terminal=state.terminal,
        exit_status=state.exit_status,
    )
    if state.HasField("exited_at"):
        process.exited_at.CopyFrom(state.exited_at)
    return process


class TasksService(tasks_pb2_grpc.TasksServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def _task(self, context: grpc.ServicerContext, container_id: str) -> Any:
        if not container_id:
            raise InvalidArgument("container_id must be set")
        return self.daemon.tasks.get(namespace_of(context), container_id)

    @handler
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        if request.HasField("checkpoint") and request.checkpoint.digest:
            raise Unimplemented("checkpoint/restore is not supported by pycontainerd")
        task = self.daemon.tasks.create(namespace_of(context), request)
        return tasks_pb2.CreateTaskResponse(container_id=task.id, pid=task.pid)

    @handler
    def Start(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        started = task.client.start(id=request.container_id, exec_id=request.exec_id)
        return tasks_pb2.StartResponse(pid=started.pid)

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self._task(context, request.container_id)
        deleted = self.daemon.tasks.delete(ns, request.container_id)
        return tasks_pb2.DeleteResponse(
            id=request.container_id,
            pid=deleted.pid,
            exit_status=deleted.exit_status,
            exited_at=deleted.exited_at,
        )

    @handler
    def DeleteProcess(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.exec_id:
            raise InvalidArgument("exec_id must be set: delete the task itself with Delete")
        task = self._task(context, request.container_id)
        deleted = task.client.delete(id=request.container_id, exec_id=request.exec_id)
        return tasks_pb2.DeleteResponse(
            id=request.exec_id, pid=deleted.pid, exit_status=deleted.exit_status, exited_at=deleted.exited_at
        )

    @handler
    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        state = task.client.state(id=request.container_id, exec_id=request.exec_id)
        return tasks_pb2.GetResponse(process=_process_from_state(task.namespace, task.id, state))

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        processes = []
        for task in self.daemon.tasks.in_namespace(ns):
            try:
                state = task.client.state(id=task.id)
            except Exception:  # noqa: BLE001 - a task whose shim is busy dying is simply not listed
                continue
            processes.append(_process_from_state(ns, task.id, state))
        return tasks_pb2.ListTasksResponse(tasks=processes)

    @handler
    def Kill(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.kill(
            id=request.container_id, exec_id=request.exec_id, signal=request.signal, all=request.all
        )
        return empty_pb2.Empty()

    @handler
    def Exec(self, request: Any, context: grpc.ServicerContext) -> Any:
        if not request.exec_id:
            raise InvalidArgument("exec_id must be set")
        task = self._task(context, request.container_id)
        task.client.exec(
            id=request.container_id,
            exec_id=request.exec_id,
            terminal=request.terminal,
            stdin=request.stdin,
            stdout=request.stdout,
            stderr=request.stderr,
            spec=request.spec,
        )
        return empty_pb2.Empty()

    @handler
    def ResizePty(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.resize_pty(
            id=request.container_id, exec_id=request.exec_id, width=request.width, height=request.height
        )
        return empty_pb2.Empty()

    @handler
    def CloseIO(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.close_io(id=request.container_id, exec_id=request.exec_id, stdin=request.stdin)
        return empty_pb2.Empty()

    @handler
    def Pause(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.pause(id=request.container_id)
        return empty_pb2.Empty()

    @handler
    def Resume(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.resume(id=request.container_id)
        return empty_pb2.Empty()

    @handler
    def ListPids(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        pids = task.client.pids(id=request.container_id)
        return tasks_pb2.ListPidsResponse(processes=list(pids.processes))

    @handler
    def Checkpoint(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise Unimplemented("checkpoint/restore is not supported by pycontainerd")

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        task.client.update(
            id=request.container_id, resources=request.resources, annotations=dict(request.annotations)
        )
        return empty_pb2.Empty()

    @handler
    def Metrics(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.filters import parse_all

        ns = namespace_of(context)
        matcher = parse_all(list(request.filters))
        metrics = []
        for task in self.daemon.tasks.in_namespace(ns):
            if not matcher.match(functools.partial(_task_field, task.id)):
                continue
            stats = task.client.stats(id=task.id)
            metric = metrics_pb2.Metric(id=task.id)
            metric.timestamp.GetCurrentTime()
            metric.data.CopyFrom(stats.stats)
            metrics.append(metric)
        return tasks_pb2.MetricsResponse(metrics=metrics)

    @handler
    def Wait(self, request: Any, context: grpc.ServicerContext) -> Any:
        task = self._task(context, request.container_id)
        waited = task.client.wait(id=request.container_id, exec_id=request.exec_id)
        return tasks_pb2.WaitResponse(exit_status=waited.exit_status, exited_at=waited.exited_at)


def _task_field(task_id: str, path: Sequence[str]) -> str | None:
    """A task's fields as the Metrics filters name them (containerd's: id and container_id)."""
    return task_id if ".".join(path) in ("id", "container_id") else None
