"""Device access rules: a model of the cgroup v1 devices controller, used to compute minimal updates.

The kernel keeps a default (allow-all or deny-all) plus a list of exceptions keyed by (type, major,
minor). Writing 'a' resets the default and clears the exceptions; a rule in the same direction as the
exceptions adds access bits, a rule in the opposite direction removes bits from the exact same key.
Modelling this lets us skip rewriting rules that are already in force (a running container briefly
losing /dev/null access during `update` would be a bug), and tells v2 whether any rule is needed.
"""

from __future__ import annotations

from .resources import DeviceRule

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_Key = tuple[str, int | None, int | None]


def _mk(allow: bool, dtype: str, major: int | None, minor: int | None, access: str) -> DeviceRule:
    return DeviceRule(allow=allow, type=dtype, major=major, minor=minor, access=access)


# Devices every runc container may use, appended by runc's spec conversion after the spec's own rules
# (observed in devices.list of a runc 1.1 container). The runtime adds these; the manager does not.
RUNC_DEFAULT_DEVICE_RULES: tuple[DeviceRule, ...] = (
    _mk(True, "c", None, None, "m"),
    _mk(True, "b", None, None, "m"),
    _mk(True, "c", 1, 3, "rwm"),  # /dev/null
    _mk(True, "c", 1, 8, "rwm"),  # /dev/random
    _mk(True, "c", 1, 7, "rwm"),  # /dev/full
    _mk(True, "c", 5, 0, "rwm"),  # /dev/tty
    _mk(True, "c", 1, 5, "rwm"),  # /dev/zero
    _mk(True, "c", 1, 9, "rwm"),  # /dev/urandom
    _mk(True, "c", 136, None, "rwm"),  # /dev/pts/*
    _mk(True, "c", 5, 2, "rwm"),  # /dev/ptmx
    _mk(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)


def runc_default_devices() -> list[dict[str, Any]]:
    """RUNC_DEFAULT_DEVICE_RULES as OCI linux.resources.devices entries, ready to append to a spec's."""
    out: list[dict[str, Any]] = []
    for r in RUNC_DEFAULT_DEVICE_RULES:
        entry: dict[str, Any] = {"allow": r.allow, "type": r.type}
        # OCI spells a wildcard by leaving the number out.
        if r.major is not None:
            entry["major"] = r.major
        if r.minor is not None:
            entry["minor"] = r.minor
        entry["access"] = r.access
        out.append(entry)
    return out


def _union(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a or c in b)


def _minus(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a and c not in b)


class DeviceState:
    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool, exceptions: dict[_Key, str] | None = None) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[_Key, str] = exceptions if exceptions is not None else {}  # key -> access bits

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceState):
            return NotImplemented
        return self.default_allow == other.default_allow and self.exceptions == other.exceptions

    def __repr__(self) -> str:
        return f"DeviceState(default_allow={self.default_allow!r}, exceptions={self.exceptions!r})"

    def apply(self, rule: DeviceRule) -> None:
        if rule.type == "a":
            # The kernel treats any 'a' rule as "everything", whatever major/minor/access say.
            self.default_allow = rule.allow
            self.exceptions = {}
            return
        key: _Key = (rule.type, rule.major, rule.minor)
        if rule.allow != self.default_allow:
            self.exceptions[key] = _union(self.exceptions.get(key, ""), rule.access)
        elif key in self.exceptions:
            left = _minus(self.exceptions[key], rule.access)
            if left:
                self.exceptions[key] = left
            else:
                del self.exceptions[key]

    def is_allow_all(self) -> bool:
        return self.default_allow and not self.exceptions

    def rules(self) -> list[DeviceRule]:
        """Rules that, written in order to a cgroup, produce exactly this state."""
        out = [_mk(self.default_allow, "a", None, None, "rwm")]
        for (dtype, major, minor), access in self.exceptions.items():
            out.append(_mk(not self.default_allow, dtype, major, minor, access))
        return out


def target_state(rules: list[DeviceRule]) -> DeviceState:
    # Like runc, a rule list is read against a deny-all start: containers get only what is listed.
    state = DeviceState(default_allow=False)
    for rule in rules:
        state.apply(rule)
    return state


def parse_devices_list(text: str) -> DeviceState:
    """devices.list: 'a *:* rwm' when default-allow (exceptions are not shown), else the allow list."""
    state = DeviceState(default_allow=False)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        dtype, numbers, access = parts
        if dtype == "a":
            return DeviceState(default_allow=True)
        major_s, _, minor_s = numbers.partition(":")
        key: _Key = (
            dtype,
            None if major_s == "*" else int(major_s),
            None if minor_s == "*" else int(minor_s),
        )
        state.exceptions[key] = _union(state.exceptions.get(key, ""), access)
    return state


def transition(current: DeviceState, target: DeviceState) -> list[DeviceRule]:
    """Rules to write to get from current to target, without a deny-all window when avoidable."""
    if not current.default_allow and not target.default_allow:
        steps: list[DeviceRule] = []
        for key, access in current.exceptions.items():
            gone = _minus(access, target.exceptions.get(key, ""))
            if gone:
                steps.append(_mk(False, key[0], key[1], key[2], gone))
        for key, access in target.exceptions.items():
            new = _minus(access, current.exceptions.get(key, ""))
            if new:
                steps.append(_mk(True, key[0], key[1], key[2], new))
        return steps
    if current.is_allow_all() and target.is_allow_all():
        return []
    # devices.list hides deny exceptions in allow mode, so we cannot diff: rebuild from scratch.
    return target.rules()
