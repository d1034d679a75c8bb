"""The content store: blobs named by their sha256, written through resumable ingests.

Layout under ROOT (one copy of each blob, shared by every namespace; which namespace
"has" a blob is a metadata record, see containerd/metadata/nscontent.py):

    blobs/sha256/<hex>                 committed blobs, read-only (0444)
    ingest/<sha256(ref)>/ref           the writer's ref
    ingest/<sha256(ref)>/total         expected total size (0: unknown)
    ingest/<sha256(ref)>/expected      expected digest ("" : unknown)
    ingest/<sha256(ref)>/started       ns timestamp of the ingest's creation
    ingest/<sha256(ref)>/data          bytes written so far; its mtime is the ingest's updated time

An ingest lives on disk, so a writer reopened with the same ref (by this process or by a
restarted daemon) continues at the end of `data`. A live writer holds an flock on `data`:
a second writer on the same ref, in this process or another, gets Conflict. Commit
verifies size and digest, fsyncs, and renames `data` into blobs/ (same filesystem, so the
blob appears whole or not at all); a failed verification discards the ingest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from common import atomicfile
from common.digest import Digester
from containerd.content.digest import ALGORITHM, digest_hex, validate_digest
from containerd.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument, NotFound

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ContentInfo:
    digest: str
    size: int
    created_at: int  # ns since the epoch
    updated_at: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IngestStatus:
    ref: str
    offset: int
    total: int
    expected: str
    started_at: int
    updated_at: int


class ContentStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / ALGORITHM
        self.ingests = self.root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingests.mkdir(parents=True, exist_ok=True)

    # --- blobs ----------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives (validated: a bad digest is InvalidArgument, never a path)."""
        return self.blobs / digest_hex(digest)

    def exists(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def info(self, digest: str) -> ContentInfo:
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        return ContentInfo(digest, st.st_size, st.st_mtime_ns, st.st_mtime_ns)

    def walk(self) -> Iterator[ContentInfo]:
        for entry in sorted(os.scandir(self.blobs), key=lambda e: e.name):
            digest = f"{ALGORITHM}:{entry.name}"
            try:
                validate_digest(digest)
                st = entry.stat()
            except (InvalidArgument, FileNotFoundError):
                continue  # not ours, or deleted while walking
            yield ContentInfo(digest, st.st_size, st.st_mtime_ns, st.st_mtime_ns)

    def delete(self, digest: str) -> None:
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read(self, digest: str, offset: int = 0, size: int = -1) -> Iterator[bytes]:
        """Chunks of the blob from `offset`; size <= 0 reads to the end.

        Errors (NotFound, InvalidArgument) are raised here, not on the first chunk.
        """
        path = self.blob_path(digest)
        try:
            f = open(path, "rb")  # the generator below closes it
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None
        length = os.fstat(f.fileno()).st_size
        if offset < 0 or offset > length:
            f.close()
            raise InvalidArgument(f"read of {digest} at offset {offset}: the blob has {length} bytes")
        remaining = length - offset if size <= 0 else min(size, length - offset)
        return _chunks(f, offset, remaining)

    def read_all(self, digest: str) -> bytes:
        return b"".join(self.read(digest))

    # --- ingests --------------------------------------------------------------

    def _ingest_dir(self, ref: str) -> Path:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("ref must not be empty")
        return self.ingests / hashlib.sha256(ref.encode()).hexdigest()

    def writer(self, ref: str, total: int = 0, expected: str = "") -> ContentWriter:
        """Open (or resume) the ingest named `ref`."""
        directory = self._ingest_dir(ref)
        if total < 0:
            raise InvalidArgument(f"ref {ref}: negative total {total}")
        if expected:
            validate_digest(expected)
            if self.exists(expected):
                raise AlreadyExists(f"content {expected}: already exists")
        for _attempt in range(3):
            if not (directory / "data").exists():
                self._create_ingest(directory, ref, total, expected)
            try:
                fd = os.open(directory / "data", os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # aborted or committed between the check and the open: start afresh
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise Conflict(f"ref {ref} locked: another writer is active") from None
            if os.fstat(fd).st_nlink == 0:
                os.close(fd)  # the holder before us committed or aborted it
                continue
            try:
                return self._resume(fd, directory, ref, total, expected)
            except BaseException:
                os.close(fd)
                raise
        raise Conflict(f"ref {ref}: the ingest keeps disappearing (concurrent abort?)")

    def _create_ingest(self, directory: Path, ref: str, total: int, expected: str) -> None:
        # Build the ingest beside its final name and rename it in, so a crash never leaves
        # a half-described ingest; a directory left by a crash after commit (no data) goes.
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
        tmp = self.ingests / f".tmp-{directory.name}-{os.getpid()}-{secrets.token_hex(8)}"
        tmp.mkdir()
        try:
            _write_text(tmp / "ref", ref)
            _write_text(tmp / "total", str(total))
            _write_text(tmp / "expected", expected)
            # The start is read from the file system's clock, as every later update (the data's
            # mtime) is: the kernel's coarse clock can lag time.time_ns() by a tick, which made
            # an ingest look updated before it started.
            (tmp / "data").touch()
            _write_text(tmp / "started", str((tmp / "data").stat().st_mtime_ns))
            try:
                tmp.rename(directory)
            except OSError:
                # Another writer created it first; ours is redundant.
                if not (directory / "data").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _resume(self, fd: int, directory: Path, ref: str, total: int, expected: str) -> ContentWriter:
        stored_ref = _read_text(directory / "ref")
        if stored_ref != ref:
            raise FailedPrecondition(f"ref {ref}: ingest directory belongs to {stored_ref!r}")
        stored_total = int(_read_text(directory / "total") or "0")
        stored_expected = _read_text(directory / "expected")
        if total and stored_total and total != stored_total:
            raise FailedPrecondition(f"ref {ref}: total {total} differs from the ingest's {stored_total}")
        if expected and stored_expected and expected != stored_expected:
            raise FailedPrecondition(
                f"ref {ref}: expected {expected} differs from the ingest's {stored_expected}"
            )
        if total and not stored_total:
            _write_text(directory / "total", str(total))
        if expected and not stored_expected:
            _write_text(directory / "expected", expected)
        # The hash state is not persisted: re-read what is already there.
        hasher = Digester()
        offset = 0
        while chunk := os.pread(fd, READ_CHUNK, offset):
            hasher.update(chunk)
            offset += len(chunk)
        started = int(_read_text(directory / "started") or "0")
        return ContentWriter(
            self,
            directory,
            fd,
            ref,
            total or stored_total,
            expected or stored_expected,
            offset,
            hasher,
            started,
        )

    def status(self, ref: str) -> IngestStatus:
        directory = self._ingest_dir(ref)
        status = self._status_of(directory)
        if status is None or status.ref != ref:
            raise NotFound(f"ingest {ref}: not found")
        return status

    def _status_of(self, directory: Path) -> IngestStatus | None:
        try:
            st = (directory / "data").stat()
            return IngestStatus(
                ref=_read_text(directory / "ref"),
                offset=st.st_size,
                total=int(_read_text(directory / "total") or "0"),
                expected=_read_text(directory / "expected"),
                started_at=int(_read_text(directory / "started") or "0"),
                updated_at=st.st_mtime_ns,
            )
        except (FileNotFoundError, ValueError):
            return None  # half-gone (commit or abort in progress) or foreign

    def list_statuses(self) -> list[IngestStatus]:
        found = []
        for entry in sorted(os.scandir(self.ingests), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            status = self._status_of(Path(entry.path))
            if status is not None:
                found.append(status)
        return found

    def abort(self, ref: str) -> None:
        """Discard an ingest; Conflict while a writer holds it."""
        directory = self._ingest_dir(ref)
        try:
            fd = os.open(directory / "data", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"ingest {ref}: not found") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(f"ref {ref} locked: a writer is active") from None
            shutil.rmtree(directory, ignore_errors=True)
        finally:
            os.close(fd)

    def ingest_locked(self, ref: str) -> bool:
        """True while a live writer (any process) holds the ingest."""
        try:
            fd = os.open(self._ingest_dir(ref) / "data", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False

    def _fsync_blobs_dir(self) -> None:
        atomicfile.fsync_dir(self.blobs)


class ContentWriter:
    """A live writer on one ingest; holds its lock until commit, close or discard."""

    def __init__(
        self,
        store: ContentStore,
        directory: Path,
        fd: int,
        ref: str,
        total: int,
        expected: str,
        offset: int,
        hasher: Digester,
        started_at: int,
    ) -> None:
        self._store = store
        self._dir = directory
        self._fd: int | None = fd
        self.ref = ref
        self.total = total
        self.expected = expected
        self.offset = offset
        self._hasher = hasher
        self._started_at = started_at
        self._digest = ""

    def __enter__(self) -> ContentWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _live_fd(self) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"writer for ref {self.ref} is closed")
        return self._fd

    def write(self, data: bytes, offset: int | None = None) -> int:
        """Append `data` (at `offset`, which must be the current size); return the new offset."""
        fd = self._live_fd()
        if offset is not None and offset != self.offset:
            raise InvalidArgument(
                f"write to ref {self.ref} at offset {offset}: the ingest is at {self.offset}"
            )
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, self.offset)
            self._hasher.update(view[:n])
            self.offset += n
            view = view[n:]
        return self.offset

    def truncate(self, size: int) -> None:
        """Restart the ingest from zero (the only size a digest state can rewind to)."""
        fd = self._live_fd()
        if size != 0:
            raise InvalidArgument(f"ref {self.ref}: truncate only supports size 0, not {size}")
        os.ftruncate(fd, 0)
        self._hasher = Digester()
        self.offset = 0

    def digest(self) -> str:
        """Digest of the bytes written so far (or of the committed blob)."""
        return self._digest or self._hasher.digest()

    def status(self) -> IngestStatus:
        fd = self._live_fd()
        return IngestStatus(
            self.ref, self.offset, self.total, self.expected, self._started_at, os.fstat(fd).st_mtime_ns
        )

    def commit(self, size: int = 0, expected: str = "") -> str:
        """Verify and move the blob into place; return its digest.

        Any failed check discards the ingest (nothing is kept). An already-present blob
        also discards the ingest, then raises AlreadyExists (after verification, so the
        caller knows the bytes were right and `digest()` names them).
        """
        fd = self._live_fd()
        try:
            if expected:
                validate_digest(expected)
            want = expected or self.expected
            want_size = size if size > 0 else self.total
            if want_size > 0 and self.offset != want_size:
                raise FailedPrecondition(
                    f"commit of ref {self.ref}: {self.offset} bytes written, expected {want_size}"
                )
            actual = self._hasher.digest()
            if want and want != actual:
                raise FailedPrecondition(f"commit of ref {self.ref}: digest {actual} does not match {want}")
            self._digest = actual
            target = self._store.blob_path(actual)
            if target.exists():
                raise AlreadyExists(f"content {actual}: already exists")
            os.fsync(fd)
            os.fchmod(fd, 0o444)
            now = time.time_ns()
            os.utime(fd, ns=(now, now))
            os.rename(self._dir / "data", target)
            self._store._fsync_blobs_dir()
            return actual
        finally:
            self._discard()

    def _discard(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
        self.close()

    def close(self) -> None:
        """Release the ingest (it stays on disk for a later writer to resume)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _chunks(f: BinaryIO, offset: int, remaining: int) -> Iterator[bytes]:
    with f:
        f.seek(offset)
        while remaining > 0:
            chunk = f.read(min(READ_CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _write_text(path: Path, text: str) -> None:
    # An ingest's bookkeeping is scratch: replaced whole, not synced (a power loss can cost the
    # ingest, which the writer then starts again); a commit is what is made durable.
    atomicfile.write_text(path, text, 0o644, durable=False)


def _read_text(path: Path) -> str:
    return path.read_text()
