"""State.Health: the status, the failing streak and the last five probe results, and the rules
by which one probe result changes them (dockerd's handleProbeResult).

Statuses: "starting" from each start of the container until a probe passes or the failures
count; "healthy" after any passing probe; "unhealthy" after `retries` failures in a row, and
also whenever the monitor stops (container exit, pause), as dockerd marks it "for
compatibility". A failure while still "starting" inside the start period does not count.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine.errors import InvalidParameter

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"
NO_HEALTHCHECK = "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK)  # the values `ps --filter health=` takes

MAX_LOG_ENTRIES = 5
MAX_OUTPUT_LEN = 4096  # bytes of probe output kept; "..." marks the cut


def go_time(ns: int) -> str:
    """A UTC instant as Go marshals a time.Time (RFC 3339 with nanoseconds, trailing zeros cut)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{frac:09d}".rstrip("0")
    return text + (f".{digits}" if digits else "") + "Z"


@dataclass(frozen=True)
class ProbeResult:
    """One run of the probe (types.HealthcheckResult)."""

    start: str
    end: str
    exit_code: int
    output: str

    def to_api(self) -> dict[str, Any]:
        return {"Start": self.start, "End": self.end, "ExitCode": self.exit_code, "Output": self.output}

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> ProbeResult:
        return cls(
            str(body.get("Start", "")),
            str(body.get("End", "")),
            int(body.get("ExitCode", 0)),
            str(body.get("Output", "")),
        )


@dataclass
class HealthState:
    status: str = STARTING
    failing_streak: int = 0
    log: list[ProbeResult] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        """State.Health as inspect shows it and config.v2.json keeps it."""
        return {
            "Status": self.status or UNHEALTHY,
            "FailingStreak": self.failing_streak,
            "Log": [r.to_api() for r in self.log],
        }

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> HealthState:
        return cls(
            status=str(body.get("Status") or ""),
            failing_streak=int(body.get("FailingStreak") or 0),
            log=[ProbeResult.from_api(r) for r in body.get("Log") or ()],
        )

    def copy(self) -> HealthState:
        return HealthState(self.status, self.failing_streak, list(self.log))

    def record(self, result: ProbeResult, retries: int, in_start_period: bool) -> bool:
        """Apply one probe result; True when the status changed (a health_status event is due).

        IN_START_PERIOD: the probe started before the container's start period was over."""
        old = self.status or UNHEALTHY
        self.log = [*self.log, result][-MAX_LOG_ENTRIES:]
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (old == STARTING and in_start_period):
            self.failing_streak += 1
            if self.failing_streak >= retries:
                self.status = UNHEALTHY
        return self.status != old


def status_text(state: HealthState | None) -> str:
    """What `ps` shows in brackets after "Up ..." ("" without a healthcheck)."""
    if state is None:
        return ""
    status = state.status or UNHEALTHY
    return "health: starting" if status == STARTING else status


def filter_status(state: HealthState | None) -> str:
    """The value `ps --filter health=` compares: "none" for a container without a health state."""
    return NO_HEALTHCHECK if state is None else (state.status or UNHEALTHY)


def check_filter(values: Iterable[str]) -> None:
    """`ps --filter health=X`: X must be a status (or "none"); dockerd's 400 otherwise."""
    for value in values:
        if value not in STATUSES:
            raise InvalidParameter(f"Unrecognised filter value for health: {value}")


def filter_matches(values: Collection[str], state: HealthState | None) -> bool:
    """dockerd's ExactMatch of the health filter: no value given matches every container."""
    return not values or filter_status(state) in values
