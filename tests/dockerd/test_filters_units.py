"""dockerd's filter semantics in dockerd/engine/filters.py, case by case (the API tests in
test_engine_hangs.py check the same against the reference dockerd; these pin the corners)."""

from __future__ import annotations

import calendar
import time

import pytest

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.filters import (
    Filters,
    dangling_only,
    get_timestamp,
    go_duration,
    match_labels,
    prune_until,
)

NOW = 1_700_000_000.25


@pytest.mark.parametrize(
    "raw, fields",
    [
        ("", {}),
        ("null", {}),
        ('{"label": {"a=1": true, "b": false}}', {"label": {"a=1": True, "b": False}}),
        ('{"label": ["a=1", "b"]}', {"label": {"a=1": True, "b": True}}),
        ('{"label": null}', {"label": {}}),
    ],
)
def test_wire_forms(raw: str, fields: dict[str, dict[str, bool]]) -> None:
    assert Filters.from_json(raw).fields == fields


@pytest.mark.parametrize(
    "raw, message",
    [
        ("nope", "invalid filters: 'nope' is not JSON"),
        ('"x"', "json: cannot unmarshal string into Go value of type map[string]map[string]bool"),
        ('{"a": {"x": 1}, "b": "y"}', "json: cannot unmarshal number into Go value of type bool"),
        ('{"a": ["x", 2]}', "json: cannot unmarshal array into Go value of type map[string]bool"),
        ("[" * 5000 + "]" * 5000, "invalid filters: "),
    ],
)
def test_malformed_filters(raw: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        Filters.from_json(raw)
    assert str(info.value).startswith(message)


def test_labels_as_dockerd_matches_them() -> None:
    f = Filters.from_json('{"label": ["a", "b=2"]}')
    assert match_labels(f, {"a": "x", "b": "2"})
    assert (
        not match_labels(f, {"a": "x", "b": "3"})
        and not match_labels(f, {"b": "2"})
        and not match_labels(f, None)
    )
    # label!: excluded only when every value matches (dockerd's MatchKVList on "label!")
    g = Filters.from_json('{"label!": ["a", "b=2"]}')
    assert not match_labels(g, {"a": "", "b": "2"})
    assert match_labels(g, {"a": ""}) and match_labels(g, {}) and match_labels(g, None)


@pytest.mark.parametrize(
    "raw, only",
    [
        ("{}", True),
        ('{"dangling": ["true"]}', True),
        ('{"dangling": ["0"]}', False),
        ('{"dangling": {"false": true}}', False),
    ],
)
def test_dangling(raw: str, only: bool) -> None:
    assert dangling_only(Filters.from_json(raw)) is only


def test_dangling_refuses_other_values() -> None:
    with pytest.raises(InvalidParameter, match=r"^Invalid filter 'dangling=\[maybe\]'$"):
        dangling_only(Filters.from_json('{"dangling": ["maybe"]}'))


def _utc(*parts: int) -> float:
    return float(calendar.timegm((*parts, 0, 0, 0)))


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1h", float(int(NOW - 3600))),
        ("1h30m", float(int(NOW - 5400))),
        ("-10m", float(int(NOW + 600))),
        ("1.5s", float(int(NOW - 1.5))),
        ("1700000000", 1_700_000_000.0),
        ("1700000000.5", 1_700_000_000.5),
        ("0", 0.0),
        ("2020-01-02T03:04:05Z", _utc(2020, 1, 2, 3, 4, 5)),
        ("2020-01-02T03:04:05.25Z", _utc(2020, 1, 2, 3, 4, 5) + 0.25),
        ("2020-01-02T03:04:05+01:00", _utc(2020, 1, 2, 2, 4, 5)),
        ("2020-01-02T03:04Z", _utc(2020, 1, 2, 3, 4, 0)),
        ("2020-01-02T03Z", _utc(2020, 1, 2, 3, 0, 0)),
        ("2020-01-02Z", _utc(2020, 1, 2, 0, 0, 0)),
        ("2020-01-02", _utc(2020, 1, 2, 0, 0, 0) - time.localtime(NOW).tm_gmtoff),
    ],
)
def test_timestamps_and_durations(value: str, expected: float) -> None:
    assert get_timestamp(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value, message",
    [
        ("abc", 'failed to parse value as time or duration: "abc"'),
        ("", 'failed to parse value as time or duration: ""'),
        ("99999999999999999999", 'failed to parse value as time or duration: "99999999999999999999"'),
        ("2020-13-01", 'parsing time "2020-13-01": month out of range'),
        ("2020-02-30", 'parsing time "2020-02-30": day out of range'),
        ("2020-01-01T24:00", 'parsing time "2020-01-01T24:00": hour out of range'),
    ],
)
def test_bad_times(value: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        get_timestamp(value, NOW)
    assert str(info.value) == message


def test_until_once() -> None:
    assert prune_until(Filters.from_json("{}")) is None
    assert prune_until(Filters.from_json('{"until": ["10m"]}'), NOW) == float(int(NOW - 600))
    with pytest.raises(InvalidParameter, match="^more than one until filter specified$"):
        prune_until(Filters.from_json('{"until": ["1h", "2h"]}'))


def test_go_durations() -> None:
    assert go_duration("1h2m3.5s") == pytest.approx(3723.5)
    assert go_duration("250ms") == pytest.approx(0.25) and go_duration("1µs") == pytest.approx(1e-6)
    assert go_duration("1d") is None and go_duration("5") is None and go_duration("h") is None
    assert go_duration("3000000h") is None  # past Go's int64 nanoseconds
