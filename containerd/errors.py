"""Error kinds shared by every pycontainerd store; the gRPC layer maps each to its status code.

Stores raise these with a one-line message; services translate them once, in one place,
so a store never imports grpc and a service never guesses a code. The kinds themselves
are containerd's errdefs (common/errdefs.py), shared with the client library, so the
client and the daemon raise and catch the very same classes; only Conflict is the
daemon's own.
"""

from common.errdefs import (
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
    "Conflict",
    "ContainerdError",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "Unavailable",
    "Unimplemented",
]


class Conflict(FailedPrecondition):
    """A concurrent writer holds the resource. containerd answers Unavailable here (a locked
    ingest ref), which its clients retry; so do we."""

    code = "UNAVAILABLE"
