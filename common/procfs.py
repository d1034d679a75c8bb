"""What /proc/PID/stat says about a process, read without ctypes.

pyrunc's `start`, `delete`, `kill` and `state` only need these two fields of a container's init,
so they live apart from common/libc.py: importing ctypes costs a verb about as much as half an
interpreter start-up.
"""

from __future__ import annotations


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rindex(b")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a live container init from a recycled pid."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat (R, S, Z, ...), None if the pid is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[0].decode()
