"""`docker cp`: HEAD, GET and PUT /containers/{id}/archive, on the container's root for one
operation (rootfs.py); the tar work is dockerd/engine/archive.py."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import tempfile
from typing import IO, TYPE_CHECKING, Any

from dockerd.engine import scoped
from dockerd.engine.archive import Extractor, TarWriter
from dockerd.engine.container import accounts, rootfs
from dockerd.engine.container.rootfs import RootView, bind_at, go_time
from dockerd.engine.container.state import Container
from dockerd.engine.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type bits, as dockerd puts them in the stat header.
_GO_MODE = [
    (stat.S_IFDIR, 1 << 31), (stat.S_IFLNK, 1 << 27), (stat.S_IFBLK, 1 << 26),
    (stat.S_IFCHR, (1 << 26) | (1 << 21)), (stat.S_IFIFO, 1 << 25), (stat.S_IFSOCK, 1 << 24),
]  # fmt: skip


def stat_path(d: Containers, ref: str, path: str) -> dict[str, Any]:
    """HEAD /containers/{id}/archive: the stat of PATH in the container."""
    c = d.get(ref)
    _check_path(path)
    with rootfs.root(d, c) as view:
        info, parent, _ = _target(view, ref, path)
        parent.close()
        return info


def archive(d: Containers, ref: str, path: str) -> tuple[dict[str, Any], IO[bytes]]:
    """The path's stat and a tar of it (spooled, so no mount outlives the call)."""
    c = d.get(ref)
    _check_path(path)
    out = tempfile.TemporaryFile(dir=d.tmp_dir)
    try:
        with rootfs.root(d, c) as view:
            info, parent, name = _target(view, ref, path)
            try:
                writer = TarWriter(out, view.pseudo | view.dev, accounts.owners(view.fd))
                writer.tree(parent.fd, name, _tar_root(path))
                writer.close()
            finally:
                parent.close()
    except BaseException:
        out.close()
        raise
    out.seek(0)
    rootfs.event(d, c, "archive-path")
    return info, out


def extract(
    d: Containers, ref: str, path: str, body: IO[bytes], *, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool
) -> None:
    """PUT /containers/{id}/archive: a tar extracted into the container with dockerd's Untar rules."""
    c = d.get(ref)
    _check_path(path)
    with rootfs.root(d, c) as view:
        try:
            # The last element is followed too: extracting "to a symlink" means into its target.
            dest = scoped.resolve(view.fd, _abs(path), follow=True)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        except NotADirectoryError:
            raise InvalidParameter("extraction point is not a directory") from None
        except OSError as exc:
            raise InvalidParameter(f"{path}: {exc.strerror}") from None
        with dest:
            if not stat.S_ISDIR(os.fstat(dest.fd).st_mode):
                raise InvalidParameter("extraction point is not a directory")
            bind = bind_at(view.binds, dest.path)
            if bind is not None and not bind.rw:
                raise InvalidParameter("mounted volume is marked read-only")
            if bind is None and c.host_config.get("ReadonlyRootfs"):
                raise InvalidParameter("container rootfs is marked read-only")
            owner = _owner(d, view, c) if copy_uid_gid else None
            Extractor(
                view.fd,
                dest.path,
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                chown=owner,
                skip_devices=view.pseudo,
            ).run(body)
    rootfs.event(d, c, "extract-to-dir")


def _target(view: RootView, ref: str, path: str) -> tuple[dict[str, Any], scoped.Resolved, str]:
    """(stat, directory holding the target, target's name in it) as dockerd's ResolvePath + StatPath."""
    abs_path = _abs(path)
    directory, name = abs_path[: abs_path.rfind("/") + 1], abs_path[abs_path.rfind("/") + 1 :]
    try:
        parent = scoped.resolve(view.fd, directory, follow=True)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container {ref}") from None
    except OSError as exc:
        raise InvalidParameter(f"lstat {abs_path}: {(exc.strerror or str(exc)).lower()}") from None
    name = name if name not in ("", ".") else "."
    try:
        st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
    except FileNotFoundError:
        parent.close()
        raise NotFound(f"Could not find the file {path} in container {ref}") from None
    except OSError as exc:
        parent.close()
        raise InvalidParameter(f"lstat {abs_path}: {(exc.strerror or str(exc)).lower()}") from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        # Fully resolved inside the container, as dockerd reports it (even when dangling).
        with (
            contextlib.suppress(OSError),
            scoped.resolve(view.fd, abs_path, follow=True, missing_ok=True) as r,
        ):
            link_target = r.path
    info = {
        "name": scoped.base(abs_path),
        "size": st.st_size,
        "mode": go_file_mode(st.st_mode),
        "mtime": go_time(st.st_mtime_ns),
        "linkTarget": link_target,
    }
    return info, parent, name


def _owner(d: Containers, view: RootView, c: Container) -> tuple[int, int] | None:
    """copyUIDGID: the container's user, looked up in its own account files (None: keep the archive's)."""
    user = c.config.get("User") or ""
    if not user:
        with contextlib.suppress(Exception):
            user = (d.images.resolve(c.image_id).config.get("config") or {}).get("User") or ""
    if not user:
        return None
    name, _, group = user.partition(":")
    if name.isdigit() and (not group or group.isdigit()):
        return int(name), int(group or 0)
    passwd, groups = accounts.account_texts_or_empty(view.fd)
    return accounts.lookup_user(user, passwd, groups)


def encode_stat(info: dict[str, Any]) -> str:
    """The X-Docker-Container-Path-Stat header: base64 of the JSON as Go marshals it (UTF-8 as it
    is, <, > and & escaped)."""
    text = json.dumps(info, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return base64.b64encode(text.encode("utf-8", "surrogateescape")).decode()


def go_file_mode(mode: int) -> int:
    out = stat.S_IMODE(mode) & 0o777
    fmt = stat.S_IFMT(mode)
    for kind, bits in _GO_MODE:
        if fmt == kind:
            out |= bits
    if mode & stat.S_ISUID:
        out |= 1 << 23
    if mode & stat.S_ISGID:
        out |= 1 << 22
    if mode & stat.S_ISVTX:
        out |= 1 << 20
    return out


def _check_path(path: str) -> None:
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    if "\0" in path:  # no file name holds one; the kernel says EINVAL, as dockerd relays
        raise InvalidParameter(f"lstat {path}: invalid argument")


def _abs(path: str) -> str:
    """dockerd's archive.PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)."""
    cleaned = scoped.clean(path)
    if scoped.base(path) == "." and scoped.base(cleaned) != ".":
        return cleaned.rstrip("/") + "/."
    if path.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def _tar_root(path: str) -> str:
    """The name dockerd gives the archive's top entry: the requested path's base name."""
    return scoped.base(_abs(path))
