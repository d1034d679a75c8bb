"""Mount options as the OCI spec and containerd write them (`ro`, `nosuid`, `rbind`, `rslave`,
`size=64m`...) turned into mount(2)'s flags, the propagation changes made after it, and the
data string the filesystem parses.

One table for pyrunc (the spec's mounts), the shim (a task's rootfs), pycontainerd and its
clients (common/mount.py) and pydockerd's local volumes. Import-light: it is on pyrunc's path.
"""

from __future__ import annotations

from common import libc

FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    # option: (clear instead of set, flag)
    "ro": (False, libc.MS_RDONLY),
    "rw": (True, libc.MS_RDONLY),
    "nosuid": (False, libc.MS_NOSUID),
    "suid": (True, libc.MS_NOSUID),
    "nodev": (False, libc.MS_NODEV),
    "dev": (True, libc.MS_NODEV),
    "noexec": (False, libc.MS_NOEXEC),
    "exec": (True, libc.MS_NOEXEC),
    "sync": (False, libc.MS_SYNCHRONOUS),
    "async": (True, libc.MS_SYNCHRONOUS),
    "dirsync": (False, libc.MS_DIRSYNC),
    "remount": (False, libc.MS_REMOUNT),
    "mand": (False, libc.MS_MANDLOCK),
    "nomand": (True, libc.MS_MANDLOCK),
    "atime": (True, libc.MS_NOATIME),
    "noatime": (False, libc.MS_NOATIME),
    "diratime": (True, libc.MS_NODIRATIME),
    "nodiratime": (False, libc.MS_NODIRATIME),
    "relatime": (False, libc.MS_RELATIME),
    "norelatime": (True, libc.MS_RELATIME),
    "strictatime": (False, libc.MS_STRICTATIME),
    "nostrictatime": (True, libc.MS_STRICTATIME),
    "lazytime": (False, libc.MS_LAZYTIME),
    "nolazytime": (True, libc.MS_LAZYTIME),
    "symfollow": (True, libc.MS_NOSYMFOLLOW),
    "nosymfollow": (False, libc.MS_NOSYMFOLLOW),
    "bind": (False, libc.MS_BIND),
    "rbind": (False, libc.MS_BIND | libc.MS_REC),
}

PROPAGATION: dict[str, int] = {
    "private": libc.MS_PRIVATE,
    "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "shared": libc.MS_SHARED,
    "rshared": libc.MS_SHARED | libc.MS_REC,
    "slave": libc.MS_SLAVE,
    "rslave": libc.MS_SLAVE | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE,
    "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}

# Options that only tools like mount(8) understand; the kernel would reject them as data.
_IGNORED_OPTIONS = {
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "_netdev",
    "nofail",
    "tmpcopyup",
    "idmap",
    "ridmap",
}


class MountOptions:
    """What parse_options makes of a list: flags for mount(2), propagation flags for the mount(2)
    calls that follow it (one each, in order), and the comma-joined filesystem data."""

    __slots__ = ("flags", "propagation", "data")

    def __init__(self, flags: int, propagation: list[int], data: str) -> None:
        self.flags = flags
        self.propagation = propagation
        self.data = data


def parse_options(options: list[str]) -> MountOptions:
    """Later options win over earlier ones (`ro` then `rw` is read-write), as mount(8)'s."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in FLAG_OPTIONS:
            clear, flag = FLAG_OPTIONS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION:
            propagation.append(PROPAGATION[opt])
        elif opt in _IGNORED_OPTIONS:
            continue
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data))
