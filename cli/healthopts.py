"""`run`/`create` healthcheck options -> Config.Healthcheck, as the Docker CLI builds it
(Go durations in nanoseconds, `--no-healthcheck` as Test ["NONE"])."""

from __future__ import annotations

import re

from cli.flags import Command, Opt, UsageError, Values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEALTH_OPTIONS: tuple[Opt, ...] = (
    Opt("health-cmd", "", "str", "Command to run to check health"),
    Opt("health-interval", "", "str", "Time between running the check (ms|s|m|h) (default 0s)", metavar="duration"),
    Opt("health-retries", "", "int", "Consecutive failures needed to report unhealthy"),
    Opt(
        "health-start-interval", "", "str",
        "Time between running the check during the start period (ms|s|m|h) (default 0s)", metavar="duration",
    ),
    Opt(
        "health-start-period", "", "str",
        "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)",
        metavar="duration",
    ),
    Opt("health-timeout", "", "str", "Maximum time to allow one check to run (ms|s|m|h) (default 0s)", metavar="duration"),
    Opt("no-healthcheck", "", "bool", "Disable any container-specified HEALTHCHECK"),
)  # fmt: skip

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s" -> 90000000000); ValueError with Go's wording."""
    invalid = ValueError(f'time: invalid duration "{text}"')
    rest = text
    sign = 1
    if rest[:1] in ("-", "+"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    pos = 0
    while pos < len(rest):
        m = _PART.match(rest, pos)
        if m is None or (not m.group(1) and not m.group(2)):
            if m is None and re.match(r"[\d.]+$", rest[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            if m is None and re.match(r"[\d.]+", rest[pos:]):
                unit = re.sub(r"^[\d.]+", "", rest[pos:])
                raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
            raise invalid
        whole, frac, unit = m.group(1) or "0", m.group(2) or "", m.group(3)
        scale = _NS_PER_UNIT[unit]
        total += int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        pos = m.end()
    return sign * total


def _duration(spec: Command, opts: Values, name: str) -> int:
    raw = opts.get(name.replace("-", "_"))
    if not raw:
        return 0
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{raw}" for "--{name}" flag: {exc}', spec) from None


def healthcheck(spec: Command, opts: Values) -> dict[str, Any] | None:
    """Config.Healthcheck for the options, or None when none was given."""
    durations = {
        key: _duration(spec, opts, flag)
        for key, flag in (("Interval", "health-interval"), ("Timeout", "health-timeout"),
                          ("StartPeriod", "health-start-period"), ("StartInterval", "health-start-interval"))
    }  # fmt: skip
    given = bool(opts.health_cmd) or opts.health_retries != 0 or any(durations.values())
    if opts.no_healthcheck:
        if given:
            raise UsageError("--no-healthcheck conflicts with --health-* options", spec, brief=True)
        return {"Test": ["NONE"]}
    if not given:
        return None
    for key, flag in (("Interval", "interval"), ("Timeout", "timeout")):
        if durations[key] < 0:
            raise UsageError(f"--health-{flag} cannot be negative", spec, brief=True)
    if opts.health_retries < 0:
        raise UsageError("--health-retries cannot be negative", spec, brief=True)
    for key, flag in (("StartPeriod", "start-period"), ("StartInterval", "start-interval")):
        if durations[key] < 0:
            raise UsageError(f"--health-{flag} cannot be negative", spec, brief=True)
    check: dict[str, Any] = {}
    if opts.health_cmd:
        check["Test"] = ["CMD-SHELL", opts.health_cmd]
    for key, value in durations.items():
        if value:
            check[key] = value
    if opts.health_retries:
        check["Retries"] = opts.health_retries
    return check
