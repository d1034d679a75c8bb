"""Repository names, tags and digests as the distribution spec defines them."""

from __future__ import annotations

import hashlib
import re

from registry.errors import RegistryError

# The spec's <name> grammar: path components of lowercase alphanumerics joined by separators.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
NAME_MAX = 255  # distribution's reference.NameTotalLengthMax
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# Algorithms we can verify, with the exact length of their hex encoding.
ALGORITHMS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


def valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        raise RegistryError("NAME_INVALID", {"name": name})
    return name


def valid_tag(tag: str) -> bool:
    return TAG_RE.match(tag) is not None


def valid_digest(digest: str) -> bool:
    if DIGEST_RE.match(digest) is None:
        return False
    algorithm, encoded = digest.split(":", 1)
    length = ALGORITHMS.get(algorithm)
    return length is not None and len(encoded) == length and _HEX.match(encoded) is not None


def check_digest(digest: str) -> str:
    if not valid_digest(digest):
        raise RegistryError("DIGEST_INVALID", {"digest": digest}, message="invalid digest")
    return digest


def new_hasher(digest: str) -> hashlib._Hash:
    return hashlib.new(digest.split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
