"""The containers backend's side of healthchecks: what each lifecycle verb tells the monitor,
and what the monitor's callbacks do to the container records.

The verbs call one method each (create: `at_create`; start: `started`; the exit: `stopped`;
pause/unpause: `paused`/`unpaused`; removal: `removed`; live restore: `restored`), so the
lifecycle modules hold one-line hooks and the rules live here, as dockerd's health.go keeps
them beside its monitor:

- the container's Config.Healthcheck is the request's merged with the image's, checked at
  create with dockerd's wording (400);
- State.Health is written into the record (config.v2.json) after every change, so inspect and
  `ps` read it there and a restarted daemon finds it;
- a status change is the `health_status: <status>` container event;
- probes run as execs in the container's task (execprobe.py) with the exec_create/exec_start/
  exec_die events dockerd publishes for them; the daemon's /tasks/exit handler leaves the
  probes' exits to the runner (`owns`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dockerd.engine.events import Publish
from dockerd.engine.logs import parse_time
from dockerd.health.config import merge_with_image, validate
from dockerd.health.execprobe import ContainerdExecProbe
from dockerd.health.monitor import HealthMonitor, event_action

if TYPE_CHECKING:
    from containerd.client import Client
    from dockerd.engine.container.state import Container, ContainerStore

log = logging.getLogger("pydockerd.health")


class ContainerHealth:
    def __init__(self, store: ContainerStore, client: Client, fifo_dir: str, publish: Publish) -> None:
        self._store = store
        self._publish = publish
        self.runner = ContainerdExecProbe(client, fifo_dir, on_exec_event=self._exec_event)
        self.monitor = HealthMonitor(self.runner, on_status=self._status_changed, on_update=self._save)

    # --- create ------------------------------------------------------------------------------------

    @staticmethod
    def check(body: Mapping[str, Any]) -> None:
        """dockerd's create-time refusals of Config.Healthcheck (InvalidParameter, 400)."""
        healthcheck = body.get("Healthcheck")
        if healthcheck is not None:
            validate(healthcheck)

    @staticmethod
    def at_create(config: dict[str, Any], image_config: Mapping[str, Any]) -> dict[str, Any]:
        """CONFIG with its Healthcheck merged with the image's, as dockerd stores it (absent
        when neither has one, as inspect omits it)."""
        merged = merge_with_image(config.get("Healthcheck"), image_config.get("Healthcheck"))
        out = {k: v for k, v in config.items() if k != "Healthcheck"}
        if merged is not None:
            out["Healthcheck"] = merged
        return out

    # --- the lifecycle ----------------------------------------------------------------------------

    def started(self, c: Container) -> None:
        """The task runs: status "starting", probing on the container's schedule."""
        self.monitor.started(c.id, c.config.get("Healthcheck"), _started_at(c), _shell(c))

    def stopped(self, cid: str) -> None:
        """The task exited (or was paused): probing stops, the status is "unhealthy" as dockerd's."""
        self.monitor.stop(cid)

    paused = stopped

    def unpaused(self, c: Container) -> None:
        self.monitor.resume(c.id, c.config.get("Healthcheck"), _started_at(c), _shell(c))

    def removed(self, cid: str) -> None:
        self.monitor.forget(cid)

    def restored(self, c: Container) -> None:
        """At daemon start: the saved State.Health back, and for a task that kept running (not
        paused) the monitor started again as dockerd's restore does (initHealthMonitor): status
        "starting", streak 0, the last results kept, probing on the schedule."""
        if self.monitor.probing(c.id):
            return  # a restart policy has started it already
        self.monitor.load(c.id, c.state.get("Health"))
        if c.running() and not c.state.get("Paused"):
            self.monitor.started(c.id, c.config.get("Healthcheck"), _started_at(c), _shell(c))

    def owns(self, exec_id: str) -> bool:
        """Whether EXEC_ID is a probe in flight (its exit is the runner's to handle)."""
        return self.runner.owns(exec_id)

    def close(self) -> None:
        """Daemon shutdown: probes stop, State.Health stays as saved for the next daemon."""
        self.monitor.close()

    # --- the monitor's callbacks ------------------------------------------------------------------

    def _save(self, cid: str, health: dict[str, Any]) -> None:
        with self._store.lock:
            c = self._store.find(cid)
            if c is None or c.removal_in_progress:
                return
            c.state["Health"] = health
            try:
                self._store.save(c)
            except OSError as exc:  # removed meanwhile
                log.debug("saving the health of %s: %s", cid[:12], exc)

    def _status_changed(self, cid: str, status: str) -> None:
        c = self._store.find(cid)
        if c is not None:
            self._publish("container", event_action(status), cid, _attributes(c))

    def _exec_event(self, cid: str, action: str, attributes: dict[str, str]) -> None:
        c = self._store.find(cid)
        if c is not None:
            self._publish("container", action, cid, {**attributes, **_attributes(c)})


def _attributes(c: Container) -> dict[str, str]:
    return {"image": c.image_ref, "name": c.name}


def _started_at(c: Container) -> float:
    return parse_time(str(c.state.get("StartedAt") or c.created))


def _shell(c: Container) -> list[str]:
    return [str(s) for s in c.config.get("Shell") or ()]
