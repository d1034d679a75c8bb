"""Comparing two mount sets into a layer: the tar of what changed, with OCI whiteouts.

Both sides are mounted read-only on temporary directories (a single bind mount is read in
place; an overlay's upperdir becomes its top lowerdir, so a running container's snapshot
can be compared) and walked together, as containerd's double-walking differ does:
- in lower only: a whiteout `.wh.NAME` (only the top of a deleted tree);
- in upper only: the entry and everything below it;
- in both: the upper entry when its type, mode, owner, xattrs, size, mtime, symlink
  target or (when mtimes have no sub-second part, as after a tar extraction) content
  differ; a directory's own header also when only its mtime changed.
Entries come out depth-first, names sorted bytewise in each directory, each preceded by
any parent directory not yet written; whiteouts carry time 0 and owner 0. When UPPER is an
overlay on exactly LOWER's layers (a snapshot prepared on the compared parent), every change is
under a directory its upperdir has (overlayfs copies up a changed entry's parents), so a
directory the upperdir lacks is not walked: the diff is the same, without reading the
unchanged rest of the tree twice. A file with
several links inside the diff is written once, the later names as hard links to it.
Sockets, device nodes and fifos are left out (apply() refuses the latter two anyway).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from containerd.diff.streams import Compressor, DigestWriter, Writable
from containerd.diff.types import (
    OCI_LAYER_GZIP,
    OVERLAY_XATTR_PREFIX,
    WHITEOUT_PREFIX,
    Descriptor,
    layer_compression,
)
from containerd.errors import AlreadyExists
from containerd.snapshots.mount import Mount, is_bind, overlay_dirs, readonly, temp_mount

Path = tuple[str, ...]
_CHUNK = 1 << 20


@dataclass
class CompareResult:
    """The blob written (as its descriptor) and the digest and size of the tar inside (the diff id)."""

    descriptor: Descriptor
    uncompressed_digest: str
    uncompressed_size: int


def compare(
    lower: list[Mount],
    upper: list[Mount],
    out: Writable,
    media_type: str = OCI_LAYER_GZIP,
    *,
    tmp_dir: str | None = None,
    source_date_epoch: int | None = None,
    docker_whiteouts: bool = False,
) -> CompareResult:
    """Write the layer that turns LOWER into UPPER to OUT (compressed as MEDIA_TYPE says);
    SOURCE_DATE_EPOCH (seconds) clamps the entries' times; DOCKER_WHITEOUTS: whiteouts as
    dockerd writes them (WHITEOUT_STYLE_LABEL)."""
    layer_compression(media_type)
    changes = _changes_root(lower, upper)
    with _view(lower, tmp_dir) as lower_root, _view(upper, tmp_dir) as upper_root:
        return write_diff(
            lower_root, upper_root, out, media_type, source_date_epoch, docker_whiteouts, changes_root=changes
        )


def _changes_root(lower: list[Mount], upper: list[Mount]) -> str | None:
    """UPPER's upperdir when UPPER is one overlay mount on exactly LOWER's layers: the only
    place changes can be. None otherwise (every directory is walked)."""
    if len(lower) != 1 or len(upper) != 1 or upper[0].type != "overlay":
        return None
    changes, upper_layers = overlay_dirs(upper[0])
    if changes is None:
        return None
    if lower[0].type == "overlay":
        top, lower_layers = overlay_dirs(lower[0])
        layers = ([top] if top else []) + lower_layers
    elif is_bind(lower[0]):
        layers = [lower[0].source]
    else:
        return None
    same = [os.path.realpath(p) for p in layers] == [os.path.realpath(p) for p in upper_layers]
    return changes if same else None


@contextlib.contextmanager
def _view(mounts: list[Mount], tmp_dir: str | None) -> Iterator[str]:
    if len(mounts) == 1 and is_bind(mounts[0]):
        yield mounts[0].source
        return
    with temp_mount(readonly(mounts), tmp_dir) as root:
        yield root


def write_diff(
    lower_root: str,
    upper_root: str,
    out: Writable,
    media_type: str = OCI_LAYER_GZIP,
    source_date_epoch: int | None = None,
    docker_whiteouts: bool = False,
    *,
    changes_root: str | None = None,
) -> CompareResult:
    """The diff between two directory trees, as a layer of MEDIA_TYPE written to OUT;
    CHANGES_ROOT: a directory whose tree holds every directory with a change (the upperdir)."""
    compressed = DigestWriter(out)
    compressor = Compressor(compressed, layer_compression(media_type))
    plain = DigestWriter(compressor)
    with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        _Differ(tar, source_date_epoch, docker_whiteouts, changes_root).diff_dir((), lower_root, upper_root)
    compressor.close()
    return CompareResult(Descriptor(media_type, compressed.digest, compressed.size), plain.digest, plain.size)


class ContentWriterLike(Protocol):
    def write(self, data: bytes, offset: int | None = None) -> int: ...

    def commit(self, size: int = 0, expected: str = "") -> str: ...

    def close(self) -> None: ...


class ContentStoreLike(Protocol):
    def writer(self, ref: str, total: int = 0, expected: str = "") -> ContentWriterLike: ...

    def abort(self, ref: str) -> None: ...


def compare_to_content(
    store: ContentStoreLike,
    lower: list[Mount],
    upper: list[Mount],
    media_type: str = OCI_LAYER_GZIP,
    *,
    ref: str = "",
    tmp_dir: str | None = None,
) -> CompareResult:
    """compare() into a content store blob; an identical blob already there is fine.

    The caller records the namespace's content record, with the label
    `containerd.io/uncompressed` = result.uncompressed_digest, as containerd does.
    """
    ref = ref or f"compare-{uuid.uuid4().hex}"
    writer = store.writer(ref)
    try:
        result = compare(lower, upper, writer, media_type, tmp_dir=tmp_dir)
        with contextlib.suppress(AlreadyExists):
            writer.commit(result.descriptor.size, result.descriptor.digest)
    except BaseException:
        writer.close()
        with contextlib.suppress(Exception):
            store.abort(ref)
        raise
    writer.close()
    return result


def _scan(path: str | None) -> dict[str, os.stat_result]:
    if path is None:
        return {}
    with os.scandir(path) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=False)
    return out


def _recordable(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)


def _same_content(a: str, b: str) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    with open(os.open(a, flags), "rb") as fa, open(os.open(b, flags), "rb") as fb:
        while True:
            ca, cb = fa.read(_CHUNK), fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def _same(lst: os.stat_result, ust: os.stat_result, lpath: str, upath: str) -> bool:
    if stat.S_IFMT(lst.st_mode) != stat.S_IFMT(ust.st_mode):
        return False
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return False
    if lst.st_mtime_ns != ust.st_mtime_ns:
        return False
    if (lst.st_ino, lst.st_ctime_ns, lst.st_size) == (ust.st_ino, ust.st_ctime_ns, ust.st_size):
        # The very same inode seen through both mounts (an overlay shows a lower layer's file
        # that was not copied up as itself): no content or xattr to compare. A copy-up or a
        # rewrite, even one keeping the inode number, has a later change time.
        return True
    if _xattrs(lpath) != _xattrs(upath):
        return False
    if stat.S_ISLNK(ust.st_mode):
        return os.readlink(lpath) == os.readlink(upath)
    if stat.S_ISREG(ust.st_mode):
        if lst.st_size != ust.st_size:
            return False
        if ust.st_mtime_ns % 10**9 == 0:
            # whole-second times (a tar extraction's) can hide a rewrite in the same second
            return _same_content(lpath, upath)
    return True


class _Differ:
    def __init__(
        self,
        tar: tarfile.TarFile,
        source_date_epoch: int | None = None,
        docker_whiteouts: bool = False,
        changes_root: str | None = None,
    ) -> None:
        self.tar = tar
        self.changes_root = changes_root
        self.epoch = source_date_epoch
        self.docker_whiteouts = docker_whiteouts
        # unchanged directories on the current walk, written only if something below changes
        self.pending: list[tuple[Path, str, os.stat_result]] = []
        # (dev, ino) -> name first written, for hard links
        self.links: dict[tuple[int, int], str] = {}

    def diff_dir(self, rel: Path, lower: str | None, upper: str) -> None:
        lower_entries = _scan(lower)
        upper_entries = _scan(upper)
        for name in sorted(set(lower_entries) | set(upper_entries), key=os.fsencode):
            lst = lower_entries.get(name)
            ust = upper_entries.get(name)
            path = rel + (name,)
            upath = os.path.join(upper, name)
            if ust is None:
                self._whiteout(path, upper)
            elif lst is None or lower is None:
                self._add_tree(path, upath, ust)
            elif not _recordable(ust):
                continue
            elif stat.S_ISDIR(lst.st_mode) and stat.S_ISDIR(ust.st_mode):
                lpath = os.path.join(lower, name)
                if _same(lst, ust, lpath, upath):
                    if not self._may_have_changes(path):
                        continue
                    self.pending.append((path, upath, ust))
                    self.diff_dir(path, lpath, upath)
                    if self.pending and self.pending[-1][0] == path:
                        self.pending.pop()
                else:
                    self._add(path, upath, ust)
                    self.diff_dir(path, lpath, upath)
            elif not _same(lst, ust, os.path.join(lower, name), upath):
                self._add_tree(path, upath, ust)

    def _may_have_changes(self, path: Path) -> bool:
        """Whether anything below PATH (a directory the same on both sides) can differ."""
        if self.changes_root is None:
            return True
        return os.path.lexists(os.path.join(self.changes_root, *path))

    def _flush_parents(self) -> None:
        for path, upath, st in self.pending:
            self._write(path, upath, st)
        self.pending.clear()

    def _whiteout(self, path: Path, upper_parent: str) -> None:
        self._flush_parents()
        info = tarfile.TarInfo("/".join(path[:-1] + (WHITEOUT_PREFIX + path[-1],)))
        info.mode = 0
        info.mtime = 0
        if self.docker_whiteouts:
            # dockerd's overlay2 diff turns overlayfs' whiteout device (made by the deletion,
            # as root) into a 0600 file with the device's time; the deletion last changed the
            # parent directory, whose time stands for it here
            info.mode = 0o600
            info.mtime = os.stat(upper_parent).st_mtime_ns // 10**9
            if self.epoch is not None and info.mtime > self.epoch:
                info.mtime = self.epoch
        self.tar.addfile(info)

    def _add(self, path: Path, upath: str, st: os.stat_result) -> None:
        self._flush_parents()
        self._write(path, upath, st)

    def _add_tree(self, path: Path, upath: str, st: os.stat_result) -> None:
        if not _recordable(st):
            return
        self._add(path, upath, st)
        if stat.S_ISDIR(st.st_mode):
            children = _scan(upath)
            for name in sorted(children, key=os.fsencode):
                self._add_tree(path + (name,), os.path.join(upath, name), children[name])

    def _write(self, path: Path, upath: str, st: os.stat_result) -> None:
        name = "/".join(path)
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 10**9
        if self.epoch is not None and info.mtime > self.epoch:
            info.mtime = self.epoch
        info.pax_headers = {
            "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape") for k, v in _xattrs(upath).items()
        }
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
            self.tar.addfile(info)
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(upath)
            self.tar.addfile(info)
        else:
            ident = (st.st_dev, st.st_ino)
            first = self.links.get(ident) if st.st_nlink > 1 else None
            if first is not None:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self.links[ident] = name
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            with open(os.open(upath, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as f:
                self.tar.addfile(info, f)
