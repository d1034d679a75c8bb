"""Byte streams for layers: decompress on the fly, count and hash what passes.

A layer arrives as a file object or as an iterator of chunks (what the content store's
read() yields); it is never held in memory whole.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any, Protocol, cast

from common.digest import Digester
from containerd.errors import ContainerdError, InvalidArgument, Unimplemented

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Source = IO[bytes] | Iterable[bytes]


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = bytes(next(self._it))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _Prefixed(io.RawIOBase):
    """Bytes already read (to sniff the format) put back in front of the rest."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def as_reader(source: Source) -> Readable:
    if hasattr(source, "read"):
        return cast(Readable, source)
    return io.BufferedReader(_ChunkReader(source), 1 << 20)


def decompressed(source: Source) -> Readable:
    """A reader of the plain tar inside SOURCE, whatever its compression (gzip, zstd or none).

    Like containerd, the compression is recognised by its magic bytes, so a layer whose
    media type says tar but that is really gzip (or the reverse) still unpacks.
    """
    raw = as_reader(source)
    head = b""
    while len(head) < 4:
        chunk = raw.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    stream = io.BufferedReader(_Prefixed(head, raw), 1 << 20)
    if head.startswith(GZIP_MAGIC):
        return cast(Readable, gzip.GzipFile(fileobj=stream, mode="rb"))
    if head.startswith(ZSTD_MAGIC):
        return cast(Readable, zstd_module().ZstdDecompressor().stream_reader(stream, read_across_frames=True))
    return stream


def zstd_module() -> Any:
    try:
        import zstandard
    except ImportError:
        raise Unimplemented("zstd layers need the zstandard package, which is not installed") from None
    return zstandard


class DigestReader:
    """Passes reads through, hashing (sha256) and counting every byte."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self._hash = Digester()
        self.size = 0
        self._tail = b""

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._inner.read(size)
        except ContainerdError:
            raise
        except Exception as e:  # noqa: BLE001 - gzip, zlib, zstd and the source's own errors alike
            raise InvalidArgument(f"corrupt layer stream: {e}") from None
        self._hash.update(data)
        self.size += len(data)
        self._tail = (self._tail + data[-1024:])[-1024:]
        return data

    def ended_like_a_tar(self) -> bool:
        """Whether the stream ended in whole blocks with tar's end-of-archive (two zero blocks)."""
        return self.size % 512 == 0 and self._tail == bytes(1024)

    def drain(self) -> None:
        """Read to the end: a diff id covers the tar's trailing padding too."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return self._hash.digest()


class DigestWriter:
    """Passes writes through, hashing (sha256) and counting every byte."""

    def __init__(self, inner: Writable) -> None:
        self._inner = inner
        self._hash = Digester()
        self.size = 0

    def write(self, data: bytes) -> int:
        data = bytes(data)
        self._hash.update(data)
        self.size += len(data)
        self._inner.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def digest(self) -> str:
        return self._hash.digest()


class Compressor:
    """A write-only stream that compresses (or not) into OUT; close() finishes the frame, not OUT."""

    def __init__(self, out: Writable, compression: str) -> None:
        self._closer: Any = None
        if compression == "gzip":
            # mtime 0 and no name: the same tree always gives the same blob
            self._closer = gzip.GzipFile(filename="", fileobj=cast(Any, out), mode="wb", mtime=0)
            self._w: Writable = self._closer
        elif compression == "zstd":
            self._closer = zstd_module().ZstdCompressor().stream_writer(out, closefd=False)
            self._w = self._closer
        elif compression == "":
            self._w = out
        else:
            raise InvalidArgument(f"unknown compression {compression!r}")

    def write(self, data: bytes) -> int:
        self._w.write(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._closer is not None:
            self._closer.close()
