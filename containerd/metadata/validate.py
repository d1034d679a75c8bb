"""Validation rules shared by the metadata stores (containerd's identifiers and labels)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from containerd.errors import InvalidArgument

MAX_IDENTIFIER = 76
MAX_LABEL = 4096  # key + value, in bytes
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")


def validate_identifier(kind: str, value: str) -> str:
    """Namespaces, container ids and lease ids: containerd's identifier rule."""
    if not value:
        raise InvalidArgument(f"{kind} must not be empty")
    if len(value) > MAX_IDENTIFIER:
        raise InvalidArgument(f"{kind} {value!r} is longer than {MAX_IDENTIFIER} characters")
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidArgument(
            f"{kind} {value!r} must be letters and digits, optionally separated by single '.', '_' or '-'"
        )
    return value


def validate_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Check containerd's label rules and return a plain copy without empty values
    (containerd drops labels set to "", which is also how a label is removed)."""
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument(f"label {key!r}: keys and values must be strings")
        if not key:
            raise InvalidArgument("label key must not be empty")
        size = len(key.encode()) + len(value.encode())
        if size > MAX_LABEL:
            raise InvalidArgument(
                f"label {key[:32]!r}: key and value are {size} bytes, more than {MAX_LABEL}"
            )
        if value:
            out[key] = value
    return out


def update_mapping(
    current: Mapping[str, str],
    incoming: Mapping[str, str],
    fieldpaths: Sequence[str],
    prefix: str,
) -> tuple[dict[str, str], list[str]]:
    """Apply the `prefix` and `prefix.<key>` field paths; return the new mapping and the
    field paths that were not about this mapping.

    `prefix` alone replaces the whole mapping; `prefix.key` copies one key from
    `incoming` (removing it when absent there).
    """
    result = dict(current)
    others: list[str] = []
    for path in fieldpaths:
        if path == prefix:
            result = dict(incoming)
        elif path.startswith(prefix + "."):
            key = path[len(prefix) + 1 :]
            if key in incoming and incoming[key]:
                result[key] = incoming[key]
            else:
                result.pop(key, None)
        else:
            others.append(path)
    return result, others


def dump_labels(labels: Mapping[str, str]) -> str:
    return json.dumps(dict(labels), sort_keys=True)


def load_labels(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()}
