"""Digest strings ("sha256:<64 lowercase hex>"): the only names a blob ever has on disk.

The grammar and the hashing are common/digest.py's; the content store accepts sha256 only, as
containerd's, and refuses anything else as InvalidArgument.
"""

from __future__ import annotations

from common import digest as _digest
from containerd.errors import InvalidArgument

ALGORITHM = _digest.SHA256


def validate_digest(digest: object) -> str:
    """Return `digest` if it is a well-formed sha256 digest, else raise InvalidArgument.

    This is what keeps a digest from ever becoming a path traversal: only 64 hex
    characters reach the filesystem.
    """
    try:
        _digest.parse(digest)
    except _digest.DigestError as exc:
        raise InvalidArgument(str(exc)) from None
    assert isinstance(digest, str)
    return digest


def is_digest(digest: object) -> bool:
    return _digest.is_digest(digest)


def digest_hex(digest: str) -> str:
    return validate_digest(digest).split(":", 1)[1]


def digest_of(data: bytes) -> str:
    return _digest.compute(data)
