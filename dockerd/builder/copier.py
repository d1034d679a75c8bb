"""COPY and ADD: sources from the context (or another stage's, or an image's, root), their
checksum for the cache, and the copy onto a step's mounted snapshot.

Paths are resolved inside their roots by directory fd (dockerd/engine/scoped.py): a source
symlink is followed only inside its root, `..` never climbs out of it, and nothing is written
outside the destination root. Sources may hold Go filepath.Match wildcards; a directory's
contents are copied, not the directory; a local tar archive given to ADD is extracted (with
dockerd's Untar rules, engine/archive.py). Files keep their mode and modification time and
belong to root unless --chown says otherwise; --chmod sets the mode of what is copied.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import posixpath
import pwd
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from dockerd.builder.errors import BuildFailed
from dockerd.engine import archive, scoped
from dockerd.engine.errors import EngineError

_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class SourceRoot:
    path: str  # a host directory: the context, or a mounted root filesystem
    is_context: bool
    sums: Mapping[str, str] | None = None  # the context's tarsums by path (from its archive)


@dataclass(frozen=True)
class Inline:
    """A heredoc given as a COPY source."""

    name: str
    content: bytes


def _glob(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
                continue
            body = pattern[i:end]
            out.append(
                "[" + ("^" + body[1:] if body.startswith(("!", "^")) else body).replace("\\", "\\\\") + "]"
            )
            i = end + 1
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + "$", re.S)


def _walk(root: str) -> Iterator[str]:
    """Every path under ROOT, relative, parents first (symlinks not followed)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = sorted(it, key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            yield child
            if entry.is_dir(follow_symlinks=False):
                stack.append(child)


def expand_sources(root: SourceRoot, sources: Sequence[str], keyword: str) -> list[str]:
    """The root-relative paths the sources name (wildcards expanded), in order."""
    out: list[str] = []
    for source in sources:
        cleaned = posixpath.normpath(source)
        if root.is_context and (cleaned == ".." or cleaned.startswith("../")):
            raise BuildFailed(f"{keyword} failed: forbidden path outside the build context: {source} ()")
        rel = posixpath.normpath("/" + cleaned).lstrip("/")
        if _WILDCARD.search(rel):
            pattern = _glob(rel)
            matched = [p for p in _walk(root.path) if pattern.match(p)]
            out.extend(matched)
            continue
        if not _exists(root.path, rel):
            if root.is_context:
                raise BuildFailed(
                    f"{keyword} failed: file not found in build context or excluded by .dockerignore: stat {source}: file does not exist"
                )
            raise BuildFailed(
                f"{keyword} failed: stat {posixpath.normpath('/' + source)}: file does not exist"
            )
        out.append(rel)
    if not out:
        raise BuildFailed(f"{keyword} failed: no source files were specified")
    return out


def _exists(root: str, rel: str) -> bool:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with scoped.resolve(fd, rel):
            return True
    except OSError:
        return False
    finally:
        os.close(fd)


# --- checksums -------------------------------------------------------------------------------


_TYPEFLAGS = {
    stat.S_IFREG: "0",
    stat.S_IFLNK: "2",
    stat.S_IFCHR: "3",
    stat.S_IFBLK: "4",
    stat.S_IFDIR: "5",
    stat.S_IFIFO: "6",
}


def _entry_sum(root_fd: int, rel: str, follow: bool, context: bool) -> tuple[str, bool]:
    """Docker's tarsum (version 1) of one entry: sha256 of its tar header fields (name, mode,
    owner, size, type, link target, device numbers, security.capability; never times), then
    its data. For the context, the header the client sent (permission bits, no owner names);
    for a stage's or image's files, the header dockerd makes from the file (Go's
    FileInfoHeader: the mode with its type bits, owner names looked up on the host)."""
    with scoped.resolve(root_fd, rel, follow=follow) as r:
        st = os.fstat(r.fd)
        is_dir = stat.S_ISDIR(st.st_mode)
        is_reg = stat.S_ISREG(st.st_mode)
        link = os.readlink("", dir_fd=r.fd) if stat.S_ISLNK(st.st_mode) else ""
        device = stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        headers = [
            ("name", rel + "/" if is_dir else rel), ("mode", str(stat.S_IMODE(st.st_mode) if context else st.st_mode)),
            ("uid", str(st.st_uid)), ("gid", str(st.st_gid)), ("size", str(st.st_size if is_reg else 0)),
            ("typeflag", _TYPEFLAGS.get(stat.S_IFMT(st.st_mode), "0")), ("linkname", link),
            ("uname", "" if context else _user_name(st.st_uid)), ("gname", "" if context else _group_name(st.st_gid)),
            ("devmajor", str(os.major(st.st_rdev) if device else 0)), ("devminor", str(os.minor(st.st_rdev) if device else 0)),
        ]  # fmt: skip
        digest = hashlib.sha256(b"".join((k + v).encode(errors="surrogateescape") for k, v in headers))
        if not link:
            with contextlib.suppress(OSError):
                capability = os.getxattr(scoped.proc_fd(r.fd), "security.capability")
                digest.update(b"security.capability" + capability)
        if is_reg and st.st_size:
            with open(os.open(scoped.proc_fd(r.fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest(), is_dir


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


class _Sums:
    """Where an entry's sum comes from: the context's archive (what dockerd hashed while it
    unpacked it; an entry the archive did not have, such as an implied directory, is "summed"
    as its own path, as dockerd does), or the files themselves (a stage's or an image's)."""

    def __init__(self, root_fd: int, context: bool, archive: Mapping[str, str] | None) -> None:
        self.root_fd, self.context, self.archive = root_fd, context, archive

    def of(self, rel: str, follow: bool) -> tuple[str, bool]:
        if self.archive is None:
            return _entry_sum(self.root_fd, rel, follow, self.context)
        with scoped.resolve(self.root_fd, rel, follow=follow) as r:
            is_dir = stat.S_ISDIR(os.fstat(r.fd).st_mode)
            real = r.path.lstrip("/")
        return self.archive.get(real, rel), is_dir


def _source_hash(sums: _Sums, rel: str) -> str:
    """dockerd's hash of one COPY source: `file:<tarsum>`, or for a directory `dir:` and the
    sha256 of its entries' sums (itself included, unless it is the root) sorted and joined by
    commas."""
    rel = posixpath.normpath(rel).lstrip("/")
    rel = "" if rel == "." else rel
    found: list[str] = []
    if rel:
        own, is_dir = sums.of(rel, True)
        if not is_dir:
            return "file:" + own
        found.append(own)
    _walk_sums(sums, rel, found)
    return "dir:" + hashlib.sha256(",".join(sorted(found)).encode()).hexdigest()


def _walk_sums(sums: _Sums, rel: str, found: list[str]) -> None:
    with scoped.resolve(sums.root_fd, rel or "/") as r, _list(r.fd) as names:
        for name in names:
            child = f"{rel}/{name}" if rel else name
            own, is_dir = sums.of(child, False)
            found.append(own)
            if is_dir:
                _walk_sums(sums, child, found)


@contextlib.contextmanager
def _list(dir_fd: int) -> Iterator[list[str]]:
    fd = scoped.reopen_dir(dir_fd)
    try:
        yield sorted(os.listdir(fd))
    finally:
        os.close(fd)


def checksum(root: SourceRoot, paths: Sequence[str], inline: Sequence[Inline] = ()) -> str:
    """dockerd's source description for the history and the cache: `file:<sum>` for one
    file, `dir:<sum>` for one directory (Docker's tarsum rules, so the same context gives
    the same history entries as under dockerd), `multi:` + the sha256 of those joined by
    commas for several. Heredocs (BuildKit's) get a digest of name and content."""
    fd = os.open(root.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sums = _Sums(fd, root.is_context, root.sums)
        parts = [_source_hash(sums, rel) for rel in paths]
    finally:
        os.close(fd)
    for item in inline:
        parts.append("file:" + hashlib.sha256(item.name.encode() + b"\0" + item.content).hexdigest())
    if len(parts) == 1:
        return parts[0]
    return "multi:" + hashlib.sha256(",".join(parts).encode()).hexdigest()


# --- copying ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyOptions:
    owner: tuple[int, int] | None = (0, 0)  # None: the source's own (COPY --from without --chown)
    mode: int | None = None  # --chmod
    extract_archives: bool = False  # ADD


def _replace(parent: int, name: str, is_dir: bool) -> bool:
    """Make room for NAME in PARENT; whether a directory is already there to merge into."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if is_dir and stat.S_ISDIR(st.st_mode):
        return True
    scoped.remove_all(parent, name)
    return False


def _finish(parent: int, name: str, st: os.stat_result, options: CopyOptions, symlink: bool = False) -> None:
    uid, gid = options.owner if options.owner is not None else (st.st_uid, st.st_gid)
    os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
    if not symlink:
        mode = options.mode if options.mode is not None else stat.S_IMODE(st.st_mode)
        os.chmod(name, mode, dir_fd=parent)
    with contextlib.suppress(OSError):
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=parent, follow_symlinks=False)


def _finish_file(fd: int, st: os.stat_result, options: CopyOptions) -> None:
    """_finish on the open file: no path looked up again in the (overlay) destination."""
    uid, gid = options.owner if options.owner is not None else (st.st_uid, st.st_gid)
    os.fchown(fd, uid, gid)
    os.fchmod(fd, options.mode if options.mode is not None else stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_entry(
    src_parent: int,
    src_name: str,
    dst_parent: int,
    dst_name: str,
    options: CopyOptions,
    follow: bool,
    fresh: bool = False,
) -> None:
    """Copy one entry; FRESH: DST_PARENT was made by this copy, so nothing is in the way."""
    st = os.stat(src_name, dir_fd=src_parent, follow_symlinks=follow)
    if stat.S_ISDIR(st.st_mode):
        merging = not fresh and _replace(dst_parent, dst_name, True)
        if not merging:
            os.mkdir(dst_name, 0o700, dir_fd=dst_parent)
        src = os.open(
            src_name,
            os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW),
            dir_fd=src_parent,
        )
        dst = os.open(
            dst_name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst_parent
        )
        try:
            for child in sorted(os.listdir(src)):
                _copy_entry(src, child, dst, child, options, False, fresh=not merging)
        finally:
            os.close(src)
            os.close(dst)
        _finish(dst_parent, dst_name, st, options)
    elif stat.S_ISLNK(st.st_mode):
        if not fresh:
            _replace(dst_parent, dst_name, False)
        os.symlink(os.readlink(src_name, dir_fd=src_parent), dst_name, dir_fd=dst_parent)
        _finish(dst_parent, dst_name, st, options, symlink=True)
    elif stat.S_ISREG(st.st_mode):
        if not fresh:
            _replace(dst_parent, dst_name, False)
        src = os.open(
            src_name, os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW), dir_fd=src_parent
        )
        try:
            dst = os.open(
                dst_name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=dst_parent,
            )
            try:
                _copy_data(src, dst, st.st_size)
                _finish_file(dst, st, options)
            finally:
                os.close(dst)
        finally:
            os.close(src)
    # sockets, fifos and devices are not copied (a context cannot carry them; a stage's /dev is empty)


def _copy_data(src: int, dst: int, size: int) -> None:
    left = size
    try:
        while left > 0:
            done = os.copy_file_range(src, dst, min(left, 1 << 30))
            if done == 0:
                break
            left -= done
    except OSError:
        os.lseek(src, size - left, os.SEEK_SET)
        while chunk := os.read(src, 1 << 20):
            os.write(dst, chunk)


def _dest_dir(root_fd: int, path: str) -> scoped.Resolved:
    try:
        return scoped.resolve(root_fd, path, mkdirs=True)
    except OSError as exc:
        raise BuildFailed(f"failed to copy files: mkdir {path}: {exc.strerror or exc}") from None


def _is_dir(root_fd: int, path: str) -> bool:
    try:
        with scoped.resolve(root_fd, path) as r:
            return stat.S_ISDIR(os.fstat(r.fd).st_mode)
    except OSError:
        return False


def _is_archive(root_fd: int, rel: str) -> bool:
    with scoped.resolve(root_fd, rel) as r:
        if not stat.S_ISREG(os.fstat(r.fd).st_mode):
            return False
        with open(os.open(scoped.proc_fd(r.fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
            try:
                with tarfile.open(fileobj=f, mode="r:*") as tar:
                    return tar.next() is not None
            except (tarfile.TarError, EOFError, OSError):
                return False


def copy_into(
    dst_root: str,
    src: SourceRoot,
    paths: Sequence[str],
    dest: str,
    options: CopyOptions,
    inline: Sequence[Inline] = (),
) -> None:
    """Copy the sources onto the (mounted) root DST_ROOT at DEST (absolute; a trailing "/"
    makes it a directory)."""
    count = len(paths) + len(inline)
    dest_is_dir = dest.endswith("/") or count > 1
    root_fd = os.open(dst_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    src_fd = os.open(src.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        clean_dest = posixpath.normpath(dest)
        if not dest_is_dir and _is_dir(root_fd, clean_dest):
            dest_is_dir = True
        for rel in paths:
            with scoped.resolve(src_fd, rel) as source:
                src_is_dir = stat.S_ISDIR(os.fstat(source.fd).st_mode)
            if options.extract_archives and not src_is_dir and _is_archive(src_fd, rel):
                _extract(root_fd, src_fd, rel, clean_dest)
            elif src_is_dir:
                # dockerd chowns a destination directory the copy creates (not its parents)
                new = _missing(root_fd, clean_dest)[-1:]
                with _dest_dir(root_fd, clean_dest) as target, scoped.resolve(src_fd, rel) as source:
                    src_dir = scoped.reopen_dir(source.fd)
                    dst_dir = scoped.reopen_dir(target.fd)
                    try:
                        for child in sorted(os.listdir(src_dir)):
                            # (a destination this copy made is empty: nothing to replace)
                            _copy_entry(src_dir, child, dst_dir, child, options, False, fresh=bool(new))
                    finally:
                        os.close(src_dir)
                        os.close(dst_dir)
                _chown_new(root_fd, new, options)
            else:
                _copy_file(root_fd, src_fd, rel, clean_dest, dest_is_dir, options)
        for item in inline:
            _write_inline(root_fd, item, clean_dest, dest_is_dir, options)
    finally:
        os.close(root_fd)
        os.close(src_fd)


def _copy_file(
    root_fd: int, src_fd: int, rel: str, dest: str, dest_is_dir: bool, options: CopyOptions
) -> None:
    target = posixpath.join(dest, posixpath.basename(rel)) if dest_is_dir else dest
    parent_path, name = posixpath.split(target)
    src_parent_path, src_name = posixpath.split("/" + rel)
    new = _missing(root_fd, parent_path)  # dockerd makes a file's new parents with its owner
    with _dest_dir(root_fd, parent_path) as parent, scoped.resolve(src_fd, src_parent_path) as src_parent:
        src_dir = scoped.reopen_dir(src_parent.fd)
        dst_dir = scoped.reopen_dir(parent.fd)
        try:
            _copy_entry(src_dir, src_name, dst_dir, name, options, True)
        finally:
            os.close(src_dir)
            os.close(dst_dir)
    _chown_new(root_fd, new, options)


def _missing(root_fd: int, path: str) -> list[str]:
    """The directories of PATH (absolute, inside the root) that do not exist yet, outermost first."""
    missing: list[str] = []
    while path not in ("/", ""):
        try:
            with scoped.resolve(root_fd, path):
                break
        except OSError:
            missing.insert(0, path)
            path = posixpath.dirname(path)
    return missing


def _chown_new(root_fd: int, paths: Sequence[str], options: CopyOptions) -> None:
    if options.owner is None or options.owner == (0, 0):
        return
    for path in paths:
        with scoped.resolve(root_fd, path) as found:
            os.chown(scoped.proc_fd(found.fd), *options.owner)


def _write_inline(root_fd: int, item: Inline, dest: str, dest_is_dir: bool, options: CopyOptions) -> None:
    target = posixpath.join(dest, item.name) if dest_is_dir else dest
    parent_path, name = posixpath.split(target)
    with _dest_dir(root_fd, parent_path) as parent:
        dst_dir = scoped.reopen_dir(parent.fd)
        try:
            _replace(dst_dir, name, False)
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dst_dir,
            )
            with os.fdopen(fd, "wb") as out:
                out.write(item.content)
            uid, gid = options.owner or (0, 0)
            os.chown(name, uid, gid, dir_fd=dst_dir, follow_symlinks=False)
            os.chmod(name, options.mode if options.mode is not None else 0o644, dir_fd=dst_dir)
        finally:
            os.close(dst_dir)


def _extract(root_fd: int, src_fd: int, rel: str, dest: str) -> None:
    with _dest_dir(root_fd, dest):
        pass
    with (
        scoped.resolve(src_fd, rel) as source,
        open(os.open(scoped.proc_fd(source.fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f,
    ):
        try:
            archive.Extractor(root_fd, dest).run(f)
        except EngineError as exc:
            raise BuildFailed(f"ADD failed: {exc}") from None
