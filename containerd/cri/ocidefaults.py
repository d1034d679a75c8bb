"""The OCI spec a CRI container starts from, as containerd's oci package fills it for Linux
(`populateDefaultUnixSpec`): its default mounts (proc, a tmpfs /dev with devpts, shm and mqueue,
a read-only sysfs and cgroup tree), masked and read-only /proc and /sys paths, and a device cgroup
that denies everything the spec does not add.

pycontainerd's own copy: the daemon runs the OCI runtime as a program and shares no code with it
(pyproject.toml's import contracts), as containerd does not import runc. Pure data; every call
returns fresh lists the caller may change.
"""

from __future__ import annotations

from typing import Any

MASKED_PATHS = (
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
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def mounts() -> list[dict[str, Any]]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": list(_NOSUID_NOEXEC_NODEV)},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": list(_NOSUID_NOEXEC_NODEV),
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOSUID_NOEXEC_NODEV, "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*_NOSUID_NOEXEC_NODEV, "relatime", "ro"],
        },
    ]


def linux_spec(hostname: str, path_env: str) -> dict[str, Any]:
    """A whole spec with containerd's defaults; process fields are the caller's to fill."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"user": {"uid": 0, "gid": 0}, "args": [], "env": [path_env], "cwd": "/"},
        "root": {"path": "rootfs"},
        "hostname": hostname,
        "mounts": mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
