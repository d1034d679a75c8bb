"""containerd's error kinds (its errdefs), shared by the client library and the daemon.

The daemon's stores raise these (containerd/errors.py), its gRPC layer answers with the
status code each names (`code`), and the client (containerd/client/errors.py) turns a
status back into the same class, so `except NotFound` reads the same on both sides of the
socket. Like containerd's errdefs module, it belongs to neither side and imports nothing.
"""

from __future__ import annotations

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Canceled",
    "ContainerdError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unavailable",
    "Unimplemented",
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
