"""Copy-up: a new, empty volume mounted over a directory of the image starts as a copy of it.

What dockerd does when a container is created (containerd's fs.CopyDir, then the directory's
own owner and mode): every entry below the image's directory is copied into the volume with
its owner, mode (setuid/setgid bits included), extended attributes (file capabilities,
ACLs), times, symlinks as symlinks, hard links as hard links, and device nodes, FIFOs and
sockets as such. The image side is walked by file descriptors from the container's root
(dockerd/engine/scoped.py), so no symlink in the image can point the copy at host files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from dockerd.engine import scoped
from dockerd.engine.errors import InvalidParameter

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def ensure_mountable(rootfs: str, destination: str) -> None:
    """A volume cannot hide a file: refused as dockerd refuses it (naming the container path)."""
    root = os.open(rootfs, _O_DIR)
    try:
        with scoped.resolve(root, destination, missing_ok=True) as r:
            if r.fd >= 0 and not stat.S_ISDIR(os.fstat(r.fd).st_mode):
                raise InvalidParameter(f"cannot mount volume over existing file, file exists {r.path}")
    except (NotADirectoryError, FileNotFoundError):
        return  # the runtime reports a path it cannot create
    finally:
        os.close(root)


def copy_up(rootfs: str, destination: str, volume_path: str) -> bool:
    """Fill VOLUME_PATH from DESTINATION inside ROOTFS; False when there was nothing to do.

    Nothing is done when the volume already holds anything, or the image has no directory there.
    """
    dst = os.open(volume_path, _O_DIR)
    try:
        if os.listdir(dst):
            return False
        root = os.open(rootfs, _O_DIR)
        try:
            try:
                resolved = scoped.resolve(root, destination)
            except (FileNotFoundError, NotADirectoryError):
                return False
            with resolved:
                if not stat.S_ISDIR(os.fstat(resolved.fd).st_mode):
                    return False
                src = scoped.reopen_dir(resolved.fd)
        finally:
            os.close(root)
        try:
            _copy_dir(src, dst, dst, "", {})
            _copy_attrs(os.fstat(src), src, None, dst, None)
        finally:
            os.close(src)
        return True
    finally:
        os.close(dst)


def _copy_dir(src: int, dst: int, dst_root: int, rel: str, links: dict[tuple[int, int], str]) -> None:
    for name in sorted(os.listdir(src)):
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        path = f"{rel}/{name}" if rel else name
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s = os.open(name, _O_DIR, dir_fd=src)
            try:
                d = os.open(name, _O_DIR, dir_fd=dst)
                try:
                    _copy_dir(s, d, dst_root, path, links)
                    _copy_attrs(st, s, None, d, None)
                finally:
                    os.close(d)
            finally:
                os.close(s)
            continue
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], name, src_dir_fd=dst_root, dst_dir_fd=dst, follow_symlinks=False)
            continue
        if stat.S_ISREG(mode):
            _copy_file(src, dst, name)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        else:
            os.mknod(name, mode, st.st_rdev, dir_fd=dst)  # devices, FIFOs, sockets
        _copy_attrs(st, src, name, dst, name)
        if st.st_nlink > 1:
            links[key] = path


def _copy_file(src: int, dst: int, name: str) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst
        )
        try:
            _copy_data(fin, fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_data(fin: int, fout: int) -> None:
    try:
        while os.copy_file_range(fin, fout, 1 << 30):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    os.lseek(fin, 0, os.SEEK_SET)
    os.lseek(fout, 0, os.SEEK_SET)
    os.ftruncate(fout, 0)
    while True:
        chunk = os.read(fin, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view) :]


def _xattr_path(dir_fd: int, name: str | None) -> str:
    # /proc/self/fd/N is the directory itself; NAME below it is looked up without following
    return scoped.proc_fd(dir_fd) + ("/" + name if name else "")


def _copy_attrs(
    st: os.stat_result, src_dir: int, src_name: str | None, dst_dir: int, dst_name: str | None
) -> None:
    """Owner, then mode (chown clears setuid bits), then xattrs (chown drops file capabilities), then times."""
    is_link = stat.S_ISLNK(st.st_mode)
    if dst_name is None:
        os.fchown(dst_dir, st.st_uid, st.st_gid)
        os.fchmod(dst_dir, stat.S_IMODE(st.st_mode))
    else:
        os.chown(dst_name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
        if not is_link:
            os.chmod(dst_name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    src_path, dst_path = _xattr_path(src_dir, src_name), _xattr_path(dst_dir, dst_name)
    with contextlib.suppress(OSError):  # file systems without xattrs (or these names) refuse them
        for attr in os.listxattr(src_path, follow_symlinks=False):
            with contextlib.suppress(OSError):
                value = os.getxattr(src_path, attr, follow_symlinks=False)
                os.setxattr(dst_path, attr, value, follow_symlinks=False)
    times = (st.st_atime_ns, st.st_mtime_ns)
    if dst_name is None:
        os.utime(dst_dir, ns=times)
    else:
        os.utime(dst_name, ns=times, dir_fd=dst_dir, follow_symlinks=False)
