"""The runtime's one error type: a one-line message that reaches the user unchanged."""


class PyruncError(Exception):
    """Raised for anything the user should read; the CLI prints it and exits 1, never a traceback."""


class InitFailed(PyruncError):
    """The container's init reported a failure while it was being set up (create, run)."""
