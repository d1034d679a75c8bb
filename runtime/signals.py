"""Signal names as runc accepts them: KILL, SIGKILL, kill, 9, SIGRTMIN+3."""

from __future__ import annotations

import signal

from runtime.errors import PyruncError


def parse(raw: str) -> int:
    text = raw.strip()
    if text.isdigit():
        number = int(text)
        if 0 < number <= signal.SIGRTMAX:
            return number
        raise PyruncError(f"invalid signal: {raw}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for base, value in (("SIGRTMIN+", signal.SIGRTMIN), ("SIGRTMAX-", signal.SIGRTMAX)):
        if name.startswith(base) and name[len(base) :].isdigit():
            offset = int(name[len(base) :])
            number = value + offset if base.endswith("+") else value - offset
            if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                return number
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise PyruncError(f"unknown signal {raw!r}") from None
