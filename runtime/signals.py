"""Signal names as runc accepts them: KILL, SIGKILL, kill, 9, SIGRTMIN+3."""

from __future__ import annotations

import _signal  # the C module: `signal` builds an enum, which `kill` would pay for at every call

from runtime.errors import PyruncError


def parse(raw: str) -> int:
    text = raw.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number <= _signal.SIGRTMAX:
            return number
        raise PyruncError(f"invalid signal: {raw}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, value in (("SIGRTMIN+", _signal.SIGRTMIN), ("SIGRTMAX-", _signal.SIGRTMAX)):
        if name.startswith(base) and name[len(base) :].isdigit():
            offset = int(name[len(base) :])
            number = int(value + offset if base.endswith("+") else value - offset)
            if _signal.SIGRTMIN <= number <= _signal.SIGRTMAX:
                return number
    # The names signal.Signals holds: the C module's SIG* constants (aliases such as SIGIOT too).
    found: object = getattr(_signal, name, None) if not name.startswith("SIG_") else None
    if not isinstance(found, int):
        raise PyruncError(f"unknown signal {raw!r}")
    return found
