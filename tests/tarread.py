"""Reading files out of the tar archives tests get (docker save, export, build contexts)."""

from __future__ import annotations

import tarfile
from typing import IO


def member(tar: tarfile.TarFile, name: str | tarfile.TarInfo) -> IO[bytes]:
    """The file NAME of TAR, open for reading.

    tarfile answers None for a member with no data (a directory, a device): a test that expects a
    regular file there fails here, with the name, rather than on None.read().
    """
    data = tar.extractfile(name)
    assert data is not None, f"{name} has no data in the archive"
    return data
