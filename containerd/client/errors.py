"""The client's errors: containerd's error kinds (common/errdefs.py) from gRPC statuses, and
archive errors.

from_rpc() turns a failed call's status into the kind the daemon raised (the same classes:
the daemon raises common.errdefs' kinds too), with the server's one-line message.
"""

from __future__ import annotations

import grpc

from common.errdefs import (
    Aborted,
    AlreadyExists,
    Canceled,
    ContainerdError,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "ArchiveError",
    "Canceled",
    "ContainerdError",
    "DeadlineExceeded",
    "DigestMismatch",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unavailable",
    "Unimplemented",
    "from_rpc",
    "is_locked",
]


class ArchiveError(InvalidArgument):
    """An image archive (docker-save, OCI layout or OCI archive) is malformed or hostile."""


class DigestMismatch(InvalidArgument):
    """Bytes did not hash (or count) to what their descriptor promised."""


_BY_CODE: dict[str, type[ContainerdError]] = {
    kind.code: kind
    for kind in (
        NotFound, AlreadyExists, InvalidArgument, OutOfRange, FailedPrecondition, Unavailable,
        Unimplemented, PermissionDenied, ResourceExhausted, Aborted, Internal, Canceled, DeadlineExceeded,
    )
}  # fmt: skip
# Kinds whose message has always been the bare server message; the others keep the code
# name in front ("unknown: OCI runtime exec failed: ..."), as containerd's Go errors print.
_BARE = {NotFound, AlreadyExists, InvalidArgument, OutOfRange, FailedPrecondition, Unavailable, Unimplemented}


def from_rpc(exc: grpc.RpcError, address: str = "") -> ContainerdError:
    """The containerd error kind for a failed call, with the server's one-line message."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else "") or str(code)
    kind = _BY_CODE.get(code.name, ContainerdError)
    if kind is Unavailable and "locked" not in details:
        return Unavailable(f"containerd at {address or '?'} is unavailable: {details}")
    if kind in _BARE:
        return kind(details)
    return kind(f"{code.name.lower()}: {details}")


def is_locked(exc: ContainerdError) -> bool:
    """A concurrent writer holds an ingest (containerd and pycontainerd answer Unavailable)."""
    return isinstance(exc, Unavailable | FailedPrecondition) and "locked" in str(exc)
