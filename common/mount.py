"""Mounts as containerd describes them, and doing them for real (containerd's mount package).

A `Mount` is containerd.types.Mount: a type ("bind", "overlay", ...), a source and options;
a list of them is stacked, in order, on one target. Snapshotters hand these out; clients
(pydockerd reading a stopped container's files) and the daemon's own diff and task code
mount them. Shared by both sides, as containerd's mount package is (the client library
offers it as containerd.client.mount, the daemon as containerd.snapshots.mount). The
kernel calls go through common/libc.py, the one place that holds the project's raw
syscalls; mount points are read by common/mountinfo.py.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from common import libc, mountinfo
from common.errdefs import InvalidArgument
from common.mountinfo import mount_points as mount_points  # containerd's mount package offers it too
from common.mountopts import parse_options

# mount(2) copies its data argument into one page; a longer overlay lowerdir list is cut short.
_MAX_MOUNT_DATA = 4095


@dataclass(frozen=True)
class Mount:
    """One entry of containerd.types.Mount: `target` is empty for a snapshot's root mounts."""

    type: str
    source: str
    target: str = ""
    options: list[str] = field(default_factory=list)


def option_value(mount: Mount, name: str) -> str | None:
    """The value of a `name=value` option (the last one wins, as in the kernel), or None."""
    value = None
    prefix = name + "="
    for opt in mount.options:
        if opt.startswith(prefix):
            value = opt[len(prefix) :]
    return value


def overlay_dirs(mount: Mount) -> tuple[str | None, list[str]]:
    """(upperdir or None, lowerdirs nearest first) of an overlay mount."""
    lower = option_value(mount, "lowerdir")
    lowers = lower.split(":") if lower else []
    return option_value(mount, "upperdir"), lowers


def is_bind(mount: Mount) -> bool:
    return mount.type == "bind" or "bind" in mount.options or "rbind" in mount.options


def is_readonly(mount: Mount) -> bool:
    if mount.type == "overlay":
        return option_value(mount, "upperdir") is None
    ro = False
    for opt in mount.options:
        if opt == "ro":
            ro = True
        elif opt == "rw":
            ro = False
    return ro


def readonly(mounts: Sequence[Mount]) -> list[Mount]:
    """The same view, read-only, without taking the upper layer's workdir.

    An overlay's upperdir becomes its top lowerdir (as containerd does for diffs), so a
    snapshot a container is using can be read without a second writer on its upperdir.
    """
    out = []
    for m in mounts:
        if m.type == "overlay":
            upper, lowers = overlay_dirs(m)
            layers = ([upper] if upper else []) + lowers
            keep = [
                o
                for o in m.options
                if o.split("=", 1)[0] not in ("upperdir", "workdir", "lowerdir", "rw", "ro")
            ]
            if len(layers) == 1:
                # overlayfs refuses a single lower layer without an upper; it is just a directory
                out.append(Mount("bind", layers[0], m.target, ["ro", "rbind"]))
            else:
                out.append(Mount("overlay", m.source, m.target, keep + ["lowerdir=" + ":".join(layers)]))
        else:
            opts = [o for o in m.options if o not in ("rw", "ro")]
            out.append(Mount(m.type, m.source, m.target, ["ro"] + opts))
    return out


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each entry on TARGET in order; on failure, what was mounted is undone."""
    done = 0
    try:
        for m in mounts:
            _mount_one(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            unmount(target)
        raise


def _mount_one(m: Mount, target: str) -> None:
    opts = parse_options(m.options)
    if is_bind(m):
        try:
            libc.mount(m.source, target, None, opts.flags & ~libc.MS_RDONLY, None)
        except OSError as e:
            raise InvalidArgument(f"bind mount {m.source} on {target}: {os.strerror(e.errno or 0)}") from e
        if opts.flags & libc.MS_RDONLY:
            # a bind mount ignores MS_RDONLY until it is remounted
            try:
                libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY, None)
            except BaseException:
                unmount(target)
                raise
        return
    if len(opts.data) > _MAX_MOUNT_DATA:
        raise InvalidArgument(
            f"{m.type} mount options are {len(opts.data)} bytes, more than the kernel's one page"
        )
    try:
        libc.mount(m.source, target, m.type, opts.flags, opts.data or None)
    except OSError as e:
        raise InvalidArgument(f"mount {m.type} on {target}: {os.strerror(e.errno or 0)}") from e


def unmount(target: str) -> None:
    """Unmount the top mount on TARGET; a busy one is detached so it goes when its users do."""
    try:
        libc.umount(target)
    except OSError as e:
        if e.errno == errno.EBUSY:
            libc.umount(target, libc.MNT_DETACH)
        elif e.errno != errno.EINVAL:  # EINVAL: nothing mounted there
            raise


def unmount_all(target: str) -> None:
    """Unmount every mount stacked on TARGET."""
    path = os.path.realpath(target)
    while mountinfo.is_mount_point(path):
        unmount(path)


@contextlib.contextmanager
def temp_mount(mounts: Sequence[Mount], tmp_dir: str | None = None) -> Iterator[str]:
    """Mount MOUNTS on a fresh directory for the duration of the block; no mounts -> an empty directory."""
    root = tempfile.mkdtemp(prefix="pycontainerd-mount-", dir=tmp_dir)
    try:
        mount_all(mounts, root)
        try:
            yield root
        finally:
            for _ in mounts:
                unmount(root)
    finally:
        # rmdir, never rmtree: if an unmount failed, the directory still shows a snapshot's files
        with contextlib.suppress(OSError):
            os.rmdir(root)
