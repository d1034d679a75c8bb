"""`.dockerignore`: which files of the build context a build never sees.

Docker's rules (moby's dockerignore reader and pattern matcher, learned, not copied):
lines starting with `#` are comments; each pattern is trimmed, cleaned like a path and made
relative (a leading `/` dropped); `!` makes an exception. A path is excluded when the last
pattern that matches it, or one of its parent directories, is not an exception. In a
pattern `*` is any run of characters but `/`, `?` one such character, `**` any number of
directories (zero included), `[...]` a character class, and `\\` escapes the next character.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

_BOM = "\ufeff"
# Characters that are regular-expression syntax but mean themselves in a filepath.Match pattern.
_LITERAL = frozenset(".$^+(){}|")


@dataclass(frozen=True)
class Pattern:
    text: str  # cleaned, without the "!"
    exclusion: bool  # a "!" exception
    regex: re.Pattern[str]
    depth: int  # how many path components the pattern has

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as Docker reads them."""
    out: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix(_BOM)
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern.lstrip("/") or "/"
        out.append("!" + pattern if invert else pattern)
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        i += 1
        if in_class:
            if ch == "]":
                in_class = False
            elif ch == "\\" and i < n:
                out.append(re.escape(pattern[i]))
                i += 1
                continue
            out.append(ch)
            continue
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            in_class = True
            out.append("[")
            if i < n and pattern[i] in "!^":
                out.append("^")
                i += 1
        elif ch == "\\":
            out.append(re.escape(pattern[i]) if i < n else "\\\\")
            i += 1
        elif ch in _LITERAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    if in_class:
        out.append("]")
    out.append("$")
    try:
        return re.compile("".join(out), re.S)
    except re.error:
        # Go's filepath.Match reports ErrBadPattern; such a pattern matches nothing.
        return re.compile(r"(?!)")


class Matcher:
    """Docker's PatternMatcher over cleaned, slash-separated paths relative to the context."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            exclusion = raw.startswith("!")
            text = raw[1:] if exclusion else raw
            if not text:
                continue
            text = posixpath.normpath(text)
            self.patterns.append(Pattern(text, exclusion, _regex(text), len(text.split("/"))))

    @property
    def has_exceptions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def exception_below(self, directory: str) -> bool:
        """Whether an exception pattern names something inside DIRECTORY (the Docker CLI then
        walks an excluded directory instead of leaving it out whole)."""
        prefix = directory.rstrip("/") + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path.lstrip("/")) if path.strip("/") else "."
        parent = posixpath.dirname(path)
        parent_dirs = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            hit = pattern.matches(path)
            if not hit and parent_dirs and pattern.depth <= len(parent_dirs):
                hit = pattern.matches("/".join(parent_dirs[: pattern.depth]))
            if hit:
                matched = not pattern.exclusion
        return matched

    def __bool__(self) -> bool:
        return bool(self.patterns)
