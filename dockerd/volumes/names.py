"""Volume names: what the local driver accepts, and the names anonymous volumes get."""

from __future__ import annotations

import re
import secrets

from dockerd.engine.errors import InvalidParameter

# moby's RestrictedNameChars: the first character alphanumeric, then alphanumerics, _ . -
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_ANONYMOUS = re.compile(r"[0-9a-f]{64}")

# The label Docker (API >= 1.42) puts on volumes created without a name; prune without
# `all` removes only volumes that carry it.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


def validate_local_name(name: str) -> None:
    """Refuse a name the local driver cannot use as a directory name, in moby's words.

    The name becomes `<data-root>/volumes/<name>`, so anything that could climb out of that
    directory ("/", "..", a leading ".") is excluded by the character rule.
    """
    if len(name) == 1:
        raise InvalidParameter(
            "volume name is too short, names should be at least two alphanumeric characters"
        )
    if not _VALID_NAME.fullmatch(name):
        raise InvalidParameter(
            f'"{name}" includes invalid characters for a local volume name, only "{RESTRICTED_NAME_CHARS}" '
            "are allowed. If you intended to pass a host directory, use absolute path"
        )


def new_anonymous_name() -> str:
    """64 random hex digits, as moby's stringid.GenerateRandomID."""
    return secrets.token_hex(32)


def looks_anonymous(name: str) -> bool:
    return bool(_ANONYMOUS.fullmatch(name))
