"""The build context: the request body (a tar, maybe compressed) unpacked into a private
directory, the Dockerfile read from it, and `.dockerignore` applied.

Unpacking is confined to the directory as dockerd's chrooted untar is: names are resolved
from the context's root (`../x` is `/x` there), every parent is walked by directory fd and a
symlink in the archive is followed only inside the context (scoped.resolve), so nothing is
ever written outside it. What `.dockerignore` excludes is removed after unpacking (the
Dockerfile is read first), so no later step can see it, whoever made the tar.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from containerd.client import ContainerdError, Mount
from containerd.client.mount import mount_all, unmount_all
from dockerd.builder.dockerignore import Matcher, read_patterns
from dockerd.builder.errors import BuildRequestError
from dockerd.engine import scoped

_MAX_DOCKERFILE = 8 << 20


@dataclass
class BuildContext:
    """An unpacked context; close() removes it."""

    root: str
    dockerfile_name: str
    dockerfile: str  # its text
    ignore: Matcher
    sums: dict[str, str] = field(default_factory=dict)  # context path -> tarsum, as the archive gave it
    in_memory: bool = False  # unpacked on a tmpfs of its own
    release: Callable[[], None] | None = None  # a kept context's (contexts.py): instead of removing it

    def close(self) -> None:
        if self.release is not None:
            release, self.release = self.release, lambda: None
            release()
            return
        _remove(self.root, self.in_memory)

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_context(body: IO[bytes], dockerfile: str, tmp_dir: str | None = None) -> BuildContext:
    """Unpack BODY, read DOCKERFILE (a path inside the context) and apply .dockerignore.

    BuildRequestError with dockerd's words, as a 400: a body that is no tar archive, a missing
    Dockerfile, a Dockerfile path that leaves the context (dockerd answers the first two with a
    500; bad input here is never a server error)."""
    root = tempfile.mkdtemp(prefix="build-context-", dir=tmp_dir)
    sums: dict[str, str] = {}
    in_memory = _memory_root(root) if body.seekable() else False
    try:
        try:
            _unpack(body, root, sums)
        except OSError as exc:
            if not (in_memory and exc.errno == errno.ENOSPC):
                raise
            # larger than the tmpfs: unpacked again, on disk
            unmount_all(root)
            in_memory = False
            shutil.rmtree(root, ignore_errors=True)
            os.mkdir(root, 0o700)
            body.seek(0)
            sums.clear()
            _unpack(body, root, sums)
        name = dockerfile or "Dockerfile"
        text = _read_dockerfile(root, name)
        ignore_text = _read(root, ".dockerignore")
        matcher = Matcher(
            read_patterns(ignore_text.decode(errors="replace")) if ignore_text is not None else []
        )
        if matcher:
            _apply_ignore(root, matcher)
        return BuildContext(root, name, text, matcher, sums, in_memory)
    except BaseException:
        _remove(root, in_memory)
        raise


# A context is unpacked on a tmpfs of its own up to this size (dockerd writes it to disk: on a
# loaded disk creating and removing thousands of small files costs seconds), on disk beyond.
MEMORY_LIMIT = 512 << 20


def _memory_root(root: str) -> bool:
    try:
        mount_all([Mount("tmpfs", "tmpfs", "", [f"size={MEMORY_LIMIT}", "mode=700"])], root)
    except (ContainerdError, OSError):
        return False  # no tmpfs (not root, say): the disk
    return True


def _remove(root: str, in_memory: bool) -> None:
    if in_memory:
        with contextlib.suppress(OSError, ContainerdError):
            unmount_all(root)
            os.rmdir(root)
            return
    shutil.rmtree(root, ignore_errors=True)


# --- the archive ---------------------------------------------------------------------------


class _Peeked:
    """A stream whose first bytes were read ahead (to see its compression) and are given back."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if n < 0:
            out, self.head = self.head + self.rest.read(), b""
            return out
        out, self.head = self.head[:n], self.head[n:]
        if len(out) < n:
            out += self.rest.read(n - len(out))
        return out


def _decompressed(body: IO[bytes]) -> Any:
    """BODY uncompressed (gzip, bzip2, xz or zstd, told by their magic bytes), as dockerd's
    DecompressStream does."""
    head = b""
    while len(head) < 6:
        chunk = body.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    stream: Any = _Peeked(head, body)  # read() is all the decompressors use
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(stream)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(stream)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    return stream


def _unpack(body: IO[bytes], root: str, sums: dict[str, str]) -> None:
    plain = _decompressed(body)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if isinstance(plain, _Peeked) and not plain.head:
            return  # an empty body: an empty context, as Go's tar reader sees it
        try:
            tar = tarfile.open(fileobj=plain, mode="r|")
        except (tarfile.ReadError, EOFError, OSError, zlib_errors()):
            raise BuildRequestError("archive/tar: invalid tar header") from None
        dirs: list[tuple[str, int]] = []
        with tar:
            try:
                for member in tar:
                    _member(root_fd, tar, member, dirs, sums)
            except (tarfile.ReadError, tarfile.StreamError, EOFError, zlib_errors(), lzma.LZMAError) as exc:
                raise BuildRequestError(f"archive/tar: {exc}") from None
        for path, mtime in reversed(dirs):  # after their contents, which change them
            with contextlib.suppress(OSError), scoped.resolve(root_fd, path, follow=False) as r:
                os.utime(scoped.proc_fd(r.fd), (mtime, mtime))
    finally:
        os.close(root_fd)


def zlib_errors() -> type[Exception]:
    import zlib

    return zlib.error


def context_path(name: str) -> str:
    """An archive member's place in the context, confined as under chroot ("../x" is "/x")."""
    return posixpath.normpath("/" + name.replace("\\", "/") if not name.startswith("/") else name)


def tarsum_header(m: tarfile.TarInfo) -> bytes:
    """The header fields Docker's tarsum (version 1) hashes, as the archive has them: name
    (a directory's with its "/"), mode, owner, size, type, link target, device numbers, the
    xattrs; no times, no owner names (dockerd blanks them)."""
    typeflag = m.type.decode("latin-1") if m.type != tarfile.AREGTYPE else "0"
    fields = [
        ("name", m.name + "/" if m.isdir() else m.name), ("mode", str(m.mode)), ("uid", str(m.uid)),
        ("gid", str(m.gid)), ("size", str(m.size)), ("typeflag", typeflag), ("linkname", m.linkname),
        ("uname", ""), ("gname", ""), ("devmajor", str(m.devmajor)), ("devminor", str(m.devminor)),
    ]  # fmt: skip
    prefix = "SCHILY.xattr."
    fields += sorted((k[len(prefix) :], v) for k, v in m.pax_headers.items() if k.startswith(prefix))
    return b"".join((k + v).encode(errors="surrogateescape") for k, v in fields)


def _member(
    root_fd: int, tar: tarfile.TarFile, m: tarfile.TarInfo, dirs: list[tuple[str, int]], sums: dict[str, str]
) -> None:
    path = context_path(m.name)
    if path == "/":
        return
    digest = hashlib.sha256(tarsum_header(m))
    if not m.isreg():
        sums[path.lstrip("/")] = digest.hexdigest()
    parent_path, name = posixpath.split(path)
    with scoped.resolve(root_fd, parent_path, mkdirs=True) as parent:
        if not stat.S_ISDIR(os.fstat(parent.fd).st_mode):
            return
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            scoped.remove_all(parent.fd, name)
        mode = m.mode & 0o7777
        if m.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(name, 0o700, dir_fd=parent.fd)
            os.chmod(name, mode, dir_fd=parent.fd)
            dirs.append((parent.path.rstrip("/") + "/" + name, int(m.mtime)))
            return
        if m.issym():
            os.symlink(m.linkname, name, dir_fd=parent.fd)
            with contextlib.suppress(OSError):
                os.utime(name, (m.mtime, m.mtime), dir_fd=parent.fd, follow_symlinks=False)
            return
        if m.islnk():
            target = context_path(m.linkname)
            target_parent, target_name = posixpath.split(target)
            with scoped.resolve(root_fd, target_parent) as tp:
                os.link(target_name, name, src_dir_fd=tp.fd, dst_dir_fd=parent.fd, follow_symlinks=False)
            return
        if not m.isreg():
            return  # devices, fifos: nothing a build can copy from a context
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent.fd
        )
        with os.fdopen(fd, "wb") as out:
            source = tar.extractfile(m)
            if source is not None:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            sums[path.lstrip("/")] = digest.hexdigest()
            os.fchmod(out.fileno(), mode)
            os.utime(out.fileno(), (m.mtime, m.mtime))


# --- reading and filtering -------------------------------------------------------------------


def _read(root: str, path: str, limit: int = _MAX_DOCKERFILE) -> bytes | None:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return scoped.read_file(fd, path, limit)
    finally:
        os.close(fd)


def _read_dockerfile(root: str, name: str) -> str:
    if posixpath.isabs(name) or posixpath.normpath(name).startswith("../"):
        raise BuildRequestError(f"the Dockerfile ({name}) must be within the build context")
    data = _read(root, name)
    if data is None:
        raise BuildRequestError(f"Cannot locate specified Dockerfile: {name}")
    return data.decode(errors="replace")


def walk(root: str) -> Iterator[tuple[str, bool]]:
    """(context path, is a directory) for everything under ROOT, parents first, sorted."""
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            entries = sorted(it, key=lambda e: e.name, reverse=True)
        for entry in entries:
            child = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            yield child, is_dir
            if is_dir:
                stack.append(child)


def _apply_ignore(root: str, matcher: Matcher) -> None:
    """Remove what the patterns exclude. An excluded directory goes whole unless an exception
    pattern names something inside it (the Docker CLI's walk: it then decides file by file)."""
    for top, dirs, files in os.walk(root):
        rel_top = os.path.relpath(top, root)
        prefix = "" if rel_top == "." else rel_top + "/"
        for name in list(dirs):
            path = prefix + name
            if matcher.excluded(path) and not matcher.exception_below(path):
                full = os.path.join(top, name)
                if os.path.islink(full):
                    os.unlink(full)
                else:
                    shutil.rmtree(full)
                dirs.remove(name)
        for name in files:
            if matcher.excluded(prefix + name):
                os.unlink(os.path.join(top, name))
        for name in dirs:
            if os.path.islink(os.path.join(top, name)) and matcher.excluded(prefix + name):
                os.unlink(os.path.join(top, name))
