"""The client's errors: containerd's error kinds, from gRPC statuses, plus archive problems.

A client caller catches the same classes the daemon's stores raise (containerd.errors),
so `except NotFound` reads the same on both sides of the socket.
"""

from __future__ import annotations

import grpc

from containerd.errors import (
    AlreadyExists,
    ContainerdError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "AlreadyExists",
    "ArchiveError",
    "ContainerdError",
    "DigestMismatch",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Unavailable",
    "Unimplemented",
    "from_rpc",
    "is_locked",
]


class ArchiveError(InvalidArgument):
    """An image archive (docker-save, OCI layout or OCI archive) is malformed or hostile."""


class DigestMismatch(InvalidArgument):
    """Bytes did not hash (or count) to what their descriptor promised."""


_BY_CODE: dict[grpc.StatusCode, type[ContainerdError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


def from_rpc(exc: grpc.RpcError, address: str = "") -> ContainerdError:
    """The containerd error kind for a failed call, with the server's one-line message."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or str(code)
    kind = _BY_CODE.get(code, ContainerdError)
    if code == grpc.StatusCode.UNAVAILABLE and "locked" not in details:
        return Unavailable(f"containerd at {address or '?'} is unavailable: {details}")
    if kind is ContainerdError:
        return ContainerdError(f"{code.name.lower()}: {details}")
    return kind(details)


def is_locked(exc: ContainerdError) -> bool:
    """A concurrent writer holds an ingest (containerd and pycontainerd answer Unavailable)."""
    return isinstance(exc, Unavailable | FailedPrecondition) and "locked" in str(exc)
