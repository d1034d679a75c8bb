"""Image references as the Docker CLI parses them (distribution/reference's grammar and
ParseNormalizedNamed): "busybox" is docker.io/library/busybox, errors in its wording."""

from __future__ import annotations

import re

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^((?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_ID = re.compile(r"^[a-f0-9]{64}$")


class ReferenceError(ValueError):
    pass


class Named:
    """A normalized reference: domain/path, tag and digest."""

    def __init__(self, name: str, tag: str, digest: str) -> None:
        self.name = name
        self.tag = tag
        self.digest = digest

    def familiar(self) -> str:
        """What users see: "busybox:latest" rather than docker.io/library/busybox:latest."""
        name = self.name
        if name.startswith("docker.io/"):
            name = name[len("docker.io/") :]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/") :]
        out = name
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost" and first.lower() == first):
        domain, remainder = "docker.io", name
    else:
        domain, remainder = first, rest
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def parse_normalized_named(text: str) -> Named:
    if _ANCHORED_ID.match(text):
        raise ReferenceError(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    name_part, _, _ = text.partition("@")
    colon = name_part.rfind(":")
    bare = name_part[:colon] if colon > name_part.rfind("/") else name_part
    domain, remainder = _split_domain(bare)
    if remainder.lower() != remainder:
        raise ReferenceError(f"invalid reference format: repository name ({remainder}) must be lowercase")
    full = f"{domain}/{remainder}" + text[len(bare) :]
    m = _REFERENCE.match(full)
    if m is None or not text:
        raise ReferenceError("invalid reference format")
    if len(m.group(1)) > 255:
        raise ReferenceError("repository name must not be more than 255 characters")
    return Named(m.group(1), m.group(2) or "", m.group(3) or "")


def tag_name_only(ref: Named) -> Named:
    """reference.TagNameOnly: a name without tag or digest gets "latest"."""
    if not ref.tag and not ref.digest:
        return Named(ref.name, "latest", "")
    return ref
