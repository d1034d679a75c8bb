"""`cp` both ways through /containers/{id}/archive (GET to read, HEAD to stat, PUT to write),
with Docker's naming rules: into an existing directory, the source keeps its name;
otherwise the copy takes the destination's name; SRC/. copies a directory's contents."""

from __future__ import annotations

import base64
import json
import os
import posixpath
import tarfile
import threading

from cli.client import APIError, quote_path
from cli.context import CLIError, Context
from cli.formatting import human_size
from cli.streams import write_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import IO, Any

# Go's os.FileMode bits, as the daemon reports them in X-Docker-Container-Path-Stat.
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27


def _stat(ctx: Context, cid: str, path: str) -> dict[str, Any] | None:
    """HEAD the archive endpoint: the path's stat, or None when it does not exist."""
    try:
        resp = ctx.client.open("HEAD", f"/containers/{quote_path(cid)}/archive", {"path": path})
    except APIError as exc:
        if exc.status == 404 and "container" not in exc.message.lower():
            return None
        raise
    resp.read()
    resp.close()
    return _decode_stat(resp.headers.get("X-Docker-Container-Path-Stat"))


def _decode_stat(header: str | None) -> dict[str, Any]:
    if not header:
        return {}
    try:
        data = json.loads(base64.b64decode(header))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _report(ctx: Context, quiet: bool, size: int, where: str) -> None:
    if not quiet and os.isatty(2):
        ctx.err(f"Successfully copied {human_size(size)} to {where}\n")


# ---- container -> local ---------------------------------------------------------------------
class _CountingReader:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            self._buf += chunk
        data = self._buf if n < 0 else self._buf[:n]
        self._buf = self._buf[len(data) :]
        self.count += len(data)
        return data


def from_container(ctx: Context, cid: str, src: str, dst: str, *, follow: bool, quiet: bool) -> None:
    client = ctx.client
    if not src:
        raise CLIError("pydocker: empty source path", 1)
    contents_only = src.endswith("/.") or src == "."
    resp = client.open("GET", f"/containers/{quote_path(cid)}/archive", {"path": src})
    stat = _decode_stat(resp.headers.get("X-Docker-Container-Path-Stat"))
    if follow and stat.get("mode", 0) & MODE_SYMLINK and stat.get("linkTarget"):
        resp.close()
        target = stat["linkTarget"]
        resp = client.open("GET", f"/containers/{quote_path(cid)}/archive", {"path": target})
        stat = _decode_stat(resp.headers.get("X-Docker-Container-Path-Stat"))
        stat["name"] = posixpath.basename(src.rstrip("/"))  # the copy keeps the link's name
    try:
        if dst == "-":
            for chunk in resp.chunks():
                write_fd(1, chunk)
            return
        src_is_dir = bool(stat.get("mode", 0) & MODE_DIR)
        if os.path.isdir(dst):
            if contents_only:
                parent, new_top = dst, None  # entries land directly in dst
            else:
                parent, new_top = dst, stat.get("name") or posixpath.basename(src.rstrip("/"))
        else:
            if os.path.exists(dst) and src_is_dir:
                raise CLIError(f"pydocker: cannot copy a directory to a file: {dst}", 1)
            if dst.endswith("/") and not src_is_dir:
                raise CLIError(f"pydocker: destination directory {dst} does not exist", 1)
            parent = os.path.dirname(os.path.abspath(dst.rstrip("/"))) or "/"
            new_top = os.path.basename(dst.rstrip("/"))
            if not os.path.isdir(parent):
                raise CLIError(f"pydocker: no such directory: {parent}", 1)
            if contents_only:
                os.makedirs(os.path.join(parent, new_top), exist_ok=True)
                parent, new_top = os.path.join(parent, new_top), None
        reader = _CountingReader(resp.chunks())
        _extract(reader, parent, new_top, contents_only)
        _report(ctx, quiet, reader.count, dst)
    finally:
        resp.close()


def _rename(name: str, new_top: str | None, contents_only: bool) -> str | None:
    """Map an archive path to its destination path (relative), or None to skip it.

    The daemon roots every entry at the source's own name ("etc/group", or "./group" for
    SRC/.): that first component is replaced by the destination's name, or dropped when
    only the contents are copied."""
    first, _, rest = name.lstrip("/").partition("/")
    parts = [p for p in rest.split("/") if p not in ("", ".")]
    if not contents_only and new_top is not None:
        parts.insert(0, new_top)
    elif not contents_only:
        parts.insert(0, first)
    if not parts:
        return None
    if any(p == ".." for p in parts):
        raise CLIError(f"pydocker: refusing archive entry outside the destination: {name}", 1)
    return "/".join(parts)


def _extract(reader: Any, parent: str, new_top: str | None, contents_only: bool) -> None:
    as_root = os.geteuid() == 0
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            target = _rename(member.name, new_top, contents_only)
            if target is None:
                continue
            member.name = target
            if member.islnk():
                link = _rename(member.linkname, new_top, contents_only)
                if link is None:
                    continue
                member.linkname = link
            if not as_root:
                member.uid, member.gid = os.getuid(), os.getgid()
            # A file may replace a file (cp over an existing copy); tarfile unlinks first only
            # for some types, so clear non-directories ourselves.
            dest = os.path.join(parent, target)
            if not member.isdir() and os.path.lexists(dest) and not os.path.isdir(dest):
                os.unlink(dest)
            tar.extract(member, parent, numeric_owner=True, filter=_safe)


def _safe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """Refuse entries that would land outside dest (also through an extracted symlink),
    as the "tar" filter does, but keep modes and ownership as a copy should."""
    tarfile.tar_filter(member, dest)
    return member


# ---- local -> container ---------------------------------------------------------------------
def to_container(
    ctx: Context, src: str, cid: str, dst: str, *, follow: bool, archive: bool, quiet: bool
) -> None:
    if not dst:
        raise CLIError("pydocker: empty destination path", 1)
    params: dict[str, Any] = {"noOverwriteDirNonDir": True}
    if archive:
        params["copyUIDGID"] = True
    if src == "-":
        _put(ctx, cid, dst, params, _stdin_chunks())
        return
    if not os.path.lexists(src):
        raise CLIError(f"pydocker: lstat {os.path.abspath(src)}: no such file or directory", 1)
    contents_only = src.endswith("/.") or src == "."
    local = src.rstrip("/") if not contents_only else src[:-1].rstrip("/") or "."
    if follow:
        local = os.path.realpath(local)
    src_is_dir = os.path.isdir(local) and (follow or not os.path.islink(local))
    dst_stat = _stat(ctx, cid, dst)
    if dst_stat is not None and dst_stat.get("mode", 0) & MODE_DIR:
        target_dir = dst
        top = None if contents_only else os.path.basename(os.path.abspath(src.rstrip("/")))
    else:
        if dst_stat is not None and src_is_dir:
            raise CLIError(f"pydocker: cannot copy a directory to a file: {dst}", 1)
        if dst.endswith("/") and not src_is_dir:
            raise CLIError(f"pydocker: destination directory {cid}:{dst} does not exist", 1)
        target_dir = posixpath.dirname(dst.rstrip("/")) or "/"
        top = posixpath.basename(dst.rstrip("/"))
    counter = [0]
    _put(ctx, cid, target_dir, params, _tar_stream(local, top, follow, counter))
    _report(ctx, quiet, counter[0], f"{cid}:{dst}")


def _put(ctx: Context, cid: str, path: str, params: dict[str, Any], body: Iterator[bytes]) -> None:
    resp = ctx.client.open(
        "PUT",
        f"/containers/{quote_path(cid)}/archive",
        {**params, "path": path},
        body=body,
        headers={"Content-Type": "application/x-tar"},
    )
    resp.read()
    resp.close()


def _stdin_chunks() -> Iterator[bytes]:
    while True:
        data = os.read(0, 65536)
        if not data:
            return
        yield data


def _tar_stream(local: str, top: str | None, follow: bool, counter: list[int]) -> Iterator[bytes]:
    """Stream a tar of `local` (named `top`, or its entries at the root when top is None)
    through a pipe fed by a thread, so large trees are never held in memory."""
    read_fd, write_fd_ = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd_, "wb") as out:
                _write_tar(out, local, top, follow)
        except BaseException as exc:  # noqa: BLE001 - reported after the join, in the main thread
            errors.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            data = pipe.read(65536)
            if not data:
                break
            counter[0] += len(data)
            yield data
    thread.join()
    if errors:
        exc = errors[0]
        raise CLIError(f"pydocker: {exc.strerror if isinstance(exc, OSError) else exc}", 1)


def _write_tar(out: IO[bytes], local: str, top: str | None, follow: bool) -> None:
    with tarfile.open(fileobj=out, mode="w|", dereference=follow, format=tarfile.PAX_FORMAT) as tar:
        if top is not None:
            tar.add(local, arcname=top, recursive=True)
            return
        for entry in sorted(os.listdir(local)):
            tar.add(os.path.join(local, entry), arcname=entry, recursive=True)
