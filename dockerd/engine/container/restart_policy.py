"""Restart policies (moby's restartmanager): no, always, on-failure[:N], unless-stopped, with
Docker's back-off (100 ms doubling up to a minute) and what a daemon start restarts."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from dockerd.engine.container import start
from dockerd.engine.container.state import Container

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def maybe_restart(d: Containers, c: Container) -> None:
    """Restart C if its policy says so (after live restore found it stopped)."""
    with d.store.lock:
        restart = mark_restarting(c)
        if restart:
            d.store.save(c)
    if restart:
        schedule(d, c)


def mark_restarting(c: Container) -> bool:
    """Under the lock: whether the restart policy restarts `c` now; if so it is marked restarting."""
    policy = c.host_config.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    code = c.state.get("ExitCode", 0)
    if c.manually_stopped or name == "no":
        return False
    if name == "on-failure":
        if code == 0:
            return False
        limit = int(policy.get("MaximumRetryCount") or 0)
        if limit and c.restart_count >= limit:
            return False
    c.state["Restarting"] = True
    c.restart_count += 1
    return True


def schedule(d: Containers, c: Container) -> None:
    """Start C again after Docker's back-off, in a thread of its own, unless it is stopped or
    removed meanwhile."""
    delay = min(0.1 * (2 ** (c.restart_count - 1)), 60.0)  # Docker doubles from 100 ms, up to a minute

    def later() -> None:
        time.sleep(delay)
        d.restored.wait()  # a daemon start's restore releases stale sandboxes first (backend.restore)
        with d.store.lock:
            if c.id not in d.store or c.manually_stopped or c.removal_in_progress:
                c.state["Restarting"] = False
                if c.id in d.store:
                    d.store.save(c)
                d.store.notify()
                return
            d.store.restarting_now.add(c.id)  # remove() waits for it: no task may outlive the container
        try:
            start.run(d, c)
        except Exception as exc:  # noqa: BLE001 - a failed restart is recorded, not fatal
            with d.store.lock:
                c.state.update(Restarting=False, Error=str(exc))
                if c.id in d.store:
                    d.store.save(c)
        finally:
            with d.store.lock:
                d.store.restarting_now.discard(c.id)
                d.store.notify()

    threading.Thread(target=later, daemon=True, name=f"restart-{c.id[:12]}").start()


def restarts_at_boot(c: Container) -> bool:
    """dockerd's restore: a container started before restarts at daemon start when its policy
    says so with a fresh restart manager (`docker stop` cancelled only the old one): always
    (even if stopped by hand), unless-stopped if not stopped by hand, on-failure after a
    failure (within its retry count); and the back-off the daemon died in is finished."""
    if c.removal_in_progress or not c.has_been_started:
        return False
    name = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
    if name == "always":
        return True
    if c.manually_stopped:
        return False
    if name == "on-failure":
        return int(c.state.get("ExitCode") or 0) != 0
    return name == "unless-stopped" or bool(c.state.get("Restarting"))
