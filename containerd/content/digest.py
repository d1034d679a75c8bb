"""Digest strings ("sha256:<64 lowercase hex>"): the only names a blob ever has on disk."""

from __future__ import annotations

import hashlib
import re

from containerd.errors import InvalidArgument

ALGORITHM = "sha256"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def validate_digest(digest: object) -> str:
    """Return `digest` if it is a well-formed sha256 digest, else raise InvalidArgument.

    This is what keeps a digest from ever becoming a path traversal: only 64 hex
    characters reach the filesystem.
    """
    if isinstance(digest, str) and _DIGEST.fullmatch(digest):
        return digest
    if isinstance(digest, str) and _ANY_DIGEST.fullmatch(digest) and not digest.startswith("sha256:"):
        raise InvalidArgument(f"unsupported digest algorithm in {digest!r} (only sha256)")
    raise InvalidArgument(f"invalid digest {digest!r}")


def is_digest(digest: object) -> bool:
    return isinstance(digest, str) and _DIGEST.fullmatch(digest) is not None


def digest_hex(digest: str) -> str:
    return validate_digest(digest).split(":", 1)[1]


def digest_of(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"
