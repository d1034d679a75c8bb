"""Docker's `filters` query parameter and the prune filters, with dockerd's semantics.

One parser for every endpoint that takes `filters` (lists, events, every prune), so the
volume, network and build-cache prunes reuse the same matching once those objects exist:

* the wire forms are dockerd's `filters.Args`: `{"key": {"value": true}}`, or the older
  `{"key": ["value"]}`; a value of the wrong JSON type is refused with Go's decoder wording;
* `label` / `label!` match as `MatchKVList`: every `label` value must be present (with its
  value, when one is given); a resource is excluded when every `label!` value matches;
* `until` is a Unix timestamp, an RFC 3339 (or shorter) time, or a Go duration before now,
  parsed as dockerd's `GetTimestamp`; only one `until` is allowed;
* `dangling` (images) is `true`/`1` or `false`/`0`.

dockerd answers 500 to a bad `until`; pydockerd answers 400 with the same words, since the
mistake is the client's.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.validate import json_kind

# The filters each prune endpoint of dockerd 20.10 accepts (the build cache's are buildkit's
# cache fields plus its `until` and the older `unused-for`).
CONTAINER_PRUNE = frozenset({"label", "label!", "until"})
IMAGE_PRUNE = frozenset({"dangling", "label", "label!", "until"})
NETWORK_PRUNE = frozenset({"label", "label!", "until"})
VOLUME_PRUNE = frozenset({"label", "label!"})
BUILD_CACHE_PRUNE = frozenset(
    {"id", "parent", "type", "description", "inuse", "shared", "private", "until", "unused-for"}
)

_INT64 = 1 << 63
_DURATION = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DATE = r"(?P<Y>\d{4})-(?P<M>\d{2})-(?P<D>\d{2})"
_ZONE = r"(?P<zone>Z|[+-]\d{2}:\d{2})"
_FRACTION = r"\.(?P<frac>\d+)"


@dataclass(frozen=True)
class Filters:
    """dockerd's filters.Args: each key's values, each value with the flag the wire gave it."""

    fields: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | None) -> Filters:
        if not raw:
            return cls({})
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # (RecursionError: nesting deeper than Python's stack)
            raise InvalidParameter(f"invalid filters: {raw[:200]!r} is not JSON") from None
        return cls(_decode(value))

    def contains(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return list(self.fields.get(key) or {})

    def exact_match(self, key: str, value: str) -> bool:
        """dockerd's ExactMatch: true when the key is absent, else whether `value` is set."""
        values = self.fields.get(key)
        if not values:
            return True
        return bool(values.get(value))

    def match_kv_list(self, key: str, labels: Mapping[str, str] | None) -> bool:
        """Every `k` or `k=v` of `key` is among `labels` (true when the key has no values)."""
        wanted = self.get(key)
        if not wanted:
            return True
        if not labels:
            return False
        for spec in wanted:
            name, eq, value = spec.partition("=")
            if name not in labels or (eq and labels[name] != value):
                return False
        return True

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for key in self.fields:
            if key not in allowed:
                raise InvalidParameter(f"Invalid filter '{key}'")

    def as_lists(self) -> dict[str, list[str]]:
        return {key: self.get(key) for key in self.fields}


def _decode(value: Any) -> dict[str, dict[str, bool]]:
    """The JSON as dockerd's FromJSON decodes it: the current form first, then the legacy one;
    when neither fits, the current form's first error (Go's decoder reports the earliest)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(_type_error(value, "map[string]map[string]bool"))
    current: dict[str, dict[str, bool]] = {}
    error = ""
    for key, values in value.items():
        if values is None:
            current[key] = {}
        elif isinstance(values, dict):
            bad = next((v for v in values.values() if v is not None and not isinstance(v, bool)), None)
            if bad is not None:
                error = error or _type_error(bad, "bool")
            current[key] = {k: bool(v) for k, v in values.items()}
        else:
            error = error or _type_error(values, "map[string]bool")
    if not error:
        return current
    legacy: dict[str, dict[str, bool]] = {}
    for key, values in value.items():
        if values is None:
            legacy[key] = {}
        elif isinstance(values, list) and all(v is None or isinstance(v, str) for v in values):
            legacy[key] = {v or "": True for v in values}
        else:
            raise InvalidParameter(error)
    return legacy


def _type_error(value: Any, go_type: str) -> str:
    return f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}"


# --- prune ---------------------------------------------------------------------------------


def prune_until(filters: Filters, now: float | None = None) -> float | None:
    """The `until` of a prune as a Unix time (None without one); dockerd's getUntilFromPruneFilters."""
    if not filters.contains("until"):
        return None
    values = filters.get("until")
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    if not values:
        return None
    return get_timestamp(values[0], time.time() if now is None else now)


def build_cache_until(filters: Filters) -> float | None:
    """The build cache prune's `until` (or its older name `unused-for`): a Go duration, in seconds."""
    until, unused_for = filters.get("until"), filters.get("unused-for")
    if until and unused_for:
        raise InvalidParameter('conflicting filters: "until" and "unused-for"')
    values, key = (until, "until") if until else (unused_for, "unused-for")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("filters expect only one value")
    seconds = 0.0 if values[0] == "0" else go_duration(values[0])
    if seconds is None:
        raise InvalidParameter(
            f"\"{key}\" filter expects a duration (e.g., '24h'): {_duration_error(values[0])}"
        )
    return seconds


def _duration_error(text: str) -> str:
    """Go's ParseDuration error for `text`."""
    unit = re.fullmatch(r"[-+]?[0-9.]+([^0-9.]+)", text)
    if unit:
        return f'time: unknown unit "{unit.group(1)}" in duration "{text}"'
    if re.fullmatch(r"[-+]?[0-9.]+", text) and text.strip("+-."):
        return f'time: missing unit in duration "{text}"'
    return f'time: invalid duration "{text}"'


def match_labels(filters: Filters, labels: Mapping[str, str] | None) -> bool:
    """dockerd's prune matchLabels: all of `label`, and not all of `label!` (when given)."""
    if not filters.match_kv_list("label", labels):
        return False
    return not (filters.contains("label!") and filters.match_kv_list("label!", labels))


def dangling_only(filters: Filters) -> bool:
    """Image prune's `dangling`: true (the default) keeps tagged images."""
    if not filters.contains("dangling"):
        return True
    if filters.exact_match("dangling", "false") or filters.exact_match("dangling", "0"):
        return False
    if filters.exact_match("dangling", "true") or filters.exact_match("dangling", "1"):
        return True
    raise InvalidParameter(f"Invalid filter 'dangling=[{' '.join(filters.get('dangling'))}]'")


def pruned_after(created: float, until: float | None) -> bool:
    """True when a resource created at `created` is too recent for `until` (dockerd: Created.After(until))."""
    return until is not None and created > until


# --- times ---------------------------------------------------------------------------------


def get_timestamp(value: str, now: float) -> float:
    """dockerd's GetTimestamp followed by ParseTimestamps: a Go duration before `now` (whole
    seconds, as Go's Unix()), a date or time in one of Docker's layouts (the daemon's zone
    when none is given), or Unix seconds with an optional fraction."""
    if value != "0":
        seconds = go_duration(value)
        if seconds is not None:
            return float(math.floor(now - seconds))  # Go's Time.Unix(): whole seconds
    parsed = _parse_layout(value, now)
    if parsed is not None:
        return parsed
    if "-" in value:
        raise InvalidParameter(f'parsing time "{value}": cannot parse as a date or time')
    stamp = _unix_seconds(value)
    if stamp is None:
        raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
    return stamp


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration (`1h30m`, `-90s`, `1.5h`), None when `text` is not one."""
    if not _DURATION.fullmatch(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if total * 1e9 >= _INT64:
        return None  # Go's ParseDuration: "invalid duration" past int64 nanoseconds
    return sign * total


def _layouts(in_location: bool, value: str) -> str:
    """The one layout dockerd's GetTimestamp picks for `value`, as a regular expression."""
    zone = "" if in_location else _ZONE
    if "." in value:
        return rf"{_DATE}T(?P<h>\d{{1,2}}):(?P<m>\d{{2}}):(?P<s>\d{{2}}){_FRACTION}{zone}"
    if "T" in value:
        colons = value.count(":")
        if not in_location and not re.search("[zZ]", value) and colons > 0:
            colons -= 1  # the zone offset's colon
        hour = rf"{_DATE}T(?P<h>\d{{1,2}})"
        if colons == 0:
            return hour + zone
        if colons == 1:
            return rf"{hour}:(?P<m>\d{{2}}){zone}"
        return rf"{hour}:(?P<m>\d{{2}}):(?P<s>\d{{2}})(?:{_FRACTION})?{zone}"
    return _DATE + zone


def _parse_layout(value: str, now: float) -> float | None:
    in_location = not (re.search("[zZ+]", value) or value.count("-") == 3)
    match = re.fullmatch(_layouts(in_location, value), value)
    if not match:
        return None
    parts = match.groupdict()
    try:
        moment = datetime.datetime(
            int(parts["Y"]), int(parts["M"]), int(parts["D"]), int(parts.get("h") or 0),
            int(parts.get("m") or 0), int(parts.get("s") or 0), tzinfo=datetime.UTC,
        )  # fmt: skip
    except ValueError as exc:
        field = str(exc).split()[0]  # Go's words: "month out of range", "day out of range"...
        raise InvalidParameter(f'parsing time "{value}": {field} out of range') from None
    if in_location:
        offset = datetime.datetime.fromtimestamp(now).astimezone().utcoffset() or datetime.timedelta()
    elif parts["zone"] == "Z":
        offset = datetime.timedelta()
    else:  # (Go takes any two-digit hour and minute here)
        sign = -1 if parts["zone"][0] == "-" else 1
        offset = sign * datetime.timedelta(hours=int(parts["zone"][1:3]), minutes=int(parts["zone"][4:6]))
    fraction = (parts.get("frac") or "")[:9]
    seconds = moment.timestamp() - offset.total_seconds()
    return seconds + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _unix_seconds(value: str) -> float | None:
    """dockerd's parseTimestamp: `seconds[.fraction]`, each part a Go int64."""
    seconds, dot, fraction = value.partition(".")
    whole = _go_int64(seconds)
    if whole is None:
        return None
    if not dot:
        return float(whole)
    part = _go_int64(fraction)
    if part is None:
        return None
    return float(whole + part / 10 ** len(fraction))


def _go_int64(text: str) -> int | None:
    if not re.fullmatch(r"[+-]?\d+", text):
        return None
    number = int(text)
    return number if -_INT64 <= number < _INT64 else None
