"""Live restore: at daemon start, and whenever the event stream from pycontainerd comes back,
the container records are compared with pycontainerd's tasks. Tasks that kept running are
adopted (their output copied again), exits that happened while nobody listened are
recorded, and restart policies resume (moby's daemon.restore)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from containerd.client import ContainerdError, Process, Status
from dockerd.engine.container import monitor, restart_policy
from dockerd.engine.container.state import Container
from dockerd.engine.container.task import timestamp_text
from dockerd.engine.logs import rfc3339nano
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

log = logging.getLogger("pydockerd.containers")


def restore(d: Containers) -> None:
    """At daemon start (live restore): adopt the tasks that kept running, record the exits
    that happened while the daemon was down, and resume restart policies."""
    lifecycle.restore(d)  # volume references and mounts first: an exit found below releases them
    known = _running_pids(d)
    tasks = _list_tasks(d)
    if tasks is None:
        return
    for c in d.all():
        process = tasks.get(c.id)
        live = process if process is not None and process.status in (Status.RUNNING, Status.PAUSED) else None
        if c.id in known:
            if live is None:
                _exited_meanwhile(d, c, process, known[c.id])
            else:
                _adopt(d, c, live)
        elif live is not None and not c.running() and c.id not in d.store.exiting:
            # Started, but the daemon died before it recorded so.
            _adopt(d, c, live)
        elif not c.running() and restart_policy.restarts_at_boot(c):
            c.state["Restarting"] = False  # the back-off it was in died with the daemon
            c.manually_stopped = False  # (an `always` container stopped by hand starts again too)
            restart_policy.maybe_restart(d, c)
        d.health.restored(c)


def reconcile(d: Containers) -> None:
    """pycontainerd (re)connected: exits its event stream delivered while nobody listened
    are lost, so compare the running containers with its tasks."""
    known = _running_pids(d)
    tasks = _list_tasks(d)
    if tasks is None:
        return
    for cid, pid in known.items():
        process = tasks.get(cid)
        c = d.store.find(cid)
        if c is not None and (process is None or process.status == Status.STOPPED):
            _exited_meanwhile(d, c, process, pid)


def _running_pids(d: Containers) -> dict[str, int]:
    # Taken before the task listing: a container started after it is not mistaken for one
    # whose task vanished (its pid differs from the one noted here).
    with d.store.lock:
        return {c.id: int(c.state.get("Pid") or 0) for c in d.store.all() if c.running()}


def _list_tasks(d: Containers) -> dict[str, Process] | None:
    try:
        return {p.container_id: p for p in d.client.tasks.list()}
    except ContainerdError as exc:
        log.warning("cannot list tasks for live restore: %s", exc)
        return None


def _exited_meanwhile(d: Containers, c: Container, process: Process | None, pid: int) -> None:
    with d.store.lock:
        if not c.running() or int(c.state.get("Pid") or 0) != pid:
            return  # already recorded, or started again since the listing
    if process is None:
        # The task is gone with its exit status (its shim died): dockerd reports 255.
        monitor.task_exited(d, c.id, 255)
    else:
        monitor.task_exited(d, c.id, process.exit_status, finished_at=timestamp_text(process.exited_at))


def _adopt(d: Containers, c: Container, process: Process) -> None:
    paused = process.status == Status.PAUSED
    with d.store.lock:
        if not c.running():
            c.state.update(
                Status="running", Running=True, Restarting=False, Pid=process.pid,
                StartedAt=c.state.get("StartedAt") or rfc3339nano(),
            )  # fmt: skip
            c.has_been_started = True
        c.state.update(Paused=paused, Pid=process.pid)
        d.store.save(c)
        if d.stdio.has_copiers(c.id):
            return
        d.stdio.set_copiers(c.id, d.stdio.start_copiers(c, d.stdio.output_fifos(c), adopt=True))
        d.store.notify()
