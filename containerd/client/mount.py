"""Mounts as containerd describes them, and doing them (containerd's mount package, common/mount.py)."""

from common.mount import (
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
