"""What pycontainerd reports of a task (moby's daemon/monitor.go): its exit (the log
finished, the task deleted, the state recorded, its resources released, then removal or the
restart policy) and its OOMs. Each arrives from the containerd event listener
(dockerd/daemon.py) or live restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockerd.engine import sharing
from dockerd.engine.container import restart_policy, task
from dockerd.engine.logs import rfc3339nano
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

now = rfc3339nano


def task_exited(
    d: Containers, cid: str, exit_status: int, oom: bool = False, finished_at: str | None = None
) -> None:
    """One exit, however many report it (the event stream and live restore's listing can both)."""
    # An exit can overtake its own start (`true` ends before Tasks.Start has answered and the
    # state says running): it waits for the start to finish, as dockerd's container lock makes
    # it wait; dropped, the container would stay "Up" for ever and `run --rm` would hang.
    d.store.wait_until(lambda: cid not in d.store.starting, 120)
    with d.store.lock:
        c = d.store.find(cid)
        if c is None or not c.running() or cid in d.store.exiting:
            return
        d.store.exiting.add(cid)
    unplugged = d.networking.unplug(cid)  # the kernel's share of the release, meanwhile
    try:
        copiers = d.stdio.take_copiers(cid)
        if copiers is None:  # exited before a restarted daemon adopted it: what the shim kept goes to the log
            copiers = d.stdio.start_copiers(c, d.stdio.output_fifos(c), adopt=True)
        for copier in copiers:
            copier.finish()
        # Only now: deleting the task makes the shim drop the output it still holds (spooled
        # while the FIFO was full), and the copiers end once it has delivered everything.
        deleted_status = task.delete_quietly(d.client, cid)
        if deleted_status is not None:  # (else removal asks again: pycontainerd may have been away)
            with d.store.lock:
                d.store.tasks_deleted.add(cid)
        status = deleted_status if deleted_status is not None else exit_status
        d.stdio.close_log(c)
        with d.store.lock:
            c.state.update(
                Status="exited",
                Running=False,
                Paused=False,
                Pid=0,
                ExitCode=status,
                FinishedAt=finished_at or now(),
            )
            if oom:
                c.state["OOMKilled"] = True
            # Restarting is set with the exit, in one step: no one (prune, rm, wait) may see a
            # container its policy restarts as plainly stopped.
            restart = not c.host_config.get("AutoRemove") and restart_policy.mark_restarting(c)
            d.store.record_stop(cid, status, str(c.state.get("Error") or ""))
            d.store.save(c)
            d.store.notify()
        d.health.stopped(cid)
        d.publish("container", "die", cid, {"exitCode": str(status), "image": c.image_ref, "name": c.name})
        # As dockerd's exit handling: the stop is recorded (a `docker stop` or `wait` returns)
        # before the container's resources are released (20-100 ms: veths, rules, mounts);
        # start and remove wait for the release (`exiting`), as dockerd's container lock has them.
        sharing.unmount_shm(d.store.dir(cid))
        unplugged()
        d.networking.release(cid)  # addresses, ports, veths, namespace (engine/network.py)
        lifecycle.teardown(d, c)  # the task is gone: its volume mounts are released
    finally:
        unplugged()
        with d.store.lock:
            d.store.exiting.discard(cid)
            d.store.notify()
    if c.host_config.get("AutoRemove"):
        d.remove(cid, force=True, volumes=True)  # --rm takes its anonymous volumes, as dockerd
        return
    if restart:
        restart_policy.schedule(d, c)


def mark_oom(d: Containers, cid: str) -> None:
    """A /tasks/oom event: the container's OOMKilled, and Docker's oom event."""
    with d.store.lock:
        c = d.store.find(cid)
        if c is not None:
            c.state["OOMKilled"] = True
            d.store.save(c)
    d.publish("container", "oom", cid, {})
