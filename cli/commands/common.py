"""Helpers shared by the command modules."""

from __future__ import annotations

import sys
import time

from cli.client import APIError, DaemonUnreachable
from cli.context import CLIError, Context
from cli.flags import Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FILTER = Opt("filter", "f", "list", "Filter output based on conditions provided", metavar="filter")
# prune commands keep -f for --force, so their --filter has no shorthand
PRUNE_FILTER = Opt("filter", "", "list", "Provide filter values (e.g. \"until=<timestamp>\")", metavar="filter")
FORCE_PROMPT = Opt("force", "f", "bool", "Do not prompt for confirmation")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """`--filter key=value` (repeatable) -> {"key": ["value", ...]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise CLIError(f"bad format of filter (expected name=value): {item}")
        out.setdefault(key.strip().lower(), []).append(value)
    return out


def for_each(ctx: Context, names: list[str], action: Callable[[str], Any], echo: bool = True) -> int:
    """Run action on every name; print each name that succeeded, every error, and exit 1
    if any failed (Docker's behaviour for stop/kill/rm/pause/...)."""
    failed = False
    for name in names:
        try:
            action(name)
        except APIError as exc:
            failed = True
            ctx.err(f"Error response from daemon: {exc.message}\n")
            continue
        except DaemonUnreachable:
            raise
        except CLIError as exc:
            failed = True
            ctx.err(exc.message.rstrip("\n") + "\n")
            continue
        if echo:
            ctx.out(name + "\n")
    return 1 if failed else 0


def confirm(ctx: Context, warning: str) -> bool:
    """Docker's prune prompt; anything but y/yes (or a closed stdin) declines."""
    ctx.out(f"{warning}\nAre you sure you want to continue? [y/N] ")
    line = sys.stdin.readline()
    return line.strip().lower() in ("y", "yes")


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration ("1h30m", "90s", "1.5h"), or None if text is not one."""
    import re

    if not text or not re.fullmatch(r"[-+]?(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+", text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = 0.0
    for number, _frac, unit in re.findall(r"(\d+(\.\d*)?)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * _DURATION_UNITS[unit]
    return sign * total


def api_timestamp(value: str, now: float | None = None) -> str:
    """A --since/--until value as the API wants it ("SECONDS.NANOS"): a Go duration counts
    back from now, RFC 3339 dates and unix timestamps are converted or passed through."""
    if not value:
        return ""
    now = time.time() if now is None else now
    duration = parse_go_duration(value)
    if duration is not None:
        t = now - duration
        return f"{int(t)}.{int(round((t - int(t)) * 1e9)):09d}"
    try:
        float(value)
        return value
    except ValueError:
        pass
    from datetime import datetime

    text = value.replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(f"invalid value for time: {value!r} (use a duration like 10m, RFC 3339, or a unix timestamp)") from None
    ts = parsed.timestamp()  # naive values are local time, as in Docker
    return f"{int(ts)}.{int(round((ts - int(ts)) * 1e9)):09d}"


def short_id(full: str) -> str:
    return full.split(":", 1)[-1][:12]
