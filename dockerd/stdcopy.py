"""Docker's multiplexed stream format (moby's pkg/stdcopy): logs and attach without a TTY."""

from __future__ import annotations

import struct

STREAMS = {"stdin": 0, "stdout": 1, "stderr": 2}


def frame(stream: str, data: bytes) -> bytes:
    """One frame: stream type, 3 zero bytes, big-endian length, then the data."""
    return struct.pack(">BxxxL", STREAMS[stream], len(data)) + data
