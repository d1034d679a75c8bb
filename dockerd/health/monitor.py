"""The healthcheck monitor: one probe loop per running container, as dockerd's monitor goroutine.

The loop waits `interval` (also before the first probe), runs the probe, records the result,
and waits `interval` again, so the interval runs from the end of one probe to the start of the
next. A probe that has not finished after `timeout` is recorded as failed ("Health check
exceeded timeout (1s)", exit code -1) and cancelled: the runner kills its process, and the loop
waits for it before the next one, so dying probes never pile up. A probe that could not be
run at all (the command does not exist...) counts as a failure with the error as its output.

The monitor runs nothing itself: the probe runner is injected (`ProbeRunner`; the engine's
runs an exec in the container through pycontainerd, execprobe.py), and so are the two things
it tells the engine: `on_status(container_id, status)` when the status changes (the engine
publishes the `health_status: <status>` event) and `on_update(container_id, health)` after every
change of the state, whose argument is State.Health as config.v2.json keeps it (the engine
saves it, so after a daemon restart `load` and `resume` carry on where the last probe left).

Callbacks are called from the monitor's threads, never with its lock held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockerd.builder.gotext import duration_string
from dockerd.health.config import HealthConfig
from dockerd.health.state import STARTING, UNHEALTHY, HealthState, ProbeResult, go_time

log = logging.getLogger("pydockerd.health")


@dataclass(frozen=True)
class ProbeRequest:
    container_id: str
    argv: list[str]


@dataclass(frozen=True)
class ProbeOutcome:
    exit_code: int
    output: str  # stdout and stderr as they came, cut as dockerd's limitedBuffer cuts them


class ProbeError(Exception):
    """The probe could not be run; its text is the result's output (exit code -1)."""


class ProbeRunner(Protocol):
    def __call__(self, request: ProbeRequest, cancel: threading.Event) -> ProbeOutcome:
        """Run the probe; when CANCEL is set, kill it and return once it is gone (the outcome
        is then discarded). Raise ProbeError when it cannot be run."""
        ...


StatusCallback = Callable[[str, str], None]
UpdateCallback = Callable[[str, dict[str, Any]], None]


def event_action(status: str) -> str:
    """The container event's action for a status change."""
    return f"health_status: {status}"


@dataclass
class _Loop:
    container_id: str
    config: HealthConfig
    argv: list[str]
    started_at: float  # the container's StartedAt, Unix seconds: the start period counts from it
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class HealthMonitor:
    def __init__(
        self,
        runner: ProbeRunner,
        on_status: StatusCallback | None = None,
        on_update: UpdateCallback | None = None,
    ) -> None:
        self._runner = runner
        self._on_status = on_status or (lambda _cid, _status: None)
        self._on_update = on_update or (lambda _cid, _health: None)
        self._lock = threading.Lock()
        self._states: dict[str, HealthState] = {}
        self._loops: dict[str, _Loop] = {}
        self._stopped: dict[str, _Loop] = {}  # the last loop stopped per container, maybe still ending

    # --- what the engine calls -------------------------------------------------------------------

    def load(self, container_id: str, health: Mapping[str, Any] | None) -> None:
        """A container's State.Health as saved (at daemon start); nothing runs until `resume`."""
        if health is None:
            return
        with self._lock:
            self._states[container_id] = HealthState.from_api(health)

    def started(
        self,
        container_id: str,
        healthcheck: Mapping[str, Any] | None,
        started_at: float,
        shell: Sequence[str] = (),
    ) -> bool:
        """The container (re)started: status "starting", streak 0 (the log stays), probing on
        its schedule. False, and nothing changes, when its config runs no probe."""
        config, argv = _probe(healthcheck, shell)
        if config is None or argv is None:
            return False
        self.stop(container_id)
        with self._lock:
            state = self._states.setdefault(container_id, HealthState())
            state.status, state.failing_streak = STARTING, 0
            snapshot = state.to_api()
        self._on_update(container_id, snapshot)
        self._open(_Loop(container_id, config, argv, started_at))
        return True

    def resume(
        self,
        container_id: str,
        healthcheck: Mapping[str, Any] | None,
        started_at: float,
        shell: Sequence[str] = (),
    ) -> bool:
        """Probing again with the state as it is (after unpause, or for a container that
        survived a daemon restart); a no-op while it already runs."""
        config, argv = _probe(healthcheck, shell)
        if config is None or argv is None:
            return False
        with self._lock:
            self._states.setdefault(container_id, HealthState())
        self._open(_Loop(container_id, config, argv, started_at))
        return True

    def stop(self, container_id: str) -> None:
        """Stop probing (exit, stop, pause): a running monitor leaves the status "unhealthy", as
        dockerd's does. A probe in flight is cancelled; this does not wait for it."""
        with self._lock:
            loop = self._loops.pop(container_id, None)
            if loop is None:
                return
            loop.stop.set()
            self._stopped[container_id] = loop
            state = self._states.get(container_id)
            if state is not None:
                state.status = UNHEALTHY
            snapshot = state.to_api() if state is not None else None
        if snapshot is not None:
            self._on_update(container_id, snapshot)

    def forget(self, container_id: str, timeout: float = 30.0) -> None:
        """The container is removed: its loop stops and is waited for (a probe in flight
        cancelled and cleaned up), so nothing of it outlives the removal."""
        with self._lock:
            loops = [
                x for x in (self._loops.pop(container_id, None), self._stopped.pop(container_id, None)) if x
            ]
            self._states.pop(container_id, None)
        deadline = time.monotonic() + timeout
        for loop in loops:
            loop.stop.set()
        for loop in loops:
            if loop.thread is not None and loop.thread is not threading.current_thread():
                loop.thread.join(max(0.0, deadline - time.monotonic()))

    def health(self, container_id: str) -> dict[str, Any] | None:
        """State.Health for inspect; None for a container without one (inspect omits it)."""
        state = self.state(container_id)
        return state.to_api() if state is not None else None

    def state(self, container_id: str) -> HealthState | None:
        with self._lock:
            state = self._states.get(container_id)
            return state.copy() if state is not None else None

    def probing(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._loops

    def close(self, timeout: float = 15.0) -> None:
        """Daemon shutdown: stop every loop (states stay as saved) and wait for them a while."""
        with self._lock:
            loops, self._loops = list(self._loops.values()), {}
            loops += self._stopped.values()
            self._stopped = {}
        for loop in loops:
            loop.stop.set()
        deadline = time.monotonic() + timeout
        for loop in loops:
            if loop.thread is not None:
                loop.thread.join(max(0.0, deadline - time.monotonic()))

    # --- the loop ---------------------------------------------------------------------------------

    def _open(self, loop: _Loop) -> None:
        with self._lock:
            if loop.container_id in self._loops:
                return
            self._loops[loop.container_id] = loop
            loop.thread = threading.Thread(
                target=self._run, args=(loop,), name=f"health-{loop.container_id[:12]}", daemon=True
            )
            loop.thread.start()

    def _run(self, loop: _Loop) -> None:
        interval = loop.config.interval_ns / 1e9
        try:
            while not loop.stop.wait(interval):
                result = self._probe_once(loop)
                if result is None:
                    return
                self._handle(loop, *result)
        finally:
            with self._lock:
                if self._stopped.get(loop.container_id) is loop:
                    del self._stopped[loop.container_id]

    def _probe_once(self, loop: _Loop) -> tuple[ProbeResult, float] | None:
        """One probe, bounded by the timeout; None when the monitor was stopped meanwhile."""
        timeout_ns = loop.config.timeout_ns
        start_wall = time.time()
        start = go_time(time.time_ns())
        cancel = threading.Event()
        finished = threading.Event()
        box: list[ProbeOutcome | Exception] = []

        def work() -> None:
            try:
                box.append(self._runner(ProbeRequest(loop.container_id, list(loop.argv)), cancel))
            except Exception as exc:  # noqa: BLE001 -- reported as the probe's result, never lost in a thread
                box.append(exc)
            finally:
                finished.set()

        worker = threading.Thread(target=work, name=f"probe-{loop.container_id[:12]}", daemon=True)
        worker.start()
        deadline = time.monotonic() + timeout_ns / 1e9
        while not finished.is_set():
            if loop.stop.is_set():
                cancel.set()
                worker.join()  # dockerd waits for the dying probe too
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                end = go_time(time.time_ns())
                cancel.set()
                worker.join()
                text = f"Health check exceeded timeout ({duration_string(timeout_ns)})"
                return ProbeResult(start, end, -1, text), start_wall
            finished.wait(min(left, 0.05))
        outcome = box[0]
        end = go_time(time.time_ns())
        if isinstance(outcome, ProbeOutcome):
            return ProbeResult(start, end, outcome.exit_code, outcome.output), start_wall
        if not isinstance(outcome, ProbeError):
            log.warning("health check for container %s failed: %r", loop.container_id[:12], outcome)
        return ProbeResult(start, end, -1, str(outcome)), start_wall

    def _handle(self, loop: _Loop, result: ProbeResult, start_wall: float) -> None:
        in_start_period = start_wall - loop.started_at < loop.config.start_period_ns / 1e9
        with self._lock:
            if loop.stop.is_set():  # stopped while the probe ran: its result is dropped
                return
            state = self._states.setdefault(loop.container_id, HealthState())
            changed = state.record(result, loop.config.retries_or_default, in_start_period)
            status, snapshot = state.status, state.to_api()
        self._on_update(loop.container_id, snapshot)
        if changed:
            self._on_status(loop.container_id, status)


def _probe(
    healthcheck: Mapping[str, Any] | None, shell: Sequence[str]
) -> tuple[HealthConfig | None, list[str] | None]:
    config = HealthConfig.from_api(healthcheck)
    if config is None:
        return None, None
    if config.test and config.kind is None and config.test[0] != "NONE":
        log.warning("Unknown healthcheck type '%s' (expected 'CMD')", config.test[0])
    return config, config.command(shell)
