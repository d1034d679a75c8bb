"""A layer's size as Docker reports it (history, images, prune, system df).

dockerd's layer store records, for each layer it registers, the apparent size of the
layer's own files (moby's pkg/directory walk of the diff directory): regular files' sizes
and symlinks' target lengths, each inode once, directories not counted. Not disk blocks,
which is what a snapshotter's usage reports. We count the same thing from the layer's tar
(the unpacked diff directory holds exactly its entries), and remember the answer as a label
on the layer's blob, so it is read once per layer, not once per daemon start.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from containerd.client import Client
from containerd.client.errors import ContainerdError
from containerd.client.media import compression_of

SIZE_LABEL = "io.pydocker.layer.size"


class _Chunks(io.RawIOBase):
    """A blob's chunks from the content service as a readable stream."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buf = chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def _plain(raw: io.BufferedReader[Any]) -> Any:
    """RAW decompressed (a file-like object read by tarfile's stream mode)."""
    compression = compression_of(raw.peek(4)[:4])
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    return raw


def tar_apparent_size(stream: IO[bytes]) -> int:
    """The apparent size of what the (uncompressed) layer tar STREAM unpacks to: per path the
    last entry's bytes (a regular file's size, a symlink's target length); hard links and
    directories add nothing, as the walk of the unpacked directory counts each inode once."""
    sizes: dict[str, int] = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.strip("/")
            if member.isreg():
                sizes[name] = member.size
            elif member.issym():
                sizes[name] = len(member.linkname.encode())
            else:
                sizes.pop(name, None)
    return sum(sizes.values())


def layer_size(client: Client, blob_digest: str) -> int | None:
    """The apparent size of the layer whose blob is BLOB_DIGEST; None without the blob."""
    try:
        info = client.content.info(blob_digest)
    except ContainerdError:
        return None
    known = info.labels.get(SIZE_LABEL, "")
    if known.isdigit():
        return int(known)
    try:
        raw = io.BufferedReader(_Chunks(client.content.read(blob_digest)), 1 << 20)
        size = tar_apparent_size(_plain(raw))
    except (ContainerdError, tarfile.TarError, OSError, EOFError):
        return None
    try:
        client.content.update_labels(blob_digest, {SIZE_LABEL: str(size)})
    except ContainerdError:
        pass  # remembered in memory by the caller all the same
    return size
