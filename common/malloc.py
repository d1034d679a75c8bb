"""glibc malloc settings for the long-running daemons (pydockerd, pycontainerd).

glibc serves an allocation of 128 KiB or more with its own mmap and unmaps it on free, but
after the first such block is freed it raises that threshold to the block's size (up to 32 MiB,
its "dynamic mmap threshold"). From then on the large buffers a daemon handles (a layer
streamed through `docker load` or a pull, gRPC messages of up to 4 MiB, JSON bodies) come from
the heap and the threads' arenas, which fragment and stay resident after they are freed.
Setting the threshold explicitly turns the adjustment off: measured, a `docker load` of busybox
left pydockerd 5-10 MiB and pycontainerd 6 MiB larger with the dynamic threshold, 0.5 and 2.5 MiB
with it fixed (docs/BENCHMARKS.md, "pydockerd vs dockerd 20.10"). The cost is an mmap/munmap
pair per large buffer, small beside the copying of the data in it.

mallopt rather than the MALLOC_MMAP_THRESHOLD_ environment variable: the setting is the
process's own and is not inherited by what it runs (shims, pyrunc, iptables).
"""

from __future__ import annotations

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024  # glibc's default, now fixed
TRIM_THRESHOLD = 128 * 1024  # glibc's default: give back heap tops larger than this at free


def fix_thresholds() -> bool:
    """Fix the mmap and trim thresholds at glibc's defaults; False where there is no glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
