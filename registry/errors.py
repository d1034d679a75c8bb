"""The distribution spec's error codes, each with its HTTP status and distribution's message.

Handlers raise RegistryError; app.py turns it into {"errors": [{"code", "message", "detail"}]}.
"""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, message as docker/distribution words it)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "UNKNOWN": (500, "unknown error"),
}


class RegistryError(Exception):
    """One spec error. `status` overrides the code's usual status (416 for an out-of-order chunk)."""

    def __init__(
        self,
        code: str,
        detail: Any = None,
        *,
        status: int | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.detail = detail
        self.status = status or default_status
        self.message = message or default_message
        self.headers = headers or {}
        self.more: list[RegistryError] = []  # further errors of the same request, reported together
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return {
            "errors": [{"code": e.code, "message": e.message, "detail": e.detail} for e in [self, *self.more]]
        }

    @classmethod
    def all(cls, errors: list[RegistryError]) -> RegistryError:
        first = errors[0]
        first.more = errors[1:]
        return first
