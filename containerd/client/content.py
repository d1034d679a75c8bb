"""The content service from the client side: write, read, inspect and label blobs.

A write is containerd's bidirectional Write stream: STAT opens (or resumes) the ingest
named by `ref` and holds its lock for the stream's life, WRITE messages carry chunks at
explicit offsets, COMMIT carries the total size, the expected digest and the labels; the
daemon verifies both before the blob becomes visible. The bytes are also hashed here, so
a source that does not match its descriptor is refused before COMMIT with a clear error
and its ingest is aborted.
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

import grpc
from google.protobuf import field_mask_pb2

from common.digest import Digester
from containerd.client.errors import (
    AlreadyExists,
    ContainerdError,
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    from_rpc,
    is_locked,
)
from containerd.client.media import validate_digest
from protos.gen.containerd_api.services.content.v1 import content_pb2

if TYPE_CHECKING:
    from containerd.client.client import Client

CHUNK = 1 << 20
# WRITE messages sent ahead of their answers: waiting for each answer before the next chunk
# made a round trip per MiB the pace of every upload.
WRITE_WINDOW = 8
# How long a write waits for another writer of the same ref to finish.
LOCK_WAIT = 60.0


@dataclass(frozen=True)
class ContentInfo:
    digest: str
    size: int
    labels: dict[str, str] = field(default_factory=dict)
    created_at: int = 0  # ns since the epoch
    updated_at: int = 0


def _info_from(msg: content_pb2.Info) -> ContentInfo:
    return ContentInfo(
        msg.digest,
        msg.size,
        dict(msg.labels),
        int(msg.created_at.ToNanoseconds()),
        int(msg.updated_at.ToNanoseconds()),
    )


class _Requests:
    """The request side of a bidi stream, fed one message at a time."""

    def __init__(self) -> None:
        self._queue: queue.Queue[content_pb2.WriteContentRequest | None] = queue.Queue()

    def put(self, msg: content_pb2.WriteContentRequest) -> None:
        self._queue.put(msg)

    def close(self) -> None:
        self._queue.put(None)

    def __iter__(self) -> Iterator[content_pb2.WriteContentRequest]:
        while True:
            msg = self._queue.get()
            if msg is None:
                return
            yield msg


class ContentStore:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._pb = content_pb2

    # --- inspection --------------------------------------------------------------------------

    def info(self, digest: str) -> ContentInfo:
        validate_digest(digest)
        resp = self.client.call(self.client.api.content.Info, self._pb.InfoRequest(digest=digest))
        return _info_from(resp.info)

    def exists(self, digest: str) -> bool:
        try:
            self.info(digest)
            return True
        except NotFound:
            return False

    def list(self, *filters: str) -> list[ContentInfo]:
        req = self._pb.ListContentRequest(filters=list(filters))
        return [
            _info_from(i) for resp in self.client.stream(self.client.api.content.List, req) for i in resp.info
        ]

    def update_labels(self, digest: str, labels: Mapping[str, str], *, replace: bool = False) -> ContentInfo:
        """Set these labels (an empty value removes one); `replace` swaps the whole label set."""
        validate_digest(digest)
        paths = ["labels"] if replace else [f"labels.{key}" for key in labels]
        wanted = {k: v for k, v in labels.items() if v}
        req = self._pb.UpdateRequest(
            info=self._pb.Info(digest=digest, labels=wanted),
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        return _info_from(self.client.call(self.client.api.content.Update, req).info)

    def delete(self, digest: str) -> None:
        validate_digest(digest)
        self.client.call(self.client.api.content.Delete, self._pb.DeleteContentRequest(digest=digest))

    # --- reading -----------------------------------------------------------------------------

    def read(self, digest: str, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """The blob's bytes in chunks, from `offset`, `size` bytes (0: to the end)."""
        validate_digest(digest)
        req = self._pb.ReadContentRequest(digest=digest, offset=offset, size=size)
        for resp in self.client.stream(self.client.api.content.Read, req):
            if resp.data:
                yield bytes(resp.data)

    def read_all(self, digest: str, limit: int) -> bytes:
        """A small blob whole (a manifest, a config); InvalidArgument past `limit` bytes."""
        info = self.info(digest)
        if info.size > limit:
            raise InvalidArgument(
                f"content {digest} is {info.size} bytes, more than the {limit} allowed here"
            )
        data = b"".join(self.read(digest))
        if len(data) != info.size:
            raise DigestMismatch(f"content {digest}: read {len(data)} bytes, expected {info.size}")
        return data

    # --- writing -----------------------------------------------------------------------------

    def write(
        self,
        source: bytes | IO[bytes] | Iterable[bytes],
        *,
        size: int,
        expected: str = "",
        labels: Mapping[str, str] | None = None,
        ref: str = "",
    ) -> tuple[str, bool]:
        """Store a blob; returns (digest, written). written is False when it already existed.

        `expected` ("" = unknown) and `size` are verified here and by the daemon; a mismatch
        raises DigestMismatch and leaves nothing behind. The labels apply to a new blob only:
        use update_labels for one that may exist already.
        """
        if expected:
            validate_digest(expected)
        ref = ref or f"pycontainerd-client-{secrets.token_hex(8)}"
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.05
        while True:
            try:
                return self._write_once(source, size, expected, dict(labels or {}), ref)
            except ContainerdError as exc:
                if not is_locked(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _write_once(
        self,
        source: bytes | IO[bytes] | Iterable[bytes],
        size: int,
        expected: str,
        labels: dict[str, str],
        ref: str,
    ) -> tuple[str, bool]:
        pb = self._pb
        requests = _Requests()
        responses = self.client.api.content.Write(iter(requests))
        opened = False
        committing = committed = False
        known = expected  # the digest, once known: what an AlreadyExists answer means
        try:
            try:
                requests.put(pb.WriteContentRequest(action=pb.STAT, ref=ref, total=size, expected=expected))
                # An ingest left under this ref (a STAT offset > 0) is restarted: a WRITE at
                # offset 0 truncates it, so the source never has to be seekable.
                next(responses)
                opened = True
                # With an expected digest the daemon's check at COMMIT is the check: hashing here
                # as well cost a pull a second pass over every byte.
                hasher = None if expected else Digester()
                offset = 0
                unanswered = 0
                for chunk in _chunks(source):
                    if hasher is not None:
                        hasher.update(chunk)
                    if offset + len(chunk) > size:
                        raise DigestMismatch(
                            f"content for {expected or ref}: more than the {size} bytes announced"
                        )
                    requests.put(pb.WriteContentRequest(action=pb.WRITE, offset=offset, data=chunk))
                    offset += len(chunk)
                    unanswered += 1
                    if unanswered > WRITE_WINDOW:
                        next(responses)
                        unanswered -= 1
                for _ in range(unanswered):
                    next(responses)
                digest = expected or hasher.digest()  # type: ignore[union-attr]
                known = known or digest
                if offset != size:
                    raise DigestMismatch(f"content for {expected or ref}: {offset} bytes, {size} announced")
                committing = True
                requests.put(
                    pb.WriteContentRequest(
                        action=pb.COMMIT,
                        offset=offset,
                        total=size,
                        expected=expected or digest,
                        labels=labels,
                    )
                )
                resp = next(responses)
                committed = True
                return resp.digest or digest, True
            except StopIteration:
                raise ContainerdError(f"content write {ref}: the daemon closed the stream early") from None
            except grpc.RpcError as exc:
                error = from_rpc(exc, self.client.address)
                if committing and isinstance(error, FailedPrecondition):
                    # the daemon's verdict on the bytes (ours and containerd's word it so)
                    raise DigestMismatch(f"content does not match its digest {expected}: {error}") from None
                if isinstance(error, AlreadyExists) and known:
                    committed = True  # nothing of ours is left to abort
                    return known, False
                raise error from None
        finally:
            # End our side and let the daemon finish the call (never cancel it under its feet);
            # an uncommitted ingest is then aborted.
            requests.close()
            if not committed:
                with contextlib.suppress(grpc.RpcError):
                    for _ in responses:
                        pass
                if opened:
                    self._abort_quietly(ref)

    def _abort_quietly(self, ref: str) -> None:
        # The lease would free the ingest eventually; aborting now frees its disk at once.
        for _ in range(20):
            try:
                self.client.call(self.client.api.content.Abort, self._pb.AbortRequest(ref=ref))
                return
            except NotFound:
                return
            except ContainerdError as exc:
                if not is_locked(exc):  # the daemon may not have seen our stream end yet
                    return
            time.sleep(0.05)


def _chunks(source: bytes | IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    """At most CHUNK bytes at a time, whatever the source hands out."""
    if isinstance(source, bytes | bytearray | memoryview):
        pieces: Iterable[bytes] = [bytes(source)]
    elif hasattr(source, "read"):
        read = source.read
        pieces = iter(lambda: bytes(read(CHUNK)), b"")
    else:
        pieces = source
    for piece in pieces:
        for start in range(0, len(piece), CHUNK):
            yield bytes(piece[start : start + CHUNK])
