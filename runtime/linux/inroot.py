"""Paths inside a container's root filesystem, looked up by the kernel and never left.

Every path the container can influence (mount destinations, device nodes, its working
directory) is opened with openat2(2) and RESOLVE_IN_ROOT from an fd on the root: symlinks,
absolute or climbing with '..', are resolved as if that fd were '/', by the kernel, in one
system call, so a symlink swapped in meanwhile can lead nowhere outside the root. What
comes back is an O_PATH fd, and a mount is made on /proc/self/fd/N, the very inode that was
resolved, never on a path string that a later lookup could take elsewhere (CVE-2021-30465).
RESOLVE_NO_MAGICLINKS refuses /proc/self/fd/N, /proc/PID/root and the like, which lead to
wherever their fd is, the host included (CVE-2024-21626).

Missing directories are made one component at a time, each relative to the fd of its
parent (itself resolved in the root), and opened again without following symlinks; a
dangling symlink on the way is expanded here, inside the root, as runc's SecureJoin did.
"""

from __future__ import annotations

import errno
import os

from common import libc
from runtime.errors import PyruncError

O_PATH = os.O_PATH | os.O_CLOEXEC
IN_ROOT = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS
# One component of a directory we hold: no symlink, no way out.
_HERE = libc.RESOLVE_BENEATH | libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS
MAX_LINKS = 40  # the kernel's MAXSYMLINKS


def proc_fd(fd: int) -> str:
    """A path naming exactly the inode FD holds, for calls that take no fd (mount, chmod)."""
    return f"/proc/self/fd/{fd}"


def open_root(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in(root: int, path: str, flags: int = 0) -> int:
    """PATH below ROOT as an O_PATH fd; OSError (ENOENT, ENOTDIR, ELOOP for a magic link) otherwise."""
    return libc.openat2(root, path.lstrip("/") or ".", O_PATH | flags, IN_ROOT)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def mkdir_all(root: int, path: str, mode: int = 0o755) -> int:
    """PATH as a directory below ROOT (an O_PATH fd), its missing components made."""
    try:
        return open_in(root, path, os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    todo = _parts(path)
    done: list[str] = []  # what is resolved so far, as a path below the root
    fd = open_in(root, ".", os.O_DIRECTORY)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            try:
                nxt = open_in(root, "/".join([*done, part]), os.O_DIRECTORY)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                made = _make_dir(fd, part, mode)
                if made is None:  # a dangling symlink: go where it points, still inside the root
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                    try:
                        target = os.readlink(part, dir_fd=fd)
                    except OSError as exc:
                        if exc.errno != errno.EINVAL:
                            raise
                        todo.insert(0, part)  # no longer a symlink (a race): look at it again
                        continue
                    if target.startswith("/"):
                        done = []
                        os.close(fd)
                        fd = open_in(root, ".", os.O_DIRECTORY)
                    todo = _parts(target) + todo
                    continue
                nxt = made
            os.close(fd)
            fd, done = nxt, [*done, part]
        result, fd = fd, -1
        return result
    finally:
        if fd >= 0:
            os.close(fd)


def _make_dir(parent: int, name: str, mode: int) -> int | None:
    """NAME made in PARENT (or there already) as an O_PATH fd; None when NAME is a symlink."""
    try:
        os.mkdir(name, mode, dir_fd=parent)
    except FileExistsError:
        pass
    try:
        return libc.openat2(parent, name, O_PATH | os.O_DIRECTORY, _HERE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise


def make_file(root: int, path: str, mode: int = 0o755) -> int:
    """PATH below ROOT as an O_PATH fd, an empty file made if nothing is there (a bind mount's
    target when its source is not a directory)."""
    for _ in range(MAX_LINKS):
        try:
            return open_in(root, path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        parts = _parts(path)
        if not parts:
            break
        parent = mkdir_all(root, "/".join(parts[:-1]))
        try:
            try:
                os.close(
                    os.open(
                        parts[-1],
                        os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        mode,
                        dir_fd=parent,
                    )
                )
                continue
            except FileExistsError:
                pass
            try:
                target = os.readlink(parts[-1], dir_fd=parent)
            except OSError:
                continue  # made meanwhile, by someone else: look again
            # A dangling symlink: make its target instead, inside the root.
            base = [] if target.startswith("/") else parts[:-1]
            path = "/".join([*base, *_parts(target)])
        finally:
            os.close(parent)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def open_here(parent: int, name: str, flags: int = 0) -> int:
    """NAME in directory PARENT itself, as an O_PATH fd: refused if it is a symlink."""
    return libc.openat2(parent, name, O_PATH | flags, _HERE)


def refusal(what: str, path: str, exc: OSError) -> PyruncError:
    """A clear message for a path of the spec that could not be looked up in the root."""
    if exc.errno == errno.ELOOP:
        reason = "it goes through a magic link (/proc/.../fd/N, /proc/.../root) or a symlink loop"
    else:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
    return PyruncError(f"{what} {path!r}: {reason}")


def chdir(path: str) -> None:
    """Change to PATH below our root (the container's, after the switch), never through a magic link,
    and make sure the result is inside the root: a cwd outside it is how CVE-2024-21626 escaped."""
    root = open_root("/")
    try:
        fd = open_in(root, path, os.O_DIRECTORY)
    except OSError as exc:
        raise refusal("cwd", path, exc) from None
    finally:
        os.close(root)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    try:
        os.getcwd()
    except FileNotFoundError:
        raise PyruncError(f"cwd {path!r}: outside the container's root, a breakout: refused") from None
