"""Error kinds shared by every pycontainerd store; the gRPC layer maps each to its status code.

Stores raise these with a one-line message; services translate them once, in one place,
so a store never imports grpc and a service never guesses a code.
"""


class ContainerdError(Exception):
    """Base: a message for the client; `code` names the gRPC status it becomes."""

    code = "UNKNOWN"


class NotFound(ContainerdError):
    code = "NOT_FOUND"


class AlreadyExists(ContainerdError):
    code = "ALREADY_EXISTS"


class InvalidArgument(ContainerdError):
    code = "INVALID_ARGUMENT"


class FailedPrecondition(ContainerdError):
    code = "FAILED_PRECONDITION"


class Unavailable(ContainerdError):
    code = "UNAVAILABLE"


class Unimplemented(ContainerdError):
    code = "UNIMPLEMENTED"


class Conflict(FailedPrecondition):
    """A concurrent writer holds the resource. containerd answers Unavailable here (a locked
    ingest ref), which its clients retry; so do we."""

    code = "UNAVAILABLE"
