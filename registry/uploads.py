"""Blob upload sessions: staging files hashed as they are written, committed only once verified.

A session is ROOT/uploads/<uuid>/ holding `data` (the bytes received so far) and `meta.json`
(repository, start time). Nothing in there is visible as a blob: the blob store only ever
gets the file by rename(2) once its digest has been checked (Storage.commit_file).

Throughput: request bodies arrive in small pieces (h11 hands over what one socket read
returned). They are gathered into batches of BATCH bytes and each batch is hashed and
written in a worker thread (hashlib and os.write release the GIL) while the event loop
receives the next one, so per-piece Python work is one list append.

A chunk (one PATCH, or the body of the closing PUT / a monolithic POST) is all or nothing:
if it fails its checks or the client goes away mid-body, the file is truncated back to
where the chunk started and the running hash restored, so the Range a client reads back
is always a prefix the server has fully received.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from common.digest import Digester
from registry.errors import RegistryError
from registry.storage import Storage, write_atomic

BATCH = 4 << 20
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Session:
    def __init__(self, uid: str, repo: str, directory: Path, started: float) -> None:
        self.uuid = uid
        self.repo = repo
        self.dir = directory
        self.data = directory / "data"
        self.started = started
        self.offset = self.data.stat().st_size if self.data.exists() else 0
        # The running sha256 of data[:offset]; None after a restart until it is rebuilt.
        self.hasher: Digester | None = Digester() if self.offset == 0 else None
        self.lock = asyncio.Lock()
        self.closed = False

    def range_header(self) -> str:
        # distribution answers "0-0" for an empty session; clients expect that form.
        return f"0-{max(self.offset - 1, 0)}"


class Uploads:
    def __init__(self, storage: Storage, max_sessions: int = 1024, purge_age: float = 7 * 86400) -> None:
        self.storage = storage
        self.max_sessions = max_sessions
        self.purge_age = purge_age
        self._sessions: dict[str, Session] = {}
        self._last_purge = 0.0

    def count(self) -> int:
        return sum(1 for _ in self.storage.uploads.iterdir())

    def create(self, repo: str) -> Session:
        self.purge_stale()
        if self.count() >= self.max_sessions:
            raise RegistryError("TOOMANYREQUESTS", {"reason": "too many upload sessions in progress"})
        uid = str(uuid.uuid4())
        d = self.storage.uploads / uid
        d.mkdir(parents=True)
        started = time.time()
        # a session is staging: replaced whole, never synced (a power loss costs the upload)
        write_atomic(
            d / "meta.json", json.dumps({"repository": repo, "started": started}).encode(), fsync=False
        )
        (d / "data").touch()
        s = Session(uid, repo, d, started)
        self._sessions[uid] = s
        return s

    def get(self, repo: str, uid: str) -> Session:
        unknown = RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": uid})
        if not _UUID_RE.match(uid):
            raise unknown
        s = self._sessions.get(uid)
        if s is None:
            # A session from before a restart: its staging directory is still there.
            d = self.storage.uploads / uid
            try:
                meta = json.loads((d / "meta.json").read_text())
            except (OSError, ValueError):
                raise unknown from None
            s = Session(uid, meta["repository"], d, float(meta.get("started", 0)))
            self._sessions[uid] = s
        if s.repo != repo or s.closed:
            raise unknown
        return s

    def cancel(self, s: Session) -> None:
        s.closed = True
        self._sessions.pop(s.uuid, None)
        shutil.rmtree(s.dir, ignore_errors=True)

    def purge_stale(self, now: float | None = None) -> int:
        """Drop sessions older than purge_age (distribution's upload purging); at most hourly."""
        now = now or time.time()
        if now - self._last_purge < 3600:
            return 0
        self._last_purge = now
        removed = 0
        for d in list(self.storage.uploads.iterdir()):
            try:
                started = float(json.loads((d / "meta.json").read_text()).get("started", 0))
            except (OSError, ValueError):
                started = d.stat().st_mtime
            live = self._sessions.get(d.name)
            if now - started > self.purge_age and not (live and live.lock.locked()):
                self._sessions.pop(d.name, None)
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    async def append(
        self, s: Session, body: AsyncIterator[bytes], start: int | None, end: int | None
    ) -> None:
        """Append one chunk. `start`/`end` are the Content-Range bounds (inclusive) if given."""
        _check_open(s)
        if start is not None and start != s.offset:
            raise RegistryError(
                "BLOB_UPLOAD_INVALID",
                {"reason": f"chunk starts at {start}, upload is at {s.offset}"},
                status=416,
                headers={"Range": s.range_header(), "Docker-Upload-UUID": s.uuid},
            )
        await self._ensure_hasher(s)
        assert s.hasher is not None
        before, before_hash = s.offset, s.hasher.copy()
        hasher = s.hasher
        fd = os.open(s.data, os.O_WRONLY | os.O_APPEND)
        written = 0

        def flush(parts: list[bytes]) -> None:
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            hasher.update(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        try:
            pending: asyncio.Future[None] | None = None
            parts: list[bytes] = []
            size = 0
            async for piece in body:
                if not piece:
                    continue
                parts.append(piece)
                size += len(piece)
                if size >= BATCH:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(flush, parts))
                    written += size
                    parts, size = [], 0
            if pending is not None:
                await pending
            if parts:
                await asyncio.to_thread(flush, parts)
                written += size
            if end is not None and start is not None and end - start + 1 != written:
                raise RegistryError(
                    "BLOB_UPLOAD_INVALID",
                    {"reason": f"Content-Range {start}-{end} but {written} bytes were sent"},
                    status=416,
                    headers={"Range": s.range_header(), "Docker-Upload-UUID": s.uuid},
                )
        except BaseException:
            # Rolled back whole: a half-received chunk is never part of the upload.
            if pending is not None and not pending.done():
                await asyncio.wait([pending])
            os.ftruncate(fd, before)
            s.offset, s.hasher = before, before_hash
            raise
        finally:
            os.close(fd)
        s.offset = before + written

    async def _ensure_hasher(self, s: Session) -> None:
        if s.hasher is None:
            s.hasher = await asyncio.to_thread(_hash_file, s.data, "sha256")
            s.offset = s.data.stat().st_size

    async def finish(self, s: Session, digest: str) -> int:
        """Verify the session's content against `digest` and commit it; the session ends either way."""
        _check_open(s)
        try:
            algorithm = digest.split(":", 1)[0]
            if algorithm == "sha256":
                await self._ensure_hasher(s)
                assert s.hasher is not None
                actual = s.hasher.digest()
            else:
                actual = (await asyncio.to_thread(_hash_file, s.data, algorithm)).digest()
            if actual != digest:
                raise RegistryError("DIGEST_INVALID", {"digest": digest, "reason": f"content is {actual}"})
            size = s.offset
            if self.storage.fsync:
                await asyncio.to_thread(_fsync_file, s.data)
            self.storage.commit_file(s.data, digest)
            return size
        finally:
            self.cancel(s)


def _check_open(s: Session) -> None:
    # A request that waited on the session's lock while another one closed or cancelled it.
    if s.closed:
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", {"uuid": s.uuid})


def _hash_file(path: Path, algorithm: str) -> Digester:
    h = Digester(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(BATCH):
            h.update(chunk)
    return h


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
