"""Where a container's files are reached, never through pycontainerd's or a shim's state:

* A running (or paused) container: through its init's root, /proc/PID/root, the pid
  checked against containerd's task before and after the open. That is the container's
  own mount of its snapshot, bind mounts included, so what a cp writes the container sees
  at once. A second read-write overlay mount of the snapshot would not do: two overlays on
  one upper directory keep their own dentry and readdir caches, so a file copied in through
  one stays invisible (or a deleted one visible) in the other.
* A stopped container (created or exited): the snapshot's mounts (Snapshots.mounts,
  keyed by the container id; prepared from the image if it never started, since dockerd
  has the RW layer from create on) are mounted on a private directory under
  <data-root>/mnt with the container's bind mounts inside, and unmounted afterwards, as
  dockerd mounts through its graph driver. A per-container lock (RootfsGuard) keeps start
  and remove out meanwhile.
* export and changes only read: they mount the snapshot read-only (its upper directory as
  the top lower layer, as containerd's differ does), which never competes with the
  container's own mount.

Paths are resolved inside that root by dockerd/engine/scoped.py (symlinks followed, scoped
to the root). The operations are copy.py (cp), export.py and changes.py.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common import libc, mountinfo
from containerd.client import Client, Mount, Snapshots
from containerd.client.errors import AlreadyExists, ContainerdError, NotFound
from containerd.client.mount import mount_points, temp_mount, unmount
from containerd.client.mount import readonly as readonly_mounts
from dockerd.engine import initlayer, scoped, userns
from dockerd.engine.container.state import Container
from dockerd.engine.errors import EngineError
from dockerd.volumes.mountpoint import TMPFS, MountPoint

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers

GC_ROOT = "containerd.io/gc.root"  # keeps a snapshot prepared before start from the collector


# --- locks and mounts ------------------------------------------------------------------------


class RootfsGuard:
    """One lock per container, held by start and remove, and by cp while it has the stopped
    container's snapshot mounted read-write (two writers on one upper directory corrupt it)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locks: dict[str, list[Any]] = {}  # id -> [RLock, users]

    def acquire(self, cid: str) -> None:
        with self._mutex:
            entry = self._locks.setdefault(cid, [threading.RLock(), 0])
            entry[1] += 1
        entry[0].acquire()

    def release(self, cid: str) -> None:
        with self._mutex:
            entry = self._locks[cid]
            entry[0].release()
            entry[1] -= 1
            if not entry[1]:
                del self._locks[cid]

    @contextlib.contextmanager
    def hold(self, cid: str) -> Iterator[None]:
        self.acquire(cid)
        try:
            yield
        finally:
            self.release(cid)


@contextlib.contextmanager
def mounted(mounts: list[Mount], mount_root: str, *, readonly: bool = False) -> Iterator[str]:
    """Mount a snapshot's mounts on a fresh directory under MOUNT_ROOT for the block; always unmounted."""
    converted = [Mount(m.type, m.source, m.target, list(m.options)) for m in mounts]
    if readonly:
        converted = readonly_mounts(converted)
    with temp_mount(converted, mount_root) as path:
        yield path


def prepare_writable(
    snaps: Snapshots,
    key: str,
    parent: str,
    mount_root: str,
    labels: dict[str, str] | None = None,
    owner: tuple[int, int] = (0, 0),
) -> list[Mount]:
    """A container's writable snapshot, with what dockerd's init layer holds (initlayer.py),
    owned by OWNER (the container's root on the host)."""
    mounts = snaps.prepare(key, parent, labels=labels)
    try:
        with mounted(mounts, mount_root) as path:
            initlayer.setup(path, owner)
    except BaseException:
        with contextlib.suppress(ContainerdError):
            snaps.remove(key)
        raise
    return mounts


def clean_mount_root(mount_root: str) -> None:
    """Unmount what a pydockerd that died mid-copy left under MOUNT_ROOT."""
    for point in sorted(mount_points(mount_root), key=len, reverse=True):
        if point.rstrip("/") != os.path.realpath(mount_root).rstrip("/"):
            with contextlib.suppress(OSError):
                libc.umount(point, libc.MNT_DETACH)
    for name in os.listdir(mount_root):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(mount_root, name))


@contextlib.contextmanager
def image_root(client: Client, key: str, top: str, mount_root: str) -> Iterator[int]:
    """A read-only view of an image's unpacked chain TOP, as a directory fd (containerd's View)."""
    snaps = Snapshots(client, "overlayfs")
    with client.lease():
        mounts = snaps.view(key, top)
        try:
            with mounted(mounts, mount_root) as path:
                fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    yield fd
                finally:
                    os.close(fd)
        finally:
            with contextlib.suppress(ContainerdError):
                snaps.remove(key)


@dataclass
class Bind:
    destination: str
    source: str
    rw: bool


@dataclass
class RootView:
    fd: int  # O_PATH fd of the container's "/"
    binds: list[Bind] = field(default_factory=list)
    pseudo: set[int] = field(default_factory=set)  # st_dev of filesystems never entered nor written
    dev: set[int] = field(default_factory=set)  # st_dev of the runtime's /dev mounts: not archived


def binds_of(c: Container) -> list[Bind]:
    if c.mount_points:  # binds and volumes, as the container has them mounted
        points = [MountPoint.from_record(raw) for raw in c.mount_points]
        return [
            Bind(scoped.clean(p.destination), p.source, p.rw) for p in points if p.type != TMPFS and p.source
        ]
    out = []
    for spec in c.host_config.get("Binds") or []:
        parts = spec.split(":")
        if len(parts) >= 2:
            mode = parts[2].split(",") if len(parts) > 2 else []
            out.append(Bind(scoped.clean(parts[1]), parts[0], "ro" not in mode))
    return out


def bind_at(binds: list[Bind], path: str) -> Bind | None:
    """The bind mount PATH lies in (the deepest one), if any."""
    found = None
    for b in binds:
        if path == b.destination or path.startswith(b.destination.rstrip("/") + "/"):
            if found is None or len(b.destination) > len(found.destination):
                found = b
    return found


# --- roots --------------------------------------------------------------------------------------


@contextlib.contextmanager
def root(d: Containers, c: Container) -> Iterator[RootView]:
    """The container's root for one cp operation: its init's /proc/PID/root while it runs,
    else its snapshot mounted here with its binds (under its RootfsGuard lock)."""
    guard = d.rootfs_guard
    guard.acquire(c.id)
    held = True
    try:
        live = _live_root(d, c)
        if live is not None:
            guard.release(c.id)  # the container's own mount: nothing of ours to protect
            held = False
            try:
                yield live
            finally:
                os.close(live.fd)
            return
        with _mounted_root(d, c) as view:
            yield view
    finally:
        if held:
            guard.release(c.id)


def _live_root(d: Containers, c: Container) -> RootView | None:
    """/proc/PID/root of the container's init, if its task is alive (checked again after the open)."""
    pid = _task_pid(d, c)
    if pid is None:
        return None
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        pseudo, dev = scoped.pseudo_devices(mountinfo.read(pid))
    except OSError:
        os.close(fd)
        return None
    if _task_pid(d, c) != pid:  # it exited meanwhile: the pid may be someone else's now
        os.close(fd)
        return None
    return RootView(fd, binds_of(c), pseudo, dev)


def _task_pid(d: Containers, c: Container) -> int | None:
    try:
        process = d.client.tasks.get(c.id)
    except ContainerdError:
        return None
    return process.pid if process.pid > 0 and process.status.alive else None


@contextlib.contextmanager
def _mounted_root(d: Containers, c: Container) -> Iterator[RootView]:
    """The stopped container's snapshot, read-write, with its bind mounts in place."""
    mounts = snapshot_mounts(d, c, prepare=True)
    with mounted(mounts or [], d.mount_root) as path:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        binds = binds_of(c)
        done: list[int] = []
        try:
            for b in sorted(binds, key=lambda b: b.destination.count("/")):
                point = _bind_into(fd, b)
                if point is not None:
                    done.append(point)
            pseudo, _ = scoped.pseudo_devices(mountinfo.read())  # a bind of the host's /proc, say
            yield RootView(fd, binds, pseudo)
        finally:
            os.close(fd)
            # Through the fds: a path string could have been sent elsewhere by a symlink meanwhile.
            for point in reversed(done):
                try:
                    unmount(scoped.proc_fd(point))
                finally:
                    os.close(point)


def _bind_into(root: int, b: Bind) -> int | None:
    """Bind-mount B's source at its destination inside the mounted snapshot (made if missing,
    resolved inside the root); an O_PATH fd on the new mount's root, through which it is
    remounted read-only and later unmounted, or None if the source is gone."""
    try:
        source = os.stat(b.source)
    except OSError:
        return None
    if stat.S_ISDIR(source.st_mode):
        point = scoped.resolve(root, b.destination, mkdirs=True)
    else:
        with scoped.resolve(root, posixpath.dirname(b.destination), mkdirs=True) as parent:
            name = posixpath.basename(b.destination)
            with contextlib.suppress(FileExistsError):
                os.close(
                    os.open(
                        name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o755, dir_fd=parent.fd
                    )
                )
        point = scoped.resolve(root, b.destination)
    with point:
        libc.mount(b.source, scoped.proc_fd(point.fd), None, libc.MS_BIND | libc.MS_REC)
    # The fd above is the directory under the mount: look again, and make sure it is the bind.
    mounted = scoped.resolve(root, b.destination)
    again = os.fstat(mounted.fd)
    if (again.st_dev, again.st_ino) != (source.st_dev, source.st_ino):
        mounted.close()  # left to the snapshot's own unmount, which detaches all below it
        raise EngineError(f"{b.destination} changed while its volume was being mounted")
    fd, mounted.fd = mounted.fd, -1
    if not b.rw:
        try:
            libc.mount(None, scoped.proc_fd(fd), None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY)
        except BaseException:
            unmount(scoped.proc_fd(fd))
            os.close(fd)
            raise
    return fd


def layer_parent(d: Containers, c: Container, image_id: str, top: str) -> str:
    """What the writable layer grows from: the image's chain TOP, remapped (userns.py) when the
    daemon remaps."""
    mapping = d.security.userns
    if mapping is None or not top:  # (also with --userns=host: dockerd's layers are the range's)
        return top

    def mount(mounts: list[Mount]) -> Any:
        return mounted(mounts, d.mount_root)

    try:
        return userns.remapped_parent(d.client, top, image_id, mapping, mount)
    except ValueError as exc:  # an owner outside the mapping
        raise EngineError(f"error remapping the image's files for user namespaces: {exc}") from None


def root_owner(d: Containers, c: Container) -> tuple[int, int]:
    """The host's ids of the daemon's remapped root, which owns containers' init files."""
    mapping = d.security.userns
    return (0, 0) if mapping is None else mapping.root_pair()  # also with --userns=host, as dockerd


def snapshot_mounts(d: Containers, c: Container, *, prepare: bool) -> list[Mount] | None:
    """The container's snapshot (prepared now with PREPARE if it never started)."""
    snaps = d.client.snapshots("overlayfs")
    try:
        return snaps.mounts(c.id)
    except NotFound:
        if not prepare:
            return None
    # Never started: make its RW layer now, as dockerd has it from create on.
    image = d.images.resolve(c.image_id)
    top = layer_parent(d, c, image.id, d.images.ensure_unpacked(image))
    try:
        return prepare_writable(
            snaps, c.id, top, d.mount_root, labels={GC_ROOT: go_time(time.time_ns())}, owner=root_owner(d, c)
        )
    except AlreadyExists:
        return snaps.mounts(c.id)


@contextlib.contextmanager
def readonly_root(d: Containers, c: Container) -> Iterator[int]:
    # A container that never started gets its writable layer now (dockerd has it, and its
    # init layer, from create on), so an export shows /.dockerenv and the mount points.
    with d.rootfs_guard.hold(c.id):
        mounts = snapshot_mounts(d, c, prepare=True)
    assert mounts is not None
    with mounted(mounts, d.mount_root, readonly=True) as path:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped, as Go marshals a time.Time in UTC."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def event(d: Containers, c: Container, action: str) -> None:
    """A filesystem operation's container event (archive-path, extract-to-dir, export)."""
    d.publish("container", action, c.id, {"image": c.image_ref, "name": c.name})
