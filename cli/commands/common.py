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
PRUNE_FILTER = Opt("filter", "", "list", 'Provide filter values (e.g. "until=<timestamp>")', metavar="filter")
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


def for_each(
    ctx: Context, names: list[str], action: Callable[[str], Any], echo: bool = True, missing_ok: bool = False
) -> int:
    """Run action on every name; print each name that succeeded, every error, and exit 1
    if any failed (Docker's behaviour for stop/kill/rm/pause/...). With MISSING_OK a name the
    daemon does not know (404) is reported but is no failure (`rm -f`, as the Docker CLI)."""
    failed = False
    for name in names:
        try:
            action(name)
        except APIError as exc:
            failed = failed or not (missing_ok and exc.status == 404)
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
        raise CLIError(
            f"invalid value for time: {value!r} (use a duration like 10m, RFC 3339, or a unix timestamp)"
        ) from None
    ts = parsed.timestamp()  # naive values are local time, as in Docker
    return f"{int(ts)}.{int(round((ts - int(ts)) * 1e9)):09d}"


def short_id(full: str) -> str:
    return full.split(":", 1)[-1][:12]


def split_strings(values: list[str]) -> list[str]:
    """pflag's `strings` flags: every occurrence is a CSV list ("--alias a,b --alias c")."""
    if not any("," in v or '"' in v for v in values):
        return list(values)
    import csv

    out: list[str] = []
    for value in values:
        out.extend(next(csv.reader([value]), []))
    return out


def kv_map(values: list[str]) -> dict[str, str]:
    """`map`/label flags: KEY=VALUE (a bare KEY has the empty value)."""
    out: dict[str, str] = {}
    for item in values:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def require_api(ctx: Context, flag: str, minimum: str) -> None:
    """The Docker CLI's refusal of a flag the daemon's API version is too old for."""
    from cli.client import version_lt

    current = ctx.client.version
    if version_lt(current, minimum):
        raise CLIError(
            f'"{flag}" requires API version {minimum}, but the Docker daemon API version is {current}', 1
        )


def inspect_each(ctx: Context, names: list[str], fetch: Callable[[str], Any], fmt: str) -> int:
    """Docker's inspect for networks and volumes: the objects found (JSON array or one
    template line each), then the daemon's error for each one that was not."""
    import json

    from cli.formatting import print_json

    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(fetch(name))
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
    if not fmt:
        ctx.out(print_json(found))
    elif fmt == "json":
        ctx.out(json.dumps(found, ensure_ascii=False, separators=(",", ":")) + "\n")  # one compact array
    else:
        from cli.template import Template

        tmpl = Template(fmt)
        ctx.out("".join(tmpl.execute(obj) + "\n" for obj in found))
    for message in errors:
        ctx.err(message + "\n")
    return 1 if errors else 0


def table_format(chosen: str, table: str) -> str:
    """The template a listing renders with: the one chosen (--format, else the config file's),
    Docker's plain "table" or none meaning the command's default `table`."""
    return table if not chosen or chosen == "table" else chosen


def natural_key(text: str) -> list[Any]:
    """The Docker CLI's sortorder.NaturalLess: digit runs compare as numbers."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def go_time_string(rfc3339: str) -> str:
    """Go's time.Time.String() of a timestamp the daemon sent as RFC 3339 ("2024-01-02T03:04:05.5Z"
    -> "2024-01-02 03:04:05.5 +0000 UTC")."""
    if not rfc3339 or rfc3339.startswith("0001-01-01"):
        return "0001-01-01 00:00:00 +0000 UTC"
    date, _, clock = rfc3339.partition("T")
    zone = "+0000 UTC"
    if clock.endswith("Z"):
        clock = clock[:-1]
    elif len(clock) > 6 and clock[-6] in "+-":
        offset = clock[-6:].replace(":", "")
        clock = clock[:-6]
        zone = f"{offset} {offset}"
    main, dot, frac = clock.partition(".")
    frac = frac.rstrip("0")
    return f"{date} {main}{'.' + frac if frac else ''} {zone}"
