"""Reading image archives as a set of named files, without ever extracting them.

An archive is one of: a directory (an OCI layout), or a tar (a docker-save archive or an
OCI archive), possibly gzip- or zstd-compressed, given as a path or a file object. A
stream that cannot seek (an HTTP body) is spooled to a temporary file first, because a
docker-save archive names its layers in manifest.json, which comes last.

Archives are hostile input. Every member name is checked when the archive is opened: an
absolute name or one with a ".." component makes the whole archive refused, and so does
any name the archive's JSON points at. Symbolic and hard links inside a tar (docker save
links duplicate layers) are resolved within the archive, never on disk; a link that
leaves the archive or loops is refused. In a directory, a file whose real path is outside
the directory is refused. Nothing here writes anything but the spool file.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from containerd.client.errors import ArchiveError
from containerd.client.media import compression_of

_MAX_LINK_HOPS = 16


def check_name(name: str) -> str:
    """A member name made relative and clean; ArchiveError if it could escape the archive."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ArchiveError(f"invalid archive member name {name!r}")
    if name.startswith("/"):
        raise ArchiveError(f"archive member name {name!r} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive member name {name!r} escapes the archive")
    return "/".join(parts)


class Source(Protocol):
    def has(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def open(self, name: str) -> IO[bytes]: ...

    def describe(self, name: str) -> str: ...


class DirSource:
    """An OCI layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        clean = check_name(name)
        real = (self.root / clean).resolve()
        if real != self.root and self.root not in real.parents:
            raise ArchiveError(f"{self.describe(name)} leads outside the layout directory")
        return real

    def has(self, name: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self._path(name)).st_mode)
        except FileNotFoundError:
            return False

    def size(self, name: str) -> int:
        return os.stat(self._path(name)).st_size

    def open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        try:
            f = open(path, "rb")  # the caller closes it
        except OSError as exc:
            raise ArchiveError(f"cannot read {self.describe(name)}: {exc.strerror}") from None
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            f.close()
            raise ArchiveError(f"{self.describe(name)} is not a regular file")
        return f

    def describe(self, name: str) -> str:
        return f"{name!r} in {self.root}"


class TarSource:
    """A tar archive over a seekable file; members are read in place."""

    def __init__(self, fileobj: IO[bytes], label: str) -> None:
        self.label = label
        try:
            self._tar = tarfile.open(fileobj=fileobj, mode="r:")
            members = self._tar.getmembers()
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{label} is not a tar archive: {exc}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            name = check_name(member.name)
            if name:
                self._members[name] = member  # the last of duplicate names wins, as tar does

    def _resolve(self, name: str) -> tarfile.TarInfo:
        clean = check_name(name)
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(clean)
            if member is None:
                raise ArchiveError(f"{self.describe(name)} is missing")
            if member.isfile():
                return member
            if member.issym():
                if member.linkname.startswith("/"):
                    raise ArchiveError(f"{self.describe(clean)} is an absolute symlink")
                target = posixpath.normpath(posixpath.join(posixpath.dirname(clean), member.linkname))
                if target == ".." or target.startswith("../"):
                    raise ArchiveError(f"{self.describe(clean)} links outside the archive")
                clean = check_name(target)
            elif member.islnk():
                clean = check_name(member.linkname)
            else:
                raise ArchiveError(f"{self.describe(clean)} is not a regular file")
        raise ArchiveError(f"{self.describe(name)}: too many links")

    def has(self, name: str) -> bool:
        try:
            self._resolve(name)
            return True
        except ArchiveError:
            return False

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def open(self, name: str) -> IO[bytes]:
        f = self._tar.extractfile(self._resolve(name))
        if f is None:  # only for non-files, which _resolve refuses
            raise ArchiveError(f"{self.describe(name)} is not a regular file")
        return f

    def describe(self, name: str) -> str:
        return f"{name!r} in {self.label}"

    def close(self) -> None:
        self._tar.close()


def _decompress_into(src: IO[bytes], compression: str, out: IO[bytes]) -> None:
    import gzip

    if compression == "gzip":
        reader: Any = gzip.GzipFile(fileobj=src, mode="rb")
    else:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
    try:
        shutil.copyfileobj(reader, out, 1 << 20)
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"corrupt {compression} archive: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError and zlib.error are not OSErrors
        raise ArchiveError(f"corrupt {compression} archive: {exc}") from None


@contextlib.contextmanager
def open_source(source: str | Path | IO[bytes], tmp_dir: str | None = None) -> Iterator[Source]:
    """The archive at `source` (path or binary file object) as a Source, for the block's duration."""
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            yield DirSource(path)
            return
        try:
            f = open(path, "rb")  # closed below
        except OSError as exc:
            raise ArchiveError(f"cannot open {path}: {exc.strerror}") from None
        with f:
            with _as_tar(f, str(path), tmp_dir) as tar:
                yield tar
        return
    with _as_tar(source, "the archive stream", tmp_dir) as tar:
        yield tar


@contextlib.contextmanager
def _as_tar(f: IO[bytes], label: str, tmp_dir: str | None) -> Iterator[TarSource]:
    with contextlib.ExitStack() as stack:
        seekable = False
        with contextlib.suppress(AttributeError, OSError, ValueError):
            seekable = bool(f.seekable())
        if not seekable:
            spool = stack.enter_context(tempfile.TemporaryFile(prefix="pycontainerd-import-", dir=tmp_dir))
            shutil.copyfileobj(f, spool, 1 << 20)
            spool.seek(0)
            f = spool
        start = f.tell()
        compression = compression_of(f.read(4))
        f.seek(start)
        if compression:
            plain = stack.enter_context(tempfile.TemporaryFile(prefix="pycontainerd-import-", dir=tmp_dir))
            _decompress_into(f, compression, plain)
            plain.seek(0)
            f = plain
        tar = TarSource(f, label)
        stack.callback(tar.close)
        yield tar
