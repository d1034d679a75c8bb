"""GET /containers/{id}/export: the container's filesystem (its snapshot, read-only,
without mounts) as a tar."""

from __future__ import annotations

import tempfile
from typing import IO, TYPE_CHECKING

from dockerd.engine.archive import TarWriter
from dockerd.engine.container import accounts, rootfs

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def export(d: Containers, ref: str) -> IO[bytes]:
    """A tar of the container's filesystem (its snapshot, without mounts), spooled."""
    c = d.get(ref)
    out = tempfile.TemporaryFile(dir=d.tmp_dir)
    try:
        with rootfs.readonly_root(d, c) as root:
            writer = TarWriter(out, owners=accounts.owners(root))
            writer.contents(root)
            writer.close()
    except BaseException:
        out.close()
        raise
    out.seek(0)
    rootfs.event(d, c, "export")
    return out
