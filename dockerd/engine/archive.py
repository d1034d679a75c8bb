"""Tar archives of container files, both ways, as dockerd's pkg/archive makes and applies them.

Writing walks a tree through directory fds (dockerd/engine/scoped.py), never following a
symlink, in lexical order per directory; hard links become link entries, sockets are left
out (as Go's archive/tar does), pseudo filesystems (a running container's /proc, /sys) are
listed but not entered.

Extracting applies dockerd's Untar rules to a destination directory inside a container's
root: names are cleaned and one that climbs out of the destination is refused ("... is
outside of ..."), as are symlinks whose relative target climbs out of it and hard links to
anything outside it; parents are resolved inside the container's root (so an archive's own
symlink can only lead elsewhere in the same container), the last component is never
followed, an existing entry is replaced unless both are directories; with
noOverwriteDirNonDir a directory and a non-directory never replace each other. Device
nodes are made only when we can (root), as dockerd does outside a user namespace.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from typing import IO, Any

from dockerd.engine import scoped
from dockerd.engine.errors import EngineError, InvalidParameter
from dockerd.engine.users import Owners

_CACHE = 64  # parent directory fds kept while extracting


class ArchiveRefused(InvalidParameter):
    """The archive tried to leave its destination, or to replace what it must not."""


# --- writing -----------------------------------------------------------------------------------


class _Exact:
    """A file's bytes, exactly `size` of them: padded with zeros if it shrank while we read."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, n) if n else b""
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data


class _GoHeader(tarfile.TarInfo):
    """A header block as Go's archive/tar writes dockerd's: the mode field keeps the file type
    bits (0100644 for a file, 040755 for a directory: dockerd's archive package fills them in;
    tarfile writes the permission bits only), and the device numbers are written (zeros) for
    every entry, where tarfile leaves them empty but for devices."""

    def get_info(self) -> dict[str, Any]:
        info = dict(super().get_info())
        info["mode"] = self.mode  # get_info keeps the permission bits only
        return info

    @staticmethod
    def _create_header(info: dict[str, Any], format: int, encoding: str, errors: str) -> bytes:
        buf: bytes = tarfile.TarInfo._create_header(info, format, encoding, errors)  # type: ignore[attr-defined]
        if len(buf) != tarfile.BLOCKSIZE:
            return buf
        if info.get("type") in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            return buf  # a PAX record block: create_pax_header names it
        itn = tarfile.itn  # type: ignore[attr-defined]
        block = bytearray(buf)
        block[100:108] = itn(info.get("mode", 0), 8, format)
        block[329:337] = itn(info.get("devmajor", 0), 8, format)
        block[337:345] = itn(info.get("devminor", 0), 8, format)
        return _checksummed(block)

    def create_pax_header(self, info: Any, encoding: str) -> bytes:
        """Go names a PAX record block after its entry (cut to 100 bytes, no trailing slash),
        where tarfile names it "././@PaxHeader"."""
        buf = super().create_pax_header(info, encoding)
        if len(buf) <= tarfile.BLOCKSIZE or buf[156:157] != tarfile.XHDTYPE:
            return buf
        block = bytearray(buf[: tarfile.BLOCKSIZE])
        name = self.name.encode("ascii", "replace")[:100].rstrip(b"/")
        block[0:100] = name.ljust(100, b"\0")
        return bytes(_checksummed(block)) + buf[tarfile.BLOCKSIZE :]


def _checksummed(block: bytearray) -> bytes:
    """A header block with its checksum field filled in, as tarfile computes it."""
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


class TarWriter:
    """Entries appended to a tar stream as dockerd's archive package writes them: PAX format
    (Go's writer adds records only when it needs to), modes with the file type bits, owners
    named from OWNERS (the container's own account files: dockerd looks them up inside the
    container's root), and no padding to tarfile's 10 KiB records, only Go's two end blocks."""

    def __init__(
        self, out: IO[bytes], skip_devices: set[int] | None = None, owners: Owners | None = None
    ) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, tarinfo=_GoHeader)
        self.skip = skip_devices or set()
        self.owners: Owners = owners or ({}, {})
        self.links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        tar = self.tar
        tar.fileobj.write(
            tarfile.NUL * (2 * tarfile.BLOCKSIZE)
        )  # what TarFile.close writes, less the record padding
        tar.closed = True  # type: ignore[attr-defined]
        tar.fileobj.close()  # the stream's buffer flushed; the caller's file stays open

    def tree(self, parent: int, name_in_parent: str, tar_name: str) -> None:
        """The entry NAME_IN_PARENT of directory fd PARENT ("." for PARENT itself), and all below it."""
        stack: list[tuple[int, str, Iterator[str]]] = []
        try:
            st = os.stat(name_in_parent, dir_fd=parent, follow_symlinks=False)
            self._entry(parent, name_in_parent, tar_name, st, stack)
            while stack:
                dfd, dname, children = stack[-1]
                child = next(children, None)
                if child is None:
                    os.close(stack.pop()[0])
                    continue
                try:
                    cst = os.stat(child, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile
                self._entry(dfd, child, scoped.join(dname, child), cst, stack)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    def contents(self, dir_fd: int) -> None:
        """Everything below directory fd DIR_FD, named relative to it (an export: "bin", "bin/sh")."""
        dfd = scoped.reopen_dir(dir_fd)
        try:
            names = sorted(os.listdir(dfd))
            for name in names:
                try:
                    self.tree(dfd, name, name)
                except FileNotFoundError:
                    continue
        finally:
            os.close(dfd)

    def _entry(
        self,
        parent: int,
        name: str,
        tar_name: str,
        st: os.stat_result,
        stack: list[tuple[int, str, Iterator[str]]],
    ) -> None:
        mode = st.st_mode
        info = _GoHeader(tar_name)
        info.mode = mode  # with the type bits (_GoHeader)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname, info.gname = self.owners[0].get(st.st_uid, ""), self.owners[1].get(st.st_gid, "")
        info.mtime = st.st_mtime_ns // 1_000_000_000  # whole seconds, as dockerd's tar headers
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
            if st.st_dev in self.skip:
                return
            try:
                dfd = os.open(name, scoped.O_DIR, dir_fd=parent)
            except OSError:
                return  # replaced meanwhile (a symlink now): its header is all we give
            again = os.fstat(dfd)
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
                os.close(dfd)
                return
            stack.append((dfd, tar_name, iter(sorted(os.listdir(dfd)))))
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                info.type = tarfile.LNKTYPE
                info.linkname = self.links[key]
                self.tar.addfile(info)
                return
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
            except OSError:
                return
            try:
                fst = os.fstat(fd)
                if not stat.S_ISREG(fst.st_mode) or fst.st_ino != st.st_ino:
                    return
                info.size = fst.st_size
                self.tar.addfile(info, _Exact(fd, fst.st_size))
            finally:
                os.close(fd)
            if st.st_nlink > 1:
                self.links[key] = tar_name
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink(name, dir_fd=parent)
            except OSError:
                return
            self.tar.addfile(info)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            self.tar.addfile(info)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
            self.tar.addfile(info)
        # sockets: left out, as Go's archive/tar cannot write them


# --- extracting --------------------------------------------------------------------------------


class Extractor:
    """Apply a tar stream to directory DEST (a resolved container path) below root fd ROOT."""

    def __init__(
        self,
        root: int,
        dest: str,
        *,
        no_overwrite_dir_non_dir: bool = False,
        chown: tuple[int, int] | None = None,
        skip_devices: set[int] | None = None,
    ) -> None:
        self.root = root
        self.dest = dest
        self.no_overwrite = no_overwrite_dir_non_dir
        self.chown = chown
        self.skip = skip_devices or set()
        self.can_mknod = os.geteuid() == 0
        self._parents: dict[str, int] = {}  # container path -> O_PATH fd of that directory
        self._dirs: list[tuple[str, float]] = []  # directories whose times are set last

    def run(self, stream: IO[bytes]) -> None:
        try:
            try:
                tar = tarfile.open(fileobj=stream, mode="r|*")
            except tarfile.ReadError as exc:
                raise InvalidParameter(f"Error processing tar file: {_tar_error(exc)}") from None
            with tar:
                member: tarfile.TarInfo | None = None
                try:
                    for member in tar:
                        self._member(tar, member)
                except (tarfile.ReadError, tarfile.StreamError, EOFError) as exc:
                    raise InvalidParameter(f"Error processing tar file: {_tar_error(exc)}") from None
                except OSError as exc:
                    where = f" {member.name}" if member is not None else ""
                    error = (
                        EngineError
                        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT)
                        else InvalidParameter
                    )
                    raise error(f"Error processing tar file:{where}: {exc.strerror or exc}") from None
            self._set_dir_times()
        finally:
            self._drop_parents()

    # --- one entry ---

    def _member(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _relative(m.name)
        if parts is None:
            raise ArchiveRefused(
                f"Error processing tar file: {_go_quote(posixpath.normpath(m.name))} is outside of {_go_quote(self.dest)}"
            )
        path = posixpath.join(self.dest, *parts) if parts else self.dest
        if not parts:
            if m.isdir():
                return  # "." or "/": the destination itself, left as it is
            raise ArchiveRefused(
                f"Error processing tar file: cannot overwrite directory {_go_quote(path)} with non-directory {_go_quote(self.dest)}"
            )
        parent = self._parent(posixpath.dirname(path))
        name = parts[-1]
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.no_overwrite and is_dir and not m.isdir():
                raise ArchiveRefused(
                    f"Error processing tar file: cannot overwrite directory {_go_quote(path)} with non-directory {_go_quote(self.dest)}"
                )
            if self.no_overwrite and not is_dir and m.isdir():
                raise ArchiveRefused(
                    f"Error processing tar file: cannot overwrite non-directory {_go_quote(path)} with directory {_go_quote(self.dest)}"
                )
            if not (is_dir and m.isdir()):
                scoped.remove_all(parent, name)
                if is_dir or stat.S_ISLNK(existing.st_mode):
                    self._drop_parents()  # a cached directory may have been that one, or below it
                    parent = self._parent(posixpath.dirname(path))
                existing = None
        uid, gid = self.chown or (m.uid, m.gid)
        if m.isdir():
            self._make_dir(m, path, parent, name, existing is None, uid, gid)
        elif m.isreg():
            self._make_file(tar, m, parent, name, uid, gid)
        elif m.issym():
            self._make_symlink(m, path, parent, name, uid, gid)
        elif m.islnk():
            self._make_hardlink(m, parent, name)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._make_node(m, parent, name, uid, gid)
        else:
            raise InvalidParameter(
                f"Error processing tar file: unhandled tar header type {m.type!r} for {m.name!r}"
            )

    def _make_dir(
        self, m: tarfile.TarInfo, path: str, parent: int, name: str, create: bool, uid: int, gid: int
    ) -> None:
        if create:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, scoped.O_PATH, dir_fd=parent)
        try:
            self._owner_mode(fd, uid, gid, m.mode)
        finally:
            os.close(fd)
        self._dirs.append((path, m.mtime))

    def _make_file(
        self, tar: tarfile.TarFile, m: tarfile.TarInfo, parent: int, name: str, uid: int, gid: int
    ) -> None:
        fd = os.open(
            name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=parent,
        )
        try:
            src = tar.extractfile(m)
            if src is not None:
                while chunk := src.read(1 << 20):
                    os.write(fd, chunk)
            self._owner_mode(fd, uid, gid, m.mode)
            os.utime(scoped.proc_fd(fd), ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)

    def _make_symlink(
        self, m: tarfile.TarInfo, path: str, parent: int, name: str, uid: int, gid: int
    ) -> None:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname))
        if not m.linkname.startswith("/") and not _within(target, self.dest):
            raise ArchiveRefused(
                f"Error processing tar file: invalid symlink {_go_quote(path)} -> {_go_quote(m.linkname)}"
            )
        os.symlink(m.linkname, name, dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        os.utime(name, ns=(_ns(m.mtime), _ns(m.mtime)), dir_fd=parent, follow_symlinks=False)

    def _make_hardlink(self, m: tarfile.TarInfo, parent: int, name: str) -> None:
        target = posixpath.normpath(self.dest.rstrip("/") + "/" + m.linkname)  # Go's Join: never absolute
        if not _within(target, self.dest):
            raise ArchiveRefused(
                f"Error processing tar file: invalid hardlink {_go_quote(target)} -> {_go_quote(m.linkname)}"
            )
        with scoped.resolve(self.root, posixpath.dirname(target)) as source_dir:
            os.link(
                posixpath.basename(target),
                name,
                src_dir_fd=source_dir.fd,
                dst_dir_fd=parent,
                follow_symlinks=False,
            )

    def _make_node(self, m: tarfile.TarInfo, parent: int, name: str, uid: int, gid: int) -> None:
        """A FIFO, or a device node where the kernel lets us make one."""
        if m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent)
        elif self.can_mknod:
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
        else:
            return  # as dockerd in a user namespace: device nodes are skipped
        fd = os.open(name, scoped.O_PATH, dir_fd=parent)
        try:
            self._owner_mode(fd, uid, gid, m.mode)
            os.utime(scoped.proc_fd(fd), ns=(_ns(m.mtime), _ns(m.mtime)))
        finally:
            os.close(fd)

    def _owner_mode(self, fd: int, uid: int, gid: int, mode: int) -> None:
        where = scoped.proc_fd(fd)  # the inode itself, whatever its name has become meanwhile
        os.chown(where, uid, gid)
        os.chmod(where, stat.S_IMODE(mode))  # after chown, which clears set-id bits

    def _parent(self, path: str) -> int:
        """The directory PATH (created if missing) as an O_PATH fd, cached for the next entries."""
        fd = self._parents.get(path)
        if fd is not None:
            return fd
        r = scoped.resolve(self.root, path, mkdirs=True)
        st = os.fstat(r.fd)
        if not stat.S_ISDIR(st.st_mode):
            r.close()
            raise InvalidParameter(f"Error processing tar file: {path}: not a directory")
        if st.st_dev in self.skip:
            r.close()
            raise ArchiveRefused(
                f"Error processing tar file: {path} is not a directory of the container's filesystem"
            )
        if len(self._parents) >= _CACHE:
            oldest = next(iter(self._parents))
            os.close(self._parents.pop(oldest))
        self._parents[path] = r.fd
        return r.fd

    def _drop_parents(self) -> None:
        for fd in self._parents.values():
            os.close(fd)
        self._parents.clear()

    def _set_dir_times(self) -> None:
        # Last, as dockerd does: extracting into a directory changes its mtime.
        for path, mtime in reversed(self._dirs):
            try:
                with scoped.resolve(self.root, path, follow=False) as r:
                    if stat.S_ISDIR(os.fstat(r.fd).st_mode):
                        os.utime(scoped.proc_fd(r.fd), ns=(_ns(mtime), _ns(mtime)))
            except OSError:
                continue


def _relative(name: str) -> list[str] | None:
    """The cleaned components of an entry name below the destination; None if it climbs out."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    return parts


def _within(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)


def _go_quote(text: str) -> str:
    """Go's %q for the plain paths these messages carry."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tar_error(exc: BaseException) -> str:
    text = str(exc)
    if "could not be opened successfully" in text or "invalid header" in text or "bad checksum" in text:
        return "archive/tar: invalid tar header"
    return text or type(exc).__name__
