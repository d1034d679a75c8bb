"""A build context as the Docker CLI sends it to the classic builder: the context directory
as a tar (owner root, `.dockerignore` applied client-side with moby's patternmatcher
rules), a Dockerfile from outside the context or from stdin added under a random name,
or stdin itself (a tar as it is, or a Dockerfile alone)."""

from __future__ import annotations

import io
import os
import re
import secrets
import tarfile
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO


class ContextError(Exception):
    """The context cannot be prepared; str() is the Docker CLI's message."""


DEFAULT_DOCKERFILE = "Dockerfile"
# Characters with a meaning in regular expressions but none in filepath.Match.
_ESCAPE = set(".$+(){}^|")


# ---- .dockerignore ----------------------------------------------------------------------------
def read_dockerignore(context_dir: str) -> list[str]:
    """moby's ignorefile.ReadAll: comments and blank lines dropped, paths cleaned, a leading
    "/" removed, "!" kept in front."""
    try:
        with open(os.path.join(context_dir, ".dockerignore"), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ContextError(f"failed to read .dockerignore: {exc.strerror}") from None
    text = raw.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append(("!" if invert else "") + pattern)
    return patterns


def _clean(path: str) -> str:
    """Go's filepath.Clean."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


class Pattern:
    """One pattern, matched as patternmatcher does: an exact path, a prefix ("dir/**"), a
    suffix ("**/name", "**.txt": literal after a leading "**") or a regular expression."""

    def __init__(self, text: str) -> None:
        self.exclusion = text.startswith("!")
        self.text = text[1:] if self.exclusion else text
        self.cleaned = _clean(self.text)
        self.kind, regex = _compile(self.cleaned)
        self.regex = re.compile(regex, re.DOTALL) if self.kind == "regexp" else None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(pattern: str) -> tuple[str, str]:
    """patternmatcher's compile: the kind of match and, for "regexp", the expression."""
    out = "^"
    kind = "exact"
    i = 0
    n = len(pattern)
    while i < n:
        first = i == 0
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1  # "**/" is "**"
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        out += ".*"
                        kind = "regexp"
                else:
                    out += "(.*/)?"
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                out += "[^/]*"
                kind = "regexp"
        elif ch == "?":
            out += "[^/]"
            kind = "regexp"
        elif ch in _ESCAPE:
            out += "\\" + ch
        elif ch == "\\":
            if i < n:
                out += "\\" + pattern[i]
                i += 1
                kind = "regexp"
            else:
                out += "\\\\"
        elif ch in "[]":
            out += ch
            kind = "regexp"
        else:
            out += ch  # as Go's: the characters special to both dialects are handled above
    return kind, out + "$"


class PatternMatcher:
    """Which paths of the context the patterns exclude (the last matching pattern wins;
    a pattern matching a parent directory matches everything under it)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = [Pattern(p) for p in patterns if p not in ("", "!")]
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        matched = False
        parent = os.path.dirname(path) or "."
        parent_dirs = parent.split("/")
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != ".":
                hit = any(pattern.match("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs)))
            if hit:
                matched = not pattern.exclusion
        return matched


def trim_build_files(excludes: list[str], dockerfile: str, from_stdin: bool) -> list[str]:
    """The Dockerfile and .dockerignore are always sent, whatever .dockerignore says."""
    if PatternMatcher(excludes).matches(".dockerignore"):
        excludes = [*excludes, "!.dockerignore"]
    if PatternMatcher(excludes).matches(dockerfile) and not from_stdin:
        excludes = [*excludes, "!" + dockerfile]
    return excludes


# ---- locating the context and the Dockerfile ------------------------------------------------------
def resolve_context_dir(given: str) -> str:
    path = os.path.realpath(os.path.abspath(given))
    if not os.path.isdir(path):
        raise ContextError(f"context must be a directory: {path}")
    return path


def dockerfile_rel_path(context_dir: str, given: str) -> str:
    """The Dockerfile's path relative to the context (may start with "../": outside it)."""
    if given == "-":
        return given
    if given:
        path = os.path.abspath(given)  # -f is relative to the working directory
    else:
        path = os.path.join(context_dir, DEFAULT_DOCKERFILE)
        lower = os.path.join(context_dir, DEFAULT_DOCKERFILE.lower())
        if not os.path.lexists(path) and os.path.lexists(lower):
            path = lower
    if not os.path.lexists(path):
        missing = _first_missing(path)
        raise ContextError(
            f"unable to evaluate symlinks in Dockerfile path: lstat {missing}: no such file or directory"
        )
    path = os.path.realpath(path)
    if not os.path.lexists(path):
        raise ContextError(f'Cannot locate Dockerfile: "{path}"')
    return os.path.relpath(path, context_dir)


def _first_missing(path: str) -> str:
    """The path Go's EvalSymlinks fails on: the first component that does not exist."""
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if not os.path.lexists(prefix):
            return prefix
    return path


# ---- tars ---------------------------------------------------------------------------------------
def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """moby's archive headers: owned by root, times in whole seconds (so no PAX records)."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    return info


def _walk(context_dir: str, matcher: PatternMatcher) -> list[str]:
    """Relative paths to send, in filepath.Walk order; excluded directories are skipped
    unless an exception ("!") pattern might re-include something under them."""
    out: list[str] = []

    def visit(rel: str) -> None:
        full = os.path.join(context_dir, rel) if rel else context_dir
        try:
            names = sorted(os.listdir(full))
        except OSError as exc:
            raise ContextError(f"error checking context: can't stat '{full}': {exc.strerror}") from None
        for name in names:
            child = f"{rel}/{name}" if rel else name
            path = os.path.join(context_dir, child)
            is_dir = os.path.isdir(path) and not os.path.islink(path)
            if matcher.matches(child):
                if is_dir and matcher.exclusions and _may_reinclude(matcher, child):
                    visit(child)
                continue
            out.append(child)
            if is_dir:
                visit(child)

    visit("")
    return out


def _may_reinclude(matcher: PatternMatcher, directory: str) -> bool:
    """moby's archive: an excluded directory is still walked when an exception pattern
    starts with it."""
    prefix = directory + "/"
    return any(p.exclusion and (p.cleaned + "/").startswith(prefix) for p in matcher.patterns)


class _Writer:
    """A tar written as Go's archive/tar writes it: the two end blocks and no padding to
    tarfile's 10 KiB records (the size the CLI reports is the bytes sent)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.tar = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)

    def __enter__(self) -> tarfile.TarFile:
        return self.tar

    def __exit__(self, *exc: object) -> None:
        end = self.tar.offset + 2 * tarfile.BLOCKSIZE  # offset: the position in out
        self.tar.close()
        self.out.truncate(end)
        self.out.seek(end)


def tar_directory(context_dir: str, excludes: list[str], out: IO[bytes]) -> None:
    matcher = PatternMatcher(excludes)
    with _Writer(out) as tar:
        for rel in _walk(context_dir, matcher):
            tar.add(os.path.join(context_dir, rel), arcname=rel, recursive=False, filter=_root_owned)


def add_dockerfile(context: IO[bytes], dockerfile: bytes, out: IO[bytes]) -> str:
    """Copy the context tar to out with the Dockerfile added as `.dockerfile.<random>` and that
    name appended to .dockerignore (so the daemon leaves it out of COPY); return the name."""
    name = ".dockerfile." + secrets.token_hex(10)
    now = time.time()
    ignore: bytes | None = None
    ignore_info: tarfile.TarInfo | None = None
    with tarfile.open(fileobj=context, mode="r|*") as src, _Writer(out) as dst:
        for member in src:
            if member.name in (".dockerignore", "./.dockerignore") and member.isfile():
                data = src.extractfile(member)
                ignore = data.read() if data else b""
                ignore_info = member
                continue
            data = src.extractfile(member) if member.isfile() else None
            dst.addfile(member, data)
        info = _root_owned(tarfile.TarInfo(name))
        info.mode, info.size, info.mtime = 0o600, len(dockerfile), int(now)
        dst.addfile(info, io.BytesIO(dockerfile))
        content = (ignore if ignore is not None else b".dockerignore") + f"\n{name}\n".encode()
        if ignore_info is None:
            ignore_info = _root_owned(tarfile.TarInfo(".dockerignore"))
            ignore_info.mode, ignore_info.mtime = 0o600, int(now)
        ignore_info.size = len(content)
        dst.addfile(ignore_info, io.BytesIO(content))
    return name


def dockerfile_only(dockerfile: bytes, out: IO[bytes]) -> None:
    """A context holding just the Dockerfile read from stdin."""
    with _Writer(out) as tar:
        info = _root_owned(tarfile.TarInfo(DEFAULT_DOCKERFILE))
        info.mode, info.size, info.mtime = 0o600, len(dockerfile), int(time.time())
        tar.addfile(info, io.BytesIO(dockerfile))


_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


def is_archive(head: bytes) -> bool:
    """A tar (plain or compressed) rather than a Dockerfile, by its first bytes."""
    if any(head.startswith(m) for m in _ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"
