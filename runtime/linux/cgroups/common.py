"""Changing cgroups, shared by the v1 and v2 managers: control file writes with readable errors,
removal of busy cgroups, cgroupsPath cleaning. Reading is common/cgroups/files.py (the shim reads
the same files)."""

from __future__ import annotations

import errno
import os
import time

from common.cgroups.files import CgroupError, strerror


def write_file(directory: str, name: str, value: str | int) -> None:
    """Write one value to a cgroup control file, naming the file and the kernel's reason on failure."""
    data = str(value)
    path = os.path.join(directory, name)
    try:
        # One write(2) per value: the kernel parses each write as a whole command.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise CgroupError(f"cgroup: setting {name} to {data} failed: {strerror(err)}", err.errno) from None


def rmdir_retry(path: str, timeout: float = 2.0) -> bool:
    """rmdir a cgroup, retrying while the kernel still reports it busy.

    Returns False if it stayed busy (e.g. a sibling container still lives in a shared parent)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return False
                raise CgroupError(f"cgroup: removing {path} failed: {strerror(err)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def clean_path(path: str) -> str:
    """Lexically clean a cgroup path so '..' can never climb above where it starts (like runc)."""
    absolute = path.startswith("/")
    cleaned = os.path.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = cleaned[1:]
    return cleaned if absolute else cleaned.lstrip("/")
