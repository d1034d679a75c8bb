"""The default OCI runtime configuration, as `pyrunc spec` writes it.

It matches what `runc spec` (and `runc spec --rootless`) produce field by
field, except that the hostname is "pyrunc". Pure data: every call returns a
fresh dict the caller may mutate.
"""

from __future__ import annotations

import copy
from typing import Any

OCI_VERSION = "1.0.2-dev"
DEFAULT_HOSTNAME = "pyrunc"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The three capabilities runc grants by default; the same set in every bucket
# (bounding, effective, permitted, ambient) so an exec'd shell keeps them.
_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]

_READONLY_PATHS = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
]


def _mounts(rootless: bool) -> list[dict[str, Any]]:
    devpts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        # An unprivileged user namespace cannot map gid 5 (tty), so rootless drops it.
        devpts_options.append("gid=5")
    if rootless:
        # sysfs cannot be mounted fresh without owning the network namespace, so
        # rootless containers bind the host's /sys read-only instead.
        sys_mount: dict[str, Any] = {
            "destination": "/sys",
            "type": "none",
            "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
    else:
        sys_mount = {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        }
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts_options},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        sys_mount,
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def _linux(rootless: bool, host_uid: int, host_gid: int) -> dict[str, Any]:
    if rootless:
        return {
            "uidMappings": [{"containerID": 0, "hostID": host_uid, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": host_gid, "size": 1}],
            # No network namespace: an unprivileged user could not configure it anyway.
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")],
            "maskedPaths": list(_MASKED_PATHS),
            "readonlyPaths": list(_READONLY_PATHS),
        }
    return {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": list(_MASKED_PATHS),
        "readonlyPaths": list(_READONLY_PATHS),
    }


def default_spec(rootless: bool = False, *, host_uid: int = 0, host_gid: int = 0) -> dict[str, Any]:
    """Return a new default config.json as a dict.

    `host_uid`/`host_gid` only matter when `rootless` is true: they are the ids
    the container's root maps to (runc uses the caller's effective ids; the
    caller passes them in so this module stays free of process state).
    """
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                bucket: list(_DEFAULT_CAPS) for bucket in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": DEFAULT_HOSTNAME,
        "mounts": _mounts(rootless),
        "linux": _linux(rootless, host_uid, host_gid),
    }
    # Belt and braces: nothing in the result may alias module-level lists.
    return copy.deepcopy(spec)
