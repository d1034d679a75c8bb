"""The runtime's one error type: a one-line message that reaches the user unchanged."""


class PyruncError(Exception):
    """Raised for anything the user should read; the CLI prints it and exits 1, never a traceback."""
