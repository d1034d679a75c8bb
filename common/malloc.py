"""Giving freed heap back to the system in the long-running daemons (pydockerd, pycontainerd).

glibc keeps what a process freed for its next allocations, and it serves large blocks from the
heap too once one has been freed (its dynamic mmap threshold, up to 32 MiB). For the daemons
that is the right trade while they work: a `docker load`, pull or save of 200 MiB costs pydockerd
2.7 s of CPU that way, and 7.3 s with the threshold fixed at 128 KiB (every large buffer mmapped,
zero-filled and unmapped again; 4-5 s with it at 4 or 32 MiB and the trim threshold fixed). But
what the work freed then stays resident while the daemon idles: 5-10 MiB in pydockerd after a
`docker load` of busybox, 30 MiB after one of 200 MiB.

So, as Go's runtime scavenges its heap in the background, `Scavenger` watches the process's RSS
(/proc/self/statm, once a second: one read) and calls malloc_trim(0), which returns the free
pages of every arena, once the RSS has grown by GROWTH since the last trim and held still for a
second: after a burst of work, not during one. Measured, docs/BENCHMARKS.md ("pydockerd vs
dockerd 20.10").
"""

from __future__ import annotations

import os
import threading

GROWTH = 4 << 20  # bytes of RSS growth since the last trim that make the next one worth it
INTERVAL = 1.0  # seconds between looks at the RSS


def _rss_bytes(fd: int) -> int:
    fields = os.pread(fd, 128, 0).split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


class Scavenger:
    """A daemon thread that trims the heap after bursts of work (see the module's docstring)."""

    def __init__(self, growth: int = GROWTH, interval: float = INTERVAL) -> None:
        self.growth = growth
        self.interval = interval
        self.trims = 0
        self._stop = threading.Event()

    def start(self) -> bool:
        """Start watching; False where there is no glibc (nothing to trim with)."""
        import ctypes

        try:
            trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            return False
        trim.argtypes = (ctypes.c_size_t,)
        fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        threading.Thread(target=self._run, args=(fd, trim), name="malloc-scavenger", daemon=True).start()
        return True

    def stop(self) -> None:
        self._stop.set()

    def _run(self, fd: int, trim: object) -> None:
        try:
            base = previous = _rss_bytes(fd)
            while not self._stop.wait(self.interval):
                rss = _rss_bytes(fd)
                if rss - base >= self.growth and abs(rss - previous) < self.growth // 4:
                    trim(0)  # type: ignore[operator]  # ctypes function
                    self.trims += 1
                    rss = _rss_bytes(fd)
                    base = rss
                base = min(base, rss)
                previous = rss
        finally:
            os.close(fd)
