"""`GET /images/json`: dockerd's image list, its filters and its order.

The filters are dockerd's: `reference` (Go's path.Match against each tag and digest reference,
keeping only the references that match), `dangling`, `label`, and `before` / `since`, which
name an image and keep those created strictly before or after it (never the image itself).
The list is newest first, as dockerd sorts it.
"""

from __future__ import annotations

import re
from typing import Any

from dockerd.engine.errors import InvalidParameter
from dockerd.engine.image.service import ImageService, ResolvedImage
from dockerd.engine.logs import parse_time

FILTERS = {"before", "dangling", "label", "reference", "since"}


def filter_values(wanted: Any) -> list[str]:
    """A filter's values in either wire form: `{"k": ["v"]}` or `{"k": {"v": true}}`."""
    if isinstance(wanted, dict):
        return [k for k, v in wanted.items() if v]
    if isinstance(wanted, list):
        return [str(v) for v in wanted]
    return [str(wanted)]


def list_images(images: ImageService, filters: dict[str, Any]) -> list[dict[str, Any]]:
    for key in filters:
        if key not in FILTERS:
            raise InvalidParameter(f"Invalid filter '{key}'")
    dangling = _dangling(filters)
    everything = images.all()
    before = _created_of(images, filter_values(filters.get("before", [])))
    since = _created_of(images, filter_values(filters.get("since", [])))
    patterns = filter_values(filters.get("reference", []))
    labels = filter_values(filters.get("label", []))
    out = []
    for image in everything:
        created = _created(image)
        if (before is not None and not created < before) or (since is not None and not created > since):
            continue
        if labels and not _labels_match((image.config.get("config") or {}).get("Labels") or {}, labels):
            continue
        summary = images.summary(image)
        if _keep(summary, images, image, patterns, dangling):
            out.append(summary)
    out.sort(key=lambda s: s["Created"], reverse=True)
    return out


def _keep(
    summary: dict[str, Any],
    images: ImageService,
    image: ResolvedImage,
    patterns: list[str],
    dangling: bool | None,
) -> bool:
    """dockerd's reference and dangling rules; narrows the summary's references to the matches."""
    tags, digests = images.repo_tags(image), images.repo_digests(image)
    if patterns:
        tags = [t for t in tags if any(familiar_match(p, t) for p in patterns)]
        digests = [d for d in digests if any(familiar_match(p, d) for p in patterns)]
        if not tags and not digests:
            return False
        summary["RepoTags"], summary["RepoDigests"] = tags or None, digests or None
    if not tags and not digests:
        return dangling is not False  # `dangling=false` leaves the unreferenced ones out
    return not (dangling is True and tags)  # `dangling=true`: images without a tag (digests allowed)


def _dangling(filters: dict[str, Any]) -> bool | None:
    values = filter_values(filters.get("dangling", []))
    if not values:
        return None
    if "true" in values:
        return True
    if "false" in values:
        return False
    raise InvalidParameter(f"Invalid filter 'dangling=[{' '.join(values)}]'")


def _created(image: ResolvedImage) -> float:
    return parse_time(image.created) if image.created else 0.0


def _created_of(images: ImageService, refs: list[str]) -> float | None:
    """The creation time of the image a before/since filter names (the last one given wins,
    as in dockerd); a missing image is its 404."""
    created = None
    for ref in refs:
        created = _created(images.resolve(ref))
    return created


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for spec in wanted:
        key, eq, value = spec.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    return True


def _glob_regex(pattern: str) -> str:
    """Go's path.Match as a regular expression: `*` and `?` stop at `/`, `[^...]` negates."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError("syntax error in pattern")
            body = pattern[i + 1 : end]
            if body.startswith("^"):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{body}]")
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def familiar_match(pattern: str, ref: str) -> bool:
    """Docker's reference.FamiliarMatch: the pattern against `name:tag` (or `name@digest`),
    then against `name`."""
    try:
        regex = re.compile(_glob_regex(pattern))
    except (ValueError, re.error):
        raise InvalidParameter(f"invalid reference filter {pattern!r}: syntax error in pattern") from None
    name = ref.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return bool(regex.fullmatch(ref) or regex.fullmatch(name))
