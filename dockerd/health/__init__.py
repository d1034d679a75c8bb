"""Healthchecks (issue 15): the probe schedule and Docker's state rules, independent of the
engine that wires them in.

- config.py: Config.Healthcheck parsed, checked at create and merged with the image's;
- state.py: State.Health and the effect of one probe result; `ps`'s text and health filter;
- monitor.py: HealthMonitor, one probe loop per running container, with injected runner and
  callbacks (status events, persistence);
- execprobe.py: the runner that execs the probe in the container's task through pycontainerd;
- output.py: the probe output as dockerd cuts it.
"""

from dockerd.health.config import HealthConfig, merge_with_image, validate
from dockerd.health.execprobe import ContainerdExecProbe
from dockerd.health.monitor import (
    HealthMonitor,
    ProbeError,
    ProbeOutcome,
    ProbeRequest,
    ProbeRunner,
    event_action,
)
from dockerd.health.state import (
    HEALTHY,
    NO_HEALTHCHECK,
    STARTING,
    STATUSES,
    UNHEALTHY,
    HealthState,
    ProbeResult,
    check_filter,
    filter_matches,
    filter_status,
    status_text,
)

__all__ = [
    "HEALTHY",
    "NO_HEALTHCHECK",
    "STARTING",
    "STATUSES",
    "UNHEALTHY",
    "ContainerdExecProbe",
    "HealthConfig",
    "HealthMonitor",
    "HealthState",
    "ProbeError",
    "ProbeOutcome",
    "ProbeRequest",
    "ProbeResult",
    "ProbeRunner",
    "check_filter",
    "event_action",
    "filter_matches",
    "filter_status",
    "merge_with_image",
    "status_text",
    "validate",
]
