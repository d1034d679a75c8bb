"""Mounts: containerd's mount package lives with the client (containerd/client/mount.py)."""

from containerd.client.mount import (
    Mount,
    is_bind,
    is_readonly,
    mount_all,
    mount_points,
    option_value,
    overlay_dirs,
    readonly,
    temp_mount,
    unmount,
    unmount_all,
)

__all__ = [
    "Mount",
    "is_bind",
    "is_readonly",
    "mount_all",
    "mount_points",
    "option_value",
    "overlay_dirs",
    "readonly",
    "temp_mount",
    "unmount",
    "unmount_all",
]
