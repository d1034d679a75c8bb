"""Files replaced whole: a reader, or whoever looks after a crash, sees the old content or the new,
never a part. Every layer writes its state through here.

The recipe: a temporary file with a unique name in the same directory (so rename(2) cannot cross
file systems and two writers never share one), the data written in full, fsync of the file,
rename over the target, fsync of the directory (so the rename itself survives a power loss).
Without `durable` the two fsyncs are skipped: the file is still never seen half-written by anyone
while the machine runs, but a power loss may lose the change. Only state that cannot outlive the
machine anyway may do that (see write_atomic).

Import-light (os only): pyrunc and the shim use it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

# Temporary files start with this, so a directory listing can leave them out.
TMP_PREFIX = ".tmp-"


def write_atomic(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, durable: bool = True
) -> None:
    """Replace PATH with DATA, as a file of exactly MODE (the umask does not apply).

    `durable=False` is for state that describes processes, which a power loss ends anyway, written
    on a measured hot path: pyrunc's state.json and pid files (runc does not sync them either), and
    pyregistry when its operator turned `fsync` off.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = _create_temp(directory, os.path.basename(path))
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


class Replacing:
    """`with Replacing(path) as f: f.write(...)`: the same recipe for content written as a stream
    (an export, a download). PATH is replaced when the block ends normally; if it raises, PATH is
    left as it was and the temporary file removed."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600, *, durable: bool = True) -> None:
        self.path = os.fspath(path)
        self.mode = mode
        self.durable = durable
        self.tmp = ""
        self.file: BinaryIO | None = None

    def __enter__(self) -> BinaryIO:
        fd, self.tmp = _create_temp(os.path.dirname(self.path) or ".", os.path.basename(self.path))
        self.file = os.fdopen(fd, "wb")
        return self.file

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self.file is not None
        try:
            if exc_type is None:
                self.file.flush()
                os.fchmod(self.file.fileno(), self.mode)
                if self.durable:
                    os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.rename(self.tmp, self.path)
        except BaseException:
            self.file.close()
            _unlink(self.tmp)
            raise
        if exc_type is not None:
            _unlink(self.tmp)
        elif self.durable:
            fsync_dir(os.path.dirname(self.path) or ".")


def write_text(path: str | os.PathLike[str], text: str, mode: int = 0o600, *, durable: bool = True) -> None:
    write_atomic(path, text.encode(), mode, durable=durable)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory PATH (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _create_temp(directory: str, name: str) -> tuple[int, str]:
    # O_EXCL with a random suffix: unique among concurrent writers (threads, processes) without
    # tempfile, which pyrunc's start path cannot afford (it imports random, shutil...).
    while True:
        tmp = os.path.join(directory, f"{TMP_PREFIX}{name[:128]}.{os.urandom(6).hex()}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue
