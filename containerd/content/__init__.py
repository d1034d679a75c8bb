"""Content store: sha256-addressed blobs with resumable, verified ingests (see store.py)."""

from containerd.content.digest import digest_hex, digest_of, is_digest, validate_digest
from containerd.content.store import ContentInfo, ContentStore, ContentWriter, IngestStatus

__all__ = [
    "ContentInfo",
    "ContentStore",
    "ContentWriter",
    "IngestStatus",
    "digest_hex",
    "digest_of",
    "is_digest",
    "validate_digest",
]
