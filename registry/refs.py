"""Repository names, tags and digests as the distribution spec defines them."""

from __future__ import annotations

import re

from common import digest as digests
from registry.errors import RegistryError

# The spec's <name> grammar: path components of lowercase alphanumerics joined by separators.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
NAME_MAX = 255  # distribution's reference.NameTotalLengthMax
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# The algorithms a registry verifies (the grammar and the hashing are common/digest.py's).
ALGORITHMS = ("sha256", "sha512")


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        raise RegistryError("NAME_INVALID", {"name": name})
    return name


def valid_tag(tag: str) -> bool:
    return TAG_RE.match(tag) is not None


def valid_digest(digest: str) -> bool:
    return digests.is_digest(digest, ALGORITHMS)


def check_digest(digest: str) -> str:
    if not valid_digest(digest):
        raise RegistryError("DIGEST_INVALID", {"digest": digest}, message="invalid digest")
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return digests.compute(data, algorithm)
