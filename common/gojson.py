"""Go's encoding/json as Docker's programs show it: the wording of its syntax errors (which
the CLI and dockerd put in their messages) and json.Compact. Shared by the CLI and pydockerd;
standard library only."""

from __future__ import annotations

import json

# What Go's encoding/json says where Python's decoder says the left-hand side.
_GO_SYNTAX = {
    "Expecting value": "looking for beginning of value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
    "Extra data": "after top-level value",
}


def syntax_error(text: str, exc: json.JSONDecodeError) -> str:
    """Go's json.Compact error for the same input, as near as Python's decoder tells."""
    rest = text[exc.pos :]
    if not rest.strip():
        return "unexpected end of JSON input"
    char = rest.lstrip()[0] if exc.msg != "Extra data" else rest[0]
    return f"invalid character {char!r} {_GO_SYNTAX.get(exc.msg, 'looking for beginning of value')}"


def compact(text: str) -> str:
    """The JSON without insignificant whitespace (Go's json.Compact: nothing else changes)."""
    out = []
    in_string = escaped = False
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char not in " \t\n\r":
            out.append(char)
    return "".join(out)
