"""A container's healthcheck settings (Config.Healthcheck) as dockerd reads, checks and merges them.

The API carries durations as integer nanoseconds and omits the zero ones; zero means "the
default" (or, at create, "the image's"). Test[0] says what kind of probe it is: CMD (argv
exec'd as is), CMD-SHELL (one string given to the container's shell), NONE (healthchecks
off, also for one the image sets); an empty Test inherits the image's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockerd.builder.gotext import duration_string
from dockerd.engine.errors import InvalidParameter

SECOND = 1_000_000_000
MINIMUM_DURATION = 1_000_000  # containertypes.MinimumDuration: 1ms
DEFAULT_INTERVAL = 30 * SECOND  # also the wait before the first probe
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_RETRIES = 3
DEFAULT_SHELL = ("/bin/sh", "-c")


@dataclass(frozen=True)
class HealthConfig:
    test: tuple[str, ...] = ()
    interval: int = 0  # nanoseconds; 0: the default
    timeout: int = 0
    start_period: int = 0
    retries: int = 0
    start_interval: int = 0  # API 1.44; kept so inspect gives it back, not used by the probe schedule

    @classmethod
    def from_api(cls, body: Mapping[str, Any] | None) -> HealthConfig | None:
        """Config.Healthcheck as the API (and config.v2.json) holds it; None for none."""
        if body is None:
            return None
        return cls(
            test=tuple(str(t) for t in body.get("Test") or ()),
            interval=int(body.get("Interval") or 0),
            timeout=int(body.get("Timeout") or 0),
            start_period=int(body.get("StartPeriod") or 0),
            retries=int(body.get("Retries") or 0),
            start_interval=int(body.get("StartInterval") or 0),
        )

    def to_api(self) -> dict[str, Any]:
        """Docker's HealthConfig JSON: every field omitted when empty or zero."""
        out: dict[str, Any] = {}
        if self.test:
            out["Test"] = list(self.test)
        for key, value in (
            ("Interval", self.interval), ("Timeout", self.timeout), ("StartPeriod", self.start_period),
            ("StartInterval", self.start_interval), ("Retries", self.retries),
        ):  # fmt: skip
            if value:
                out[key] = value
        return out

    @property
    def kind(self) -> str | None:
        """ "CMD" or "CMD-SHELL" when a probe runs; None for no test, NONE or an unknown kind
        (dockerd logs a warning for the latter and runs nothing)."""
        if not self.test or self.test[0] not in ("CMD", "CMD-SHELL"):
            return None
        return self.test[0]

    def command(self, shell: Sequence[str] = ()) -> list[str] | None:
        """The probe's argv: CMD's words, or CMD-SHELL's string after the container's shell
        (Config.Shell, else /bin/sh -c); None when no probe runs."""
        kind = self.kind
        if kind is None:
            return None
        words = list(self.test[1:])
        return [*(shell or DEFAULT_SHELL), *words] if kind == "CMD-SHELL" else words

    @property
    def interval_ns(self) -> int:
        return self.interval or DEFAULT_INTERVAL

    @property
    def timeout_ns(self) -> int:
        return self.timeout or DEFAULT_TIMEOUT

    @property
    def start_period_ns(self) -> int:
        return self.start_period or DEFAULT_START_PERIOD

    @property
    def retries_or_default(self) -> int:
        return self.retries if self.retries > 0 else DEFAULT_RETRIES


def validate(body: Mapping[str, Any] | None) -> None:
    """dockerd's create-time checks of Config.Healthcheck (a 400 with its wording, in its order)."""
    config = HealthConfig.from_api(body)
    if config is None:
        return
    minimum = duration_string(MINIMUM_DURATION)
    for key, value in (
        ("Interval", config.interval),
        ("Timeout", config.timeout),
        ("Retries", None),
        ("StartPeriod", config.start_period),
    ):
        if value is None:
            if config.retries < 0:
                raise InvalidParameter("Retries in Healthcheck cannot be negative")
        elif value != 0 and value < MINIMUM_DURATION:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than {minimum}")


def merge_with_image(
    user: Mapping[str, Any] | None, image: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The container's Healthcheck from the create request's and the image's, as dockerd
    merges them: none asked for means the image's; otherwise each empty field is the image's."""
    if image is None:
        return dict(user) if user is not None else None
    if user is None:
        return dict(image)
    merged = dict(user)
    if not merged.get("Test"):
        merged["Test"] = list(image.get("Test") or []) or merged.get("Test")
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return {k: v for k, v in merged.items() if v is not None}
