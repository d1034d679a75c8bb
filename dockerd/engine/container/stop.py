"""POST /containers/{id}/stop, /kill and /restart, and signals as dockerd parses them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dockerd.engine.container import start, task
from dockerd.engine.errors import Conflict, InvalidParameter, NotFound, NotModified

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container


def kill(d: Containers, ref: str, signal: int) -> None:
    """POST /containers/{id}/kill."""
    try:
        c = d.get(ref)
    except NotFound as exc:
        raise NotFound(f"Cannot kill container: {ref}: {exc}") from None  # dockerd wraps every kill error
    check_signal(signal, ref)
    if _cancel_restart(d, c) and not c.running():
        return  # between two runs: dockerd's kill only cancels the pending restart
    if not c.running():
        raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
    if signal in (9, 15):
        c.manually_stopped = True
    d.client.tasks.kill(c.id, signal, all=False)
    d.publish("container", "kill", c.id, {"signal": str(signal), "name": c.name})
    if signal == 9:
        # As dockerd's Kill: a SIGKILL returns once the exit is recorded (inspect right after shows it).
        d.store.wait_until(lambda: not c.running(), 30)


def stop(d: Containers, ref: str, timeout: int | None, signal: int | None = None) -> None:
    """POST /containers/{id}/stop: the stop signal, then SIGKILL after the timeout."""
    c = d.get(ref)
    if signal is not None:
        check_signal(signal, ref)
    if not c.running():
        if not _cancel_restart(d, c):
            raise NotModified("container already stopped")
        if not c.running():
            d.publish("container", "stop", c.id, {"name": c.name})
            return
    c.manually_stopped = True
    sig = signal or signal_number(c.config.get("StopSignal") or "SIGTERM")
    wait = timeout if timeout is not None else int(c.config.get("StopTimeout") or 10)
    if c.state.get("Paused"):
        d.unpause(c.id)
    task.kill_quietly(d.client, c.id, sig)
    if not d.store.wait_until(lambda: not c.running(), wait if wait >= 0 else None):
        task.kill_quietly(d.client, c.id, 9, all=True)
        d.store.wait_until(lambda: not c.running(), 30)
    d.publish("container", "stop", c.id, {"name": c.name})


def _cancel_restart(d: Containers, c: Container) -> bool:
    """Whether C was between two runs of its restart policy; if so the pending restart is
    cancelled (as dockerd's stop and kill do), and a restart already under way has finished."""
    with d.store.lock:
        restarting = not c.running() and bool(c.state.get("Restarting"))
        if restarting:
            c.manually_stopped = True
            c.state["Restarting"] = False
            d.store.save(c)
            d.store.notify()
    if restarting:
        d.store.wait_until(lambda: c.id not in d.store.restarting_now, 60)
    return restarting


def restart(d: Containers, ref: str, timeout: int | None) -> None:
    """POST /containers/{id}/restart."""
    c = d.get(ref)
    if c.running():
        d.stop(c.id, timeout)
    start.run(d, c)


def signal_number(name: str) -> int:
    """dockerd's ParseSignal: a number (not 0), or a name with or without SIG (RTMIN+n, RTMAX-n too)."""
    import signal

    text = str(name).upper()
    if re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        if number == 0 or not -(2**63) <= number < 2**63:
            raise InvalidParameter(f"Invalid signal: {name}")
        return number
    text = text.removeprefix("SIG")
    realtime = re.fullmatch(r"RT(MIN|MAX)([+-][0-9]{1,2})?", text)
    if realtime:
        base = int(signal.SIGRTMIN if realtime.group(1) == "MIN" else signal.SIGRTMAX)
        number = base + int(realtime.group(2) or 0)
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return number
    try:
        return int(signal.Signals["SIG" + text])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {name}") from None


def check_signal(number: int, ref: str) -> None:
    """A signal the kernel has (1-31, 34-64); dockerd's wording for one it does not."""
    import signal

    if number not in {int(s) for s in signal.valid_signals()}:
        raise InvalidParameter(
            f"Cannot kill container: {ref}: The linux daemon does not support signal {number}"
        )
