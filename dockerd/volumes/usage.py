"""Disk usage of a volume's data, as moby's directory.Size counts it."""

from __future__ import annotations

import os
import stat


def directory_size(path: str) -> int:
    """Bytes in the files below PATH: sizes of non-directories, each inode once, symlinks not followed.

    Mounts below PATH are not crossed (a volume's data is one file system).
    """
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev == top.st_dev:
                    stack.append(entry.path)
                continue
            if st.st_size == 0 or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
