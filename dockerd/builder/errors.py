"""The builder's two kinds of failure, as dockerd reports them.

A build request that is refused before its first progress message (the context is not a tar,
the Dockerfile is missing or does not parse, the target stage does not exist) is an HTTP error
with `{"message"}` and dockerd's status; once the JSON stream has started, a failure is its
last message: `{"errorDetail": {"message", "code"?}, "error"}`.
"""

from __future__ import annotations

from typing import Any


class BuildError(Exception):
    """A failure of the build, with the message dockerd gives for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BuildRequestError(BuildError):
    """Refused before the stream starts: the API answers `status` with {"message"}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BuildFailed(BuildError):
    """A step failed; `code` is a failing RUN's exit status (dockerd's errorDetail.code)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    def stream_message(self) -> dict[str, Any]:
        """The JSON stream's last message for this failure."""
        detail: dict[str, Any] = {"message": self.message}
        if self.code is not None:
            detail = {"code": self.code, "message": self.message}
        return {"errorDetail": detail, "error": self.message}
