"""Sizes as Docker's go-units parses them."""

from __future__ import annotations

import re

from dockerd.engine.errors import InvalidParameter

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[iI]?[bB]?")
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: binary multiples, "512m" is 512 MiB; refusal worded as go-units."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _BINARY[match.group(2).lower()])
