"""common.fastjson must agree with the json package on everything the runtime reads and writes."""

from __future__ import annotations

import json

import pytest

from common import fastjson
from runtime.spec_default import default_spec

SAMPLES = [
    default_spec(),
    {
        "unicode": "é ü 漢字 \u2028 \x00",
        "escapes": 'quote" back\\ tab\t nl\n',
        "nested": [[], {}, [{"a": [None]}]],
    },
    {"numbers": [0, -1, 2**63, 1.5, -2.25e-10, 1e300], "bools": [True, False], "null": None},
    [],
    "just a string",
    12345,
]


@pytest.mark.parametrize("value", SAMPLES)
def test_round_trip_matches_json(value: object) -> None:
    assert fastjson.loads(fastjson.dumps(value)) == value
    assert json.loads(fastjson.dumps(value)) == value
    assert fastjson.loads(json.dumps(value, indent=2)) == value
    assert fastjson.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a":1} trailing', "[1,]", '{"a" 1}', "nul", "{'a': 1}"])
def test_malformed_input_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_unserialisable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"a": object()})


def test_state_output_is_json_dumps_indent_2() -> None:
    """`pyrunc state` prints without the json package; its text must be json.dumps(indent=2)'s."""
    import json

    from runtime.container_query import indented

    doc = {
        "ociVersion": "1.2.0",
        "id": "c1",
        "pid": 4242,
        "status": "running",
        "bundle": '/tmp/a b/\u00e9"\\',
        "annotations": {"k": "v", "empty": ""},
        "nested": [[], {}, [1, 2.5, None, True, False], {"x": []}],
    }
    values: list[object] = [doc, {}, [], "s", 0, [[]], {"a": {}}]
    for value in values:
        assert indented(value) == json.dumps(value, indent=2)
