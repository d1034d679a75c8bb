"""Reading cgroups, v1 and v2, for pyrunc and the shim alike; changing them (creating, limits,
freezing) is pyrunc's alone (runtime/linux/cgroups/).

Here: reading cgroup files with one-line errors naming the file, the kernel's number formats, and
EventsFile for watching a v2 events file. layout.py finds the hierarchies and a process's cgroups
in them; stats.py reads the statistics files. Import-light (errno, os): pyrunc loads this on
every verb that touches a cgroup, the shim for every task."""

from __future__ import annotations

import errno
import os


class CgroupError(Exception):
    """A cgroup operation failed; the message is one human-readable line."""

    def __init__(self, message: str, errno_value: int | None = None) -> None:
        super().__init__(message)
        # The kernel's errno when a control file write was refused; lets callers retry in another order.
        self.errno = errno_value


def strerror(err: OSError) -> str:
    return os.strerror(err.errno) if err.errno else str(err)


def _read_text(path: str) -> str:
    # Raw os.read rather than open(): no buffered text layer to build, and decoding bytes as ASCII
    # needs no codec module import (open(encoding="ascii") loads encodings.ascii).
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            # Control files are generated per read; keep reading until the kernel says EOF.
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def read_file(directory: str, name: str) -> str:
    try:
        return _read_text(os.path.join(directory, name))
    except OSError as err:
        raise CgroupError(
            f"cgroup: reading {os.path.join(directory, name)} failed: {strerror(err)}"
        ) from None


def read_optional(directory: str, name: str) -> str | None:
    """The file's content, or None when this kernel/controller does not provide it."""
    try:
        return _read_text(os.path.join(directory, name))
    except FileNotFoundError:
        return None
    except OSError as err:
        # ENODEV/EOPNOTSUPP: file exists but the feature is compiled out or disabled.
        if err.errno in (errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise CgroupError(
            f"cgroup: reading {os.path.join(directory, name)} failed: {strerror(err)}"
        ) from None


def read_uint(directory: str, name: str) -> int:
    """An unsigned value; 0 when the file is missing (the way runc reports absent counters)."""
    text = read_optional(directory, name)
    if text is None:
        return 0
    return parse_uint(text.strip())


def parse_uint(text: str) -> int:
    """Parse a cgroup number; 'max' and negative values (v1 '-1') mean unlimited -> 2**64-1 like runc."""
    if text == "max":
        return 2**64 - 1
    try:
        value = int(text)
    except ValueError:
        raise CgroupError(f"cgroup: unexpected value {text!r}") from None
    return value if value >= 0 else 2**64 - 1


def parse_flat_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.stat, cpu.stat, memory.events, ...)."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                result[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return result


def parse_cpu_list(text: str) -> list[int]:
    """Kernel list format '0-3,5' -> [0, 1, 2, 3, 5]."""
    result: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            result.extend(range(int(lo), int(hi) + 1))
        else:
            result.append(int(part))
    return result


def read_procs(directory: str) -> list[int]:
    text = read_optional(directory, "cgroup.procs")
    if text is None:
        return []
    return [int(x) for x in text.split()]


def walk_dirs(directory: str) -> list[str]:
    """The directory and every cgroup below it, parents before children."""
    if not os.path.isdir(directory):
        return []
    result = []
    for root, _dirs, _files in os.walk(directory):
        result.append(root)
    return result


def all_pids(directory: str) -> list[int]:
    pids: set[int] = set()
    for d in walk_dirs(directory):
        pids.update(read_procs(d))
    return sorted(pids)


class EventsFile:
    """A cgroup v2 events file (memory.events, cgroup.events...) held open to be watched.

    The kernel wakes a poll() on it for POLLPRI (epoll reports EPOLLPRI | EPOLLERR) when one of its
    values changes; reading it again through the same fd re-arms the notice (kernfs compares the
    fd's event count with the file's). Once the cgroup is removed the file polls as always ready and
    read() fails with ENODEV: the watcher must stop then.
    """

    __slots__ = ("fd", "path")

    def __init__(self, directory: str, name: str) -> None:
        self.path = os.path.join(directory, name)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

    def read(self) -> dict[str, int]:
        return parse_flat_keyed(os.pread(self.fd, 65536, 0).decode("ascii", "replace"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
