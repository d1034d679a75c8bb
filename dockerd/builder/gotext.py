"""Go's text forms that dockerd's build output and history show: durations ("1m30s"), %q of
strings and string slices, %v of string slices."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """A Go duration ("30s", "1m30s", "0") in nanoseconds; ValueError when it is none."""
    if text in ("0", "+0", "-0"):
        return 0
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(body):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise ValueError(f"time: invalid duration {quote(text)}")
    return sign * int(round(total))


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    text = str(whole)
    if frac:
        text += "." + f"{frac:0{digits}d}".rstrip("0")
    return text


def duration_string(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 10**3:
        return f"{sign}{ns}ns"
    if ns < 10**6:
        return f"{sign}{_fraction(ns, 3)}µs"
    if ns < 10**9:
        return f"{sign}{_fraction(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _fraction(rest, 9) + "s"


def quote(text: str) -> str:
    """%q of a string (Go's strconv.Quote for what Dockerfiles hold)."""
    return (
        json.dumps(text, ensure_ascii=False)
        .replace("\\u0026", "&")
        .replace("\\u003c", "<")
        .replace("\\u003e", ">")
    )


def quote_list(items: Sequence[str]) -> str:
    """%q of a []string: ["a" "b"]."""
    return "[" + " ".join(quote(i) for i in items) + "]"


def value_list(items: Sequence[str]) -> str:
    """%v of a []string: [a b]."""
    return "[" + " ".join(items) + "]"
