"""Capabilities: the five sets of process.capabilities, applied around the uid switch."""

from __future__ import annotations

from common import libc
from runtime.errors import PyruncError

NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip
NUMBERS = {name: i for i, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def to_mask(names: list[str], strict: bool = False) -> int:
    """Unknown names are skipped, as runc does (a newer profile may name capabilities this kernel lacks)."""
    mask = 0
    last = libc.last_cap()
    for name in names:
        number = NUMBERS.get(name.upper())
        if number is None:
            if strict:
                raise PyruncError(f"unknown capability {name!r}")
            continue
        if number <= last:
            mask |= 1 << number
    return mask


def validate(caps: dict[str, list[str]]) -> None:
    for key in SETS:
        for name in caps.get(key) or []:
            if name.upper() not in NUMBERS:
                raise PyruncError(f"unknown capability {name!r} in process.capabilities.{key}")


def check_grantable(caps: dict[str, list[str]]) -> None:
    """Fail now, with names, where capset would be refused after `start`: a capability the runtime
    itself does not hold (outside the host's bounding set, say) cannot be given to the container."""
    _, held, _ = libc.capget()
    missing = (to_mask(caps.get("permitted") or []) | to_mask(caps.get("effective") or [])) & ~held
    if missing:
        names = ", ".join(name for i, name in enumerate(NAMES) if missing & (1 << i))
        raise PyruncError(f"unable to apply caps: the runtime does not hold {names}")


def drop_bounding(keep_names: list[str]) -> None:
    keep = to_mask(keep_names)
    for cap in range(libc.last_cap() + 1):
        if not keep & (1 << cap) and libc.capbset_read(cap):
            libc.capbset_drop(cap)


def apply_process_sets(caps: dict[str, list[str]]) -> None:
    """Called after the uid switch (with keepcaps set), before exec."""
    libc.capset(
        to_mask(caps.get("effective") or []),
        to_mask(caps.get("permitted") or []),
        to_mask(caps.get("inheritable") or []),
    )
    libc.cap_ambient_clear()
    for name in caps.get("ambient") or []:
        number = NUMBERS.get(name.upper())
        if number is None or number > libc.last_cap():
            continue
        try:
            libc.cap_ambient_raise(number)
        except OSError:
            # The kernel refuses an ambient cap missing from permitted or inheritable; runc ignores it too.
            pass
