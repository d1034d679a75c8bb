"""Applying a layer (a tar, plain or compressed) onto a snapshot's mounts, safely.

Where it writes (as containerd's walking differ does):
- one overlay mount with an upperdir: straight into the upperdir. OCI whiteouts become
  overlayfs ones: `.wh.NAME` a 0:0 character device NAME, `.wh..wh..opq` the xattr
  trusted.overlay.opaque="y" on its directory. The lowerdirs are read (never written) to
  give a directory created implicitly the owner and mode it has below.
- one writable bind mount: into its source directory; whiteouts really delete.
- anything else writable: mounted on a temporary directory first, then as a bind.

The layer is a hostile input. The policy:
- A name that is absolute or has a `..` component is refused (InvalidArgument).
- Extraction never goes through a symlink. Every directory on the way to an entry is
  opened with O_NOFOLLOW, one component at a time, and a component that is a symlink
  (made earlier by this layer, already in the target, or visible from a lower layer) is
  refused, whether it points outside or inside the root. Layers made by docker,
  buildkit, containerd or our own compare() always name the real path, never one
  through a symlink. The last component is never followed either: an entry replaces a
  symlink of the same name (unlink, then create with O_EXCL|O_NOFOLLOW).
- A hard link's target must be a non-directory already extracted into the target tree,
  found by the same rules (so never outside, never in a lower layer: overlayfs cannot
  link across layers, and a layer's links point into the layer itself).
- Character and block devices and fifos are refused, whiteouts aside (those only come
  from `.wh.` names). Unknown entry types are refused.
- Ownership is the tar's numeric uid/gid, then the mode including setuid, setgid and
  sticky bits (chown would clear setuid, so it goes first), then xattrs (after chown,
  which clears security.capability). xattrs are PAX SCHILY.xattr.* records; the
  trusted.overlay.* ones are dropped (they steer overlayfs), and a filesystem that
  refuses an xattr (ENOTSUP, EPERM) is skipped over, as containerd does.
- The entry for the root itself ("./") is ignored: the root's owner and mode are the
  snapshot's.
A refusal stops the apply with InvalidArgument naming the entry; what was extracted before
it stays in the target, which the caller (the unpacker) removes with its snapshot.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tarfile
from typing import Any, BinaryIO, cast

from containerd.diff.streams import GZIP_MAGIC, ZSTD_MAGIC, DigestReader, Source, decompressed
from containerd.diff.types import (
    OCI_LAYER,
    OVERLAY_OPAQUE_XATTR,
    OVERLAY_XATTR_PREFIX,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    Descriptor,
    layer_compression,
)
from containerd.errors import ContainerdError, InvalidArgument
from containerd.snapshots.mount import Mount, is_bind, is_readonly, overlay_dirs, temp_mount

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PAX_XATTR = "SCHILY.xattr."

Path = tuple[str, ...]


def apply(
    mounts: list[Mount], layer: Source, media_type: str, *, tmp_dir: str | None = None, verified: str = ""
) -> Descriptor:
    """Unpack LAYER onto MOUNTS; returns the uncompressed tar's digest and size (its diff id).

    `verified` is LAYER's digest when LAYER is a blob file whose bytes were already checked
    against it (the content store's own blobs): an uncompressed one is then unpacked by seeking
    in the file, its file data copied by the kernel, and its diff id is that digest.
    """
    layer_compression(media_type)
    if not mounts:
        raise InvalidArgument("no mounts to apply the layer onto")
    if any(is_readonly(m) for m in mounts):
        raise InvalidArgument("cannot apply a layer onto read-only mounts")
    if len(mounts) == 1 and mounts[0].type == "overlay":
        upper, lowers = overlay_dirs(mounts[0])
        assert upper is not None  # a writable overlay has one
        return apply_to_dir(upper, layer, lowers=lowers, overlay=True, verified=verified)
    if len(mounts) == 1 and is_bind(mounts[0]):
        return apply_to_dir(mounts[0].source, layer, verified=verified)
    with temp_mount(mounts, tmp_dir) as root:
        return apply_to_dir(root, layer, verified=verified)


def apply_to_dir(
    root: str, layer: Source, *, lowers: list[str] | None = None, overlay: bool = False, verified: str = ""
) -> Descriptor:
    """Unpack LAYER into the directory ROOT (an overlay upperdir over LOWERS when OVERLAY)."""
    if verified and _plain_blob_file(layer):
        return _apply_plain_file(root, cast(BinaryIO, layer), lowers or [], overlay, verified)
    reader = DigestReader(decompressed(layer))
    extractor = _Extractor(root, lowers or [], overlay)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                extractor.entry(member, tar)
        extractor.finish()
        reader.drain()
        if not reader.ended_like_a_tar():
            # tarfile takes a stream cut between two entries for the end of the archive
            raise InvalidArgument("layer is truncated: the tar has no end-of-archive marker")
    except tarfile.TarError as e:
        raise InvalidArgument(f"layer is not a valid tar archive: {e}") from None
    finally:
        extractor.close()
    return Descriptor(OCI_LAYER, reader.digest, reader.size)


def _plain_blob_file(layer: Source) -> bool:
    """Whether LAYER is a seekable file holding an uncompressed tar (no gzip or zstd magic)."""
    try:
        fd = layer.fileno()  # type: ignore[union-attr]
        head = os.pread(fd, 4, 0)
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return not (head.startswith(GZIP_MAGIC) or head.startswith(ZSTD_MAGIC))


def _apply_plain_file(root: str, blob: BinaryIO, lowers: list[str], overlay: bool, digest: str) -> Descriptor:
    """The fast path of apply_to_dir: a verified, uncompressed layer blob on disk.

    The tar's headers are read by seeking, each regular file's data is copied file to file
    by copy_file_range (no pass through Python), and no hashing is needed: for a plain tar the
    diff id is the blob's own digest, which the content store verified when it was written.
    """
    fd = blob.fileno()
    size = os.fstat(fd).st_size
    if size % 512 or size < 1024 or os.pread(fd, 1024, size - 1024) != bytes(1024):
        raise InvalidArgument("layer is truncated: the tar has no end-of-archive marker")
    blob.seek(0)
    extractor = _Extractor(root, lowers, overlay, source_fd=fd)
    try:
        with tarfile.open(fileobj=blob, mode="r:") as tar:
            for member in tar:
                extractor.entry(member, tar)
        extractor.finish()
    except tarfile.TarError as e:
        raise InvalidArgument(f"layer is not a valid tar archive: {e}") from None
    finally:
        extractor.close()
    return Descriptor(OCI_LAYER, digest, size)


def split_name(name: str, what: str = "layer entry") -> Path:
    """A tar name as path components; absolute names and '..' are refused."""
    if "\x00" in name:
        raise InvalidArgument(f"{what} {name!r}: NUL byte in name")
    if name.startswith("/"):
        raise InvalidArgument(f"{what} {name!r}: absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise InvalidArgument(f"{what} {name!r}: '..' component escapes the root")
    return parts


def _copy_range(src: int, offset: int, dst: int, size: int) -> None:
    done = 0
    while done < size:
        n = os.copy_file_range(src, dst, size - done, offset + done, done)
        if n == 0:
            raise InvalidArgument("layer is truncated: a file's data runs past the end of the tar")
        done += n


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = int(round(float(member.mtime) * 1e9))
    atime_text = member.pax_headers.get("atime")
    try:
        atime = int(round(float(atime_text) * 1e9)) if atime_text else mtime
    except ValueError:
        atime = mtime
    return atime, mtime


def _remove(dir_fd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based: never follows a symlink inside
    else:
        os.unlink(name, dir_fd=dir_fd)


class _Extractor:
    """Writes one layer's entries under a root directory, one entry at a time."""

    def __init__(self, root: str, lowers: list[str], overlay: bool, source_fd: int = -1) -> None:
        self.root = root
        self.source_fd = source_fd  # the layer file, when file data can be copied from it directly
        self.lowers = lowers
        self.overlay = overlay
        self.root_fd = os.open(root, _DIR_FLAGS)
        # paths this layer wrote (and their parents): an opaque marker keeps these
        self.written: set[Path] = set()
        # directory times are set last, since writing inside a directory changes its mtime
        self.dir_times: list[tuple[Path, int, int]] = []

    def close(self) -> None:
        os.close(self.root_fd)

    # --- entries -----------------------------------------------------------------------

    def entry(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        parts = split_name(member.name)
        if not parts:
            return
        try:
            if parts[-1].startswith(WHITEOUT_PREFIX):
                self._whiteout(parts, member)
            else:
                self._create(parts, member, tar)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                # O_NOFOLLOW caught a symlink or file swapped into the path
                raise InvalidArgument(
                    f"layer entry {member.name!r}: path is not a plain directory chain"
                ) from None
            raise ContainerdError(f"apply layer entry {member.name!r}: {e.strerror or e}") from None
        for i in range(1, len(parts) + 1):
            self.written.add(parts[:i])

    def _create(self, parts: Path, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        if member.ischr() or member.isblk() or member.isfifo():
            kind = "fifo" if member.isfifo() else "device node"
            raise InvalidArgument(
                f"layer entry {member.name!r}: a {kind} is refused (only whiteouts may be devices)"
            )
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise InvalidArgument(f"layer entry {member.name!r}: unsupported tar entry type {member.type!r}")
        if member.issym() and (not member.linkname or "\x00" in member.linkname):
            raise InvalidArgument(f"layer entry {member.name!r}: empty or invalid symlink target")
        name = parts[-1]
        pfd = self._open_parent(parts[:-1], member.name)
        try:
            existing = _lstat(pfd, name)
            over_whiteout = existing is not None and self.overlay and _is_whiteout(existing)
            keep_dir = existing is not None and member.isdir() and stat.S_ISDIR(existing.st_mode)
            if existing is not None and not keep_dir:
                if member.islnk():
                    # check the target before the old entry goes, so a bad link changes nothing
                    os.close(self._link_target(parts, member)[0])
                _remove(pfd, name, existing)
            if member.isreg():
                self._file(pfd, name, member, tar)
            elif member.isdir():
                self._dir(pfd, name, parts, member, keep_dir, over_whiteout)
            elif member.issym():
                self._symlink(pfd, name, member)
            else:
                self._hardlink(pfd, name, parts, member)
        finally:
            os.close(pfd)

    def _file(self, pfd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd
        )
        try:
            if self.source_fd >= 0 and not member.issparse():
                _copy_range(self.source_fd, member.offset_data, fd, member.size)
            elif (src := tar.extractfile(member)) is not None:
                with os.fdopen(fd, "wb", closefd=False) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            self._attrs(fd, member)
            os.utime(fd, ns=_times(member))
        finally:
            os.close(fd)

    def _dir(
        self, pfd: int, name: str, parts: Path, member: tarfile.TarInfo, keep: bool, over_whiteout: bool
    ) -> None:
        if not keep:
            os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        try:
            self._attrs(fd, member)
            if over_whiteout:
                # recreated over a deleted directory: what was below must stay hidden
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
        finally:
            os.close(fd)
        self.dir_times.append((parts, *_times(member)))

    def _symlink(self, pfd: int, name: str, member: tarfile.TarInfo) -> None:
        os.symlink(member.linkname, name, dir_fd=pfd)
        os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        # /proc/self/fd/N is this very directory; follow_symlinks=False keeps the xattr on the link
        self._xattrs(f"/proc/self/fd/{pfd}/{name}", member)
        os.utime(name, ns=_times(member), dir_fd=pfd, follow_symlinks=False)

    def _link_target(self, parts: Path, member: tarfile.TarInfo) -> tuple[int, str]:
        """An open fd of the hard link target's directory, and its name; the caller closes the fd."""
        target = split_name(member.linkname, f"hard link {member.name!r} ->")
        if not target:
            raise InvalidArgument(f"hard link {member.name!r}: empty target")
        if target == parts:
            raise InvalidArgument(f"hard link {member.name!r}: links to itself")
        tfd = self._open_parent(target[:-1], member.name, create=False)
        try:
            st = _lstat(tfd, target[-1])
            if st is None or (self.overlay and _is_whiteout(st)):
                raise InvalidArgument(
                    f"hard link {member.name!r} -> {member.linkname!r}: the target does not exist in this layer"
                )
            if stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(
                    f"hard link {member.name!r} -> {member.linkname!r}: target is a directory"
                )
        except BaseException:
            os.close(tfd)
            raise
        return tfd, target[-1]

    def _hardlink(self, pfd: int, name: str, parts: Path, member: tarfile.TarInfo) -> None:
        tfd, tname = self._link_target(parts, member)
        try:
            # no AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself
            os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def _attrs(self, fd: int, member: tarfile.TarInfo) -> None:
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        self._xattrs(fd, member)

    def _xattrs(self, target: int | str, member: tarfile.TarInfo) -> None:
        for key in sorted(member.pax_headers):
            if not key.startswith(_PAX_XATTR):
                continue
            xname = key[len(_PAX_XATTR) :]
            if not xname or xname.startswith(OVERLAY_XATTR_PREFIX):
                continue
            value = member.pax_headers[key].encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, xname, value)
                else:
                    os.setxattr(target, xname, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    # --- whiteouts ---------------------------------------------------------------------

    def _whiteout(self, parts: Path, member: tarfile.TarInfo) -> None:
        base = parts[-1]
        parent = parts[:-1]
        if base == WHITEOUT_OPAQUE:
            pfd = self._open_parent(parent, member.name, create=self.overlay, missing_ok=True)
            if pfd is None:
                return
            try:
                self._clear_unwritten(pfd, parent)
                if self.overlay:
                    os.setxattr(pfd, OVERLAY_OPAQUE_XATTR, b"y")
            finally:
                os.close(pfd)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, ...): nothing to apply
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"layer entry {member.name!r}: invalid whiteout name")
        if parent + (name,) in self.written:
            return  # a whiteout hides lower layers only, never this layer's own files
        pfd = self._open_parent(parent, member.name, create=self.overlay, missing_ok=True)
        if pfd is None:
            return
        try:
            existing = _lstat(pfd, name)
            if existing is not None:
                _remove(pfd, name, existing)
            if self.overlay:
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
                os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(pfd)

    def _clear_unwritten(self, dir_fd: int, prefix: Path) -> None:
        """Empty a directory made opaque, except what this layer wrote into it."""
        for name in os.listdir(dir_fd):
            st = _lstat(dir_fd, name)
            if st is None:
                continue
            path = prefix + (name,)
            if path not in self.written:
                _remove(dir_fd, name, st)
            elif stat.S_ISDIR(st.st_mode):
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._clear_unwritten(fd, path)
                finally:
                    os.close(fd)

    # --- directories on the way ----------------------------------------------------------

    def _open_parent(self, parts: Path, entry: str, *, create: bool = True, missing_ok: bool = False) -> Any:
        """An fd of the directory PARTS under the root, walked without following any symlink.

        Missing directories are created when CREATE (in an overlay upperdir, with the owner
        and mode the lower layers show); otherwise None when MISSING_OK, else refused.
        """
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                here = parts[: i + 1]
                st = _lstat(fd, comp)
                over_whiteout = False
                if st is not None and self.overlay and _is_whiteout(st):
                    if not create:
                        st = None
                    else:
                        os.unlink(comp, dir_fd=fd)
                        st, over_whiteout = None, True
                if st is None:
                    if not create:
                        if missing_ok:
                            os.close(fd)
                            return None
                        raise InvalidArgument(
                            f"layer entry {entry!r}: {'/'.join(here)} does not exist in the target"
                        )
                    self._make_parent(fd, comp, here, entry, over_whiteout)
                elif stat.S_ISLNK(st.st_mode):
                    raise InvalidArgument(
                        f"layer entry {entry!r}: {'/'.join(here)} is a symlink; extraction never follows one"
                    )
                elif not stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(f"layer entry {entry!r}: {'/'.join(here)} is not a directory")
                nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _make_parent(self, fd: int, comp: str, here: Path, entry: str, over_whiteout: bool) -> None:
        mode, uid, gid = 0o755, 0, 0
        times: tuple[int, int] | None = None
        if self.overlay and not over_whiteout:
            below = self._lower_lookup(here)
            if below is not None:
                if stat.S_ISLNK(below.st_mode):
                    raise InvalidArgument(
                        f"layer entry {entry!r}: {'/'.join(here)} is a symlink in a lower layer; extraction never follows one"
                    )
                if not stat.S_ISDIR(below.st_mode):
                    raise InvalidArgument(
                        f"layer entry {entry!r}: {'/'.join(here)} is not a directory in a lower layer"
                    )
                mode, uid, gid = stat.S_IMODE(below.st_mode), below.st_uid, below.st_gid
                times = (below.st_atime_ns, below.st_mtime_ns)
        os.mkdir(comp, 0o700, dir_fd=fd)
        dfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
        try:
            os.fchown(dfd, uid, gid)
            os.fchmod(dfd, mode)
            if over_whiteout:
                os.setxattr(dfd, OVERLAY_OPAQUE_XATTR, b"y")
        finally:
            os.close(dfd)
        if times is not None:
            self.dir_times.append((here, *times))

    def _lower_lookup(self, parts: Path) -> os.stat_result | None:
        """What the merged overlay view shows at PARTS when the upperdir has nothing there itself.

        Walks the layers (upper first) as overlayfs does: a whiteout hides, a non-directory
        ends the merge, an opaque directory hides the layers below it. Only directories are
        ever descended into, so no symlink in a lower layer is followed.
        """
        live = [self.root] + self.lowers
        top: os.stat_result | None = None
        for comp in parts:
            merged: list[str] = []
            top = None
            for base in live:
                path = os.path.join(base, comp)
                try:
                    st = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if top is None:
                    if _is_whiteout(st):
                        return None
                    top = st
                elif not stat.S_ISDIR(st.st_mode):
                    break
                if not stat.S_ISDIR(st.st_mode):
                    break
                merged.append(path)
                if _is_opaque(path):
                    break
            if top is None or not stat.S_ISDIR(top.st_mode):
                return top
            live = merged
        return top

    # --- the end -----------------------------------------------------------------------

    def finish(self) -> None:
        """Set directory times, deepest first, now that nothing more is written inside them."""
        for parts, atime, mtime in sorted(self.dir_times, key=lambda t: len(t[0]), reverse=True):
            try:
                fd = self._open_parent(parts, "/".join(parts), create=False, missing_ok=True)
            except (InvalidArgument, OSError):
                continue  # removed or replaced later in the layer
            if fd is None:
                continue
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
