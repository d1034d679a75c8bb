"""Image references, normalised the way Docker does: `busybox` -> `docker.io/library/busybox:latest`.

The grammar is the distribution reference one: [domain/]path[:tag][@digest], where the
first component is a domain only if it has a "." or a ":" or is "localhost"; path
components are lowercase; a name without tag or digest means ":latest".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from containerd.client.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
_LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN = re.compile(
    r"^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    @property
    def familiar_repository(self) -> str:
        """What Docker prints: `busybox`, `user/app`, `ghcr.io/o/app`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        return self.path[len(OFFICIAL_PREFIX) :] if self.path.startswith(OFFICIAL_PREFIX) else self.path


def parse_reference(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise; InvalidArgument with the reason when `ref` is not a reference."""
    if not ref or ref != ref.strip():
        raise InvalidArgument(f"invalid reference format: {ref!r}")
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid reference format: {ref!r}: bad digest")
    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidArgument(f"invalid reference format: {ref!r}: bad tag {tag!r}")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
        if not _DOMAIN.match(domain):
            raise InvalidArgument(f"invalid reference format: {ref!r}: bad domain {domain!r}")
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in _LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            if component.lower() != component and _COMPONENT.match(component.lower()):
                raise InvalidArgument(f"invalid reference format: repository name {name!r} must be lowercase")
            raise InvalidArgument(f"invalid reference format: {ref!r}")
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidArgument(f"invalid reference format: {ref!r}: repository name longer than {_MAX_NAME}")
    if default_tag and not tag and not digest:
        tag = "latest"
    return Reference(domain, path, tag, digest)


def normalize_name(ref: str) -> str:
    """`busybox:latest` -> `docker.io/library/busybox:latest` (idempotent)."""
    return str(parse_reference(ref))


def familiar_name(name: str) -> str:
    """`docker.io/library/busybox:latest` -> `busybox:latest`; a name that does not parse is kept."""
    try:
        ref = parse_reference(name, default_tag=False)
    except InvalidArgument:
        return name
    out = ref.familiar_repository
    if ref.tag:
        out += ":" + ref.tag
    if ref.digest:
        out += "@" + ref.digest
    return out


def is_tag(value: str) -> bool:
    """A bare tag (what an OCI layout's ref.name annotation usually holds), not a full reference."""
    return bool(_TAG.match(value)) and "/" not in value and ":" not in value
