"""Unpacked build contexts kept for the next build of the same context.

Building again from an unchanged directory sends the daemon the same bytes: the Docker CLI's
tar of the same files, names, modes and times. dockerd unpacks and checksums them again each
time; here the unpacked context (with its .dockerignore applied and its tarsums) is kept after
its build, found again by the sha256 of the request body (and the Dockerfile's name, which
decides what was read before .dockerignore removed files), and shared, read-only, by the builds
that send those bytes. A different byte anywhere (one file touched) is another key: that build
unpacks its own. Only contexts unpacked on their own tmpfs and of at most MAX_BYTES are kept,
the KEEP most recently used ones that no build holds; its tmpfs is remounted read-only (no step
writes there: COPY and ADD only read their sources). `docker builder prune` and the daemon's
stop remove them; a crash leaves them in <data-root>/tmp, emptied at the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import IO

from common import libc
from dockerd.builder.context import BuildContext, open_context

KEEP = 2
MAX_BYTES = 64 << 20


@dataclass
class _Kept:
    context: BuildContext
    users: int = 0


class ContextCache:
    def __init__(self, keep: int = KEEP, max_bytes: int = MAX_BYTES) -> None:
        self.keep = keep
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, str], _Kept] = OrderedDict()

    def open(self, body: IO[bytes], dockerfile: str, tmp_dir: str | None) -> BuildContext:
        """open_context(), or the kept context of the same bytes; the caller closes it."""
        key = _key(body, dockerfile, self.max_bytes)
        if key is not None:
            with self._lock:
                found = self._kept.get(key)
                if found is not None:
                    found.users += 1
                    self._kept.move_to_end(key)
                    return self._handle(key, found)
        context = open_context(body, dockerfile, tmp_dir)
        if key is None or not context.in_memory or not _read_only(context.root):
            return context
        with self._lock:
            if key in self._kept:  # another build of the same bytes kept its own meanwhile
                return context
            kept = self._kept[key] = _Kept(context, users=1)
            evicted = self._evict()
        for old in evicted:
            old.close()
        return self._handle(key, kept)

    def _handle(self, key: tuple[str, str], kept: _Kept) -> BuildContext:
        return replace(kept.context, release=lambda: self._release(key))

    def _release(self, key: tuple[str, str]) -> None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                kept.users -= 1
            evicted = self._evict()
        for old in evicted:
            old.close()

    def _evict(self) -> list[BuildContext]:
        """Unused contexts beyond KEEP, oldest first (with the lock held): to remove."""
        unused = [key for key, kept in self._kept.items() if kept.users <= 0]
        gone = unused[: max(0, len(unused) - self.keep)]
        return [self._kept.pop(key).context for key in gone]

    def clear(self, *, in_use: bool = False) -> int:
        """Remove the contexts no build uses (IN_USE: all of them, at the daemon's stop; a build
        still running then loses its sources); how many."""
        with self._lock:
            gone = [key for key, kept in self._kept.items() if in_use or kept.users <= 0]
            contexts = [self._kept.pop(key).context for key in gone]
        for context in contexts:
            context.close()
        return len(contexts)


def _key(body: IO[bytes], dockerfile: str, max_bytes: int) -> tuple[str, str] | None:
    """(sha256 of BODY, DOCKERFILE); BODY is read through and rewound. None for a body that
    cannot be read twice or is too large to keep."""
    if not body.seekable():
        return None
    start = body.tell()
    size = body.seek(0, 2) - start
    body.seek(start)
    if size > max_bytes:
        return None
    digest = hashlib.file_digest(body, "sha256").hexdigest()  # type: ignore[arg-type]
    body.seek(start)
    return digest, dockerfile


def _read_only(root: str) -> bool:
    """Remount the context's tmpfs read-only: whatever a build does, the next one finds it as
    unpacked. False if that fails (the context is then not kept)."""
    with contextlib.suppress(OSError):
        libc.mount(None, root, None, libc.MS_REMOUNT | libc.MS_RDONLY, None)
        return True
    return False
