"""containerd's error kinds (its errdefs), the client's mapping from gRPC statuses, and archive errors.

The kinds are defined here, on the client side of the socket, and the daemon raises the
very same classes (containerd/errors.py re-exports them), so `except NotFound` reads the
same on both sides; a client never needs the daemon's modules. Each kind names the gRPC
status code it travels as (`code`), which is how the daemon's gRPC layer answers and how
from_rpc() recognises it again.

Nothing here imports grpc at module level: the daemon's stores use these kinds without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc

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


class ContainerdError(Exception):
    """Base: a one-line message for the user; `code` names the gRPC status it travels as."""

    code = "UNKNOWN"


class NotFound(ContainerdError):
    code = "NOT_FOUND"


class AlreadyExists(ContainerdError):
    code = "ALREADY_EXISTS"


class InvalidArgument(ContainerdError):
    code = "INVALID_ARGUMENT"


class OutOfRange(InvalidArgument):
    """A read or write past the end (containerd's errdefs count it as invalid input too)."""

    code = "OUT_OF_RANGE"


class FailedPrecondition(ContainerdError):
    code = "FAILED_PRECONDITION"


class Unavailable(ContainerdError):
    code = "UNAVAILABLE"


class Unimplemented(ContainerdError):
    code = "UNIMPLEMENTED"


class PermissionDenied(ContainerdError):
    code = "PERMISSION_DENIED"


class ResourceExhausted(ContainerdError):
    code = "RESOURCE_EXHAUSTED"


class Aborted(ContainerdError):
    code = "ABORTED"


class Internal(ContainerdError):
    code = "INTERNAL"


class Canceled(ContainerdError):
    code = "CANCELLED"


class DeadlineExceeded(ContainerdError):
    code = "DEADLINE_EXCEEDED"


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
    import grpc

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
