"""Container filesystems: `docker cp` (archive HEAD/GET/PUT), export and changes.

Where a container's files are reached, never through pycontainerd's or a shim's state:

* A running (or paused) container: through its init's root, /proc/PID/root, the pid
  checked against containerd's task before and after the open. That is the container's
  own mount of its snapshot, bind mounts included, so what a cp writes the container sees
  at once. A second read-write overlay mount of the snapshot would not do: two overlays on
  one upper directory keep their own dentry and readdir caches, so a file copied in through
  one stays invisible (or a deleted one visible) in the other.
* A stopped container (created or exited): the snapshot's mounts (Snapshots.mounts over
  gRPC, keyed by the container id; prepared from the image if it never started, since
  dockerd has the RW layer from create on) are mounted on a private directory under
  <data-root>/mnt with the container's bind mounts inside, and unmounted afterwards, as
  dockerd mounts through its graph driver. A per-container lock (RootfsGuard) keeps start
  and remove out meanwhile.
* export and changes only read: they mount the snapshot read-only (its upper directory as
  the top lower layer, as containerd's differ does), which never competes with the
  container's own mount.

Paths are resolved inside that root by dockerd/engine/scoped.py (symlinks followed, scoped
to the root); the tar work is dockerd/engine/archive.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from common import libc, mountinfo
from containerd.client import Mount, Snapshots
from containerd.errors import AlreadyExists, ContainerdError
from containerd.errors import NotFound as ContainerdNotFound
from containerd.snapshots import mount as cmount
from dockerd.engine import initlayer, scoped
from dockerd.engine.archive import Extractor, TarWriter
from dockerd.engine.errors import EngineError, InvalidParameter, NotFound

if TYPE_CHECKING:
    from containerd.client import Client
    from dockerd.engine.containers import Container, ContainerEngine
    from dockerd.engine.image.service import ImageService

STAT_HEADER = "X-Docker-Container-Path-Stat"
GC_ROOT = "containerd.io/gc.root"  # keeps a snapshot prepared before start from the collector

# Go's os.FileMode type bits, as dockerd puts them in the stat header.
_GO_MODE = [
    (stat.S_IFDIR, 1 << 31), (stat.S_IFLNK, 1 << 27), (stat.S_IFBLK, 1 << 26),
    (stat.S_IFCHR, (1 << 26) | (1 << 21)), (stat.S_IFIFO, 1 << 25), (stat.S_IFSOCK, 1 << 24),
]  # fmt: skip

# What dockerd keeps in a container's init layer, below its RW layer: the runtime's mount
# points. pyrunc creates them in the RW layer itself, so `changes` leaves them out.
_INIT_LAYER = (
    "/.dockerenv",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/dev",
    "/proc",
    "/sys",
)
CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


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
    converted = [cmount.Mount(m.type, m.source, m.target, list(m.options)) for m in mounts]
    if readonly:
        converted = cmount.readonly(converted)
    with cmount.temp_mount(converted, mount_root) as path:
        yield path


def prepare_writable(
    snaps: Snapshots, key: str, parent: str, mount_root: str, labels: dict[str, str] | None = None
) -> list[Mount]:
    """A container's writable snapshot, with what dockerd's init layer holds (initlayer.py)."""
    mounts = snaps.prepare(key, parent, labels=labels)
    try:
        with mounted(mounts, mount_root) as path:
            initlayer.setup(path)
    except BaseException:
        with contextlib.suppress(ContainerdError):
            snaps.remove(key)
        raise
    return mounts


def clean_mount_root(mount_root: str) -> None:
    """Unmount what a pydockerd that died mid-copy left under MOUNT_ROOT."""
    for point in sorted(cmount.mount_points(mount_root), key=len, reverse=True):
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


def read_account_files(client: Client, key: str, top: str, mount_root: str) -> tuple[str, str]:
    """/etc/passwd and /etc/group of an image ("" when missing), read inside its root."""
    with image_root(client, key, top, mount_root) as root:
        return _account_texts(root)


def _account_texts(root: int) -> tuple[str, str]:
    texts = [scoped.read_file(root, p, 8 << 20) or b"" for p in ("/etc/passwd", "/etc/group")]
    return texts[0].decode(errors="replace"), texts[1].decode(errors="replace")


def lookup_user(user: str, passwd: str, groups: str) -> tuple[int, int]:
    """uid and gid of USER ("name", "uid", "name:group", ...) in a container's account files."""
    name, _, group = user.partition(":")
    uid = gid = None
    if name.isdigit():
        uid = int(name)
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and (parts[0] == name or (name.isdigit() and parts[2] == name)):
            uid, gid = int(parts[2]), int(parts[3])
            break
    if uid is None:
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next(
                (
                    int(p[2])
                    for p in (g.split(":") for g in groups.splitlines())
                    if len(p) >= 3 and p[0] == group
                ),
                None,
            )
            if gid is None:
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
    return uid, gid or 0


# --- the container's root for one operation ----------------------------------------------------


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
    out = []
    for spec in c.host_config.get("Binds") or []:
        parts = spec.split(":")
        if len(parts) >= 2:
            mode = parts[2].split(",") if len(parts) > 2 else []
            out.append(Bind(scoped.clean(parts[1]), parts[0], "ro" not in mode))
    return out


def _bind_at(binds: list[Bind], path: str) -> Bind | None:
    """The bind mount PATH lies in (the deepest one), if any."""
    found = None
    for b in binds:
        if path == b.destination or path.startswith(b.destination.rstrip("/") + "/"):
            if found is None or len(b.destination) > len(found.destination):
                found = b
    return found


class FilesystemService:
    def __init__(self, engine: ContainerEngine, images: ImageService, tmp_dir: str) -> None:
        import protos

        protos.load()
        from containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
        from containerd_api.types.task import task_pb2

        self.engine = engine
        self.images = images
        self.client = engine.client
        self.tmp_dir = tmp_dir
        self._tpb = tasks_pb2
        self._tasks = tasks_pb2_grpc.TasksStub(self.client.channel)
        self._alive = {task_pb2.CREATED, task_pb2.RUNNING, task_pb2.PAUSED, task_pb2.PAUSING}

    # --- the API's operations ---

    def stat(self, ref: str, path: str) -> dict[str, Any]:
        c = self.engine.get(ref)
        _check_path(path)
        with self._root(c) as view:
            info, parent, _ = self._target(view, ref, path)
            parent.close()
            return info

    def archive(self, ref: str, path: str) -> tuple[dict[str, Any], IO[bytes]]:
        """The path's stat and a tar of it (spooled, so no mount outlives the call)."""
        c = self.engine.get(ref)
        _check_path(path)
        out = tempfile.TemporaryFile(dir=self.tmp_dir)
        try:
            with self._root(c) as view:
                info, parent, name = self._target(view, ref, path)
                try:
                    writer = TarWriter(out, view.pseudo | view.dev)
                    writer.tree(parent.fd, name, _tar_root(path))
                    writer.close()
                finally:
                    parent.close()
        except BaseException:
            out.close()
            raise
        out.seek(0)
        self._event(c, "archive-path")
        return info, out

    def extract(
        self, ref: str, path: str, body: IO[bytes], *, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool
    ) -> None:
        c = self.engine.get(ref)
        _check_path(path)
        with self._root(c) as view:
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
                bind = _bind_at(view.binds, dest.path)
                if bind is not None and not bind.rw:
                    raise InvalidParameter("mounted volume is marked read-only")
                if bind is None and c.host_config.get("ReadonlyRootfs"):
                    raise InvalidParameter("container rootfs is marked read-only")
                owner = self._owner(view, c) if copy_uid_gid else None
                Extractor(
                    view.fd,
                    dest.path,
                    no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                    chown=owner,
                    skip_devices=view.pseudo,
                ).run(body)
        self._event(c, "extract-to-dir")

    def export(self, ref: str) -> IO[bytes]:
        """A tar of the container's filesystem (its snapshot, without mounts), spooled."""
        c = self.engine.get(ref)
        out = tempfile.TemporaryFile(dir=self.tmp_dir)
        try:
            with self._readonly_root(c) as root:
                writer = TarWriter(out)
                writer.contents(root)
                writer.close()
        except BaseException:
            out.close()
            raise
        out.seek(0)
        self._event(c, "export")
        return out

    def changes(self, ref: str) -> list[dict[str, Any]] | None:
        """Docker's changes: the snapshot's upper layer against the image (None when nothing changed)."""
        c = self.engine.get(ref)
        mounts = self._snapshot_mounts(c, prepare=False)
        if not mounts:
            return None
        m = cmount.Mount(mounts[0].type, mounts[0].source, mounts[0].target, list(mounts[0].options))
        if m.type == "overlay":
            upper, lowers = cmount.overlay_dirs(m)
        else:
            upper, lowers = m.source, []
        if not upper:
            return None
        upper_mount = [Mount("bind", upper, "", ["rbind", "ro"])]
        lower_mount = [Mount("overlay", "overlay", "", ["lowerdir=" + ":".join(lowers)])] if lowers else []
        root = self.engine.mount_root
        with mounted(upper_mount, root) as up, mounted(lower_mount, root, readonly=True) as low:
            up_fd = os.open(up, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            low_fd = os.open(low, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                found = _overlay_changes(up_fd, low_fd)
            finally:
                os.close(up_fd)
                os.close(low_fd)
        found = _without_init_layer(found)
        return [{"Path": p, "Kind": k} for p, k in found] or None

    # --- finding the target of a GET/HEAD ---

    def _target(self, view: RootView, ref: str, path: str) -> tuple[dict[str, Any], scoped.Resolved, str]:
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

    # --- roots ---

    @contextlib.contextmanager
    def _root(self, c: Container) -> Iterator[RootView]:
        guard = self.engine.rootfs_guard
        guard.acquire(c.id)
        held = True
        try:
            live = self._live_root(c)
            if live is not None:
                guard.release(c.id)  # the container's own mount: nothing of ours to protect
                held = False
                try:
                    yield live
                finally:
                    os.close(live.fd)
                return
            with self._mounted_root(c) as view:
                yield view
        finally:
            if held:
                guard.release(c.id)

    def _live_root(self, c: Container) -> RootView | None:
        """/proc/PID/root of the container's init, if its task is alive (checked again after the open)."""
        pid = self._task_pid(c)
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
        if self._task_pid(c) != pid:  # it exited meanwhile: the pid may be someone else's now
            os.close(fd)
            return None
        return RootView(fd, binds_of(c), pseudo, dev)

    def _task_pid(self, c: Container) -> int | None:
        try:
            resp = self.client.call(self._tasks.Get, self._tpb.GetRequest(container_id=c.id))
        except ContainerdError:
            return None
        process = resp.process
        return int(process.pid) if process.pid > 0 and process.status in self._alive else None

    @contextlib.contextmanager
    def _mounted_root(self, c: Container) -> Iterator[RootView]:
        """The stopped container's snapshot, read-write, with its bind mounts in place."""
        mounts = self._snapshot_mounts(c, prepare=True)
        with mounted(mounts or [], self.engine.mount_root) as path:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            binds = binds_of(c)
            done: list[int] = []
            try:
                for b in sorted(binds, key=lambda b: b.destination.count("/")):
                    point = self._bind_into(fd, b)
                    if point is not None:
                        done.append(point)
                pseudo, _ = scoped.pseudo_devices(mountinfo.read())  # a bind of the host's /proc, say
                yield RootView(fd, binds, pseudo)
            finally:
                os.close(fd)
                # Through the fds: a path string could have been sent elsewhere by a symlink meanwhile.
                for point in reversed(done):
                    try:
                        cmount.unmount(scoped.proc_fd(point))
                    finally:
                        os.close(point)

    def _bind_into(self, root: int, b: Bind) -> int | None:
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
                cmount.unmount(scoped.proc_fd(fd))
                os.close(fd)
                raise
        return fd

    def _snapshot_mounts(self, c: Container, *, prepare: bool) -> list[Mount] | None:
        snaps = Snapshots(self.client, "overlayfs")
        try:
            return snaps.mounts(c.id)
        except ContainerdNotFound:
            if not prepare:
                return None
        # Never started: make its RW layer now, as dockerd has it from create on.
        top = self.images.ensure_unpacked(self.images.resolve(c.image_id))
        try:
            return prepare_writable(snaps, c.id, top, self.engine.mount_root, labels={GC_ROOT: go_time(time.time_ns())})
        except AlreadyExists:
            return snaps.mounts(c.id)

    @contextlib.contextmanager
    def _readonly_root(self, c: Container) -> Iterator[int]:
        # A container that never started gets its writable layer now (dockerd has it, and its
        # init layer, from create on), so an export shows /.dockerenv and the mount points.
        with self.engine.rootfs_guard.hold(c.id):
            mounts = self._snapshot_mounts(c, prepare=True)
        assert mounts is not None
        with mounted(mounts, self.engine.mount_root, readonly=True) as path:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd
            finally:
                os.close(fd)

    def _owner(self, view: RootView, c: Container) -> tuple[int, int] | None:
        """copyUIDGID: the container's user, looked up in its own account files (None: keep the archive's)."""
        user = c.config.get("User") or ""
        if not user:
            with contextlib.suppress(Exception):
                user = (self.images.resolve(c.image_id).config.get("config") or {}).get("User") or ""
        if not user:
            return None
        name, _, group = user.partition(":")
        if name.isdigit() and (not group or group.isdigit()):
            return int(name), int(group or 0)
        passwd, groups = _account_texts(view.fd)
        return lookup_user(user, passwd, groups)

    def _event(self, c: Container, action: str) -> None:
        self.engine.publish("container", action, c.id, {"image": c.image_ref, "name": c.name})


# --- Docker's encodings --------------------------------------------------------------------------


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


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros dropped, as Go marshals a time.Time in UTC."""
    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return text + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


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


# --- changes -------------------------------------------------------------------------------------


def _overlay_changes(upper: int, lower: int) -> list[tuple[str, int]]:
    """What dockerd's (naive) diff of the container's filesystem against its image reports, found
    by walking only the upper layer, where every change is: whiteouts are deletions, an opaque
    directory deletes what the image had in it, entries are added or, if their stat differs
    from the image's, modified; a directory holding a change is modified too."""
    found: dict[str, int] = {}
    top = scoped.reopen_dir(upper)
    stack: list[tuple[int, str, Iterator[str]]] = [(top, "/", iter(sorted(os.listdir(top))))]
    try:
        while stack:
            dfd, dpath, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(stack.pop()[0])
                continue
            path = scoped.join(dpath, name)
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            before = _lower_stat(lower, path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # an overlay whiteout
                if before is not None:
                    found[path] = CHANGE_DELETE
                continue
            if before is None:
                found[path] = CHANGE_ADD
            elif _stat_different(before, st):
                found[path] = CHANGE_MODIFY
            if not stat.S_ISDIR(st.st_mode):
                continue
            sub = os.open(name, scoped.O_DIR, dir_fd=dfd)
            children = sorted(os.listdir(sub))
            if before is not None and stat.S_ISDIR(before.st_mode) and _opaque(sub):
                # Recreated after a delete: what the image had there and the upper lacks is gone.
                for gone in set(_lower_names(lower, path)) - set(children):
                    found[scoped.join(path, gone)] = CHANGE_DELETE
            stack.append((sub, path, iter(children)))
    finally:
        for dfd, _, _ in stack:
            os.close(dfd)
    for path in list(found):
        parent = posixpath.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = CHANGE_MODIFY
            parent = posixpath.dirname(parent)
    return sorted(found.items(), key=lambda item: item[0].split("/"))


def _lower_stat(lower: int, path: str) -> os.stat_result | None:
    try:
        with scoped.resolve(lower, path, follow=False) as r:
            return os.fstat(r.fd)
    except OSError:
        return None


def _lower_names(lower: int, path: str) -> list[str]:
    try:
        with scoped.resolve(lower, path) as r:
            fd = scoped.reopen_dir(r.fd)
            try:
                return os.listdir(fd)
            finally:
                os.close(fd)
    except OSError:
        return []


def _opaque(fd: int) -> bool:
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(fd, attr) == b"y":
                return True
        except OSError:
            continue
    return False


def _stat_different(a: os.stat_result, b: os.stat_result) -> bool:
    """dockerd's statDifferent: a directory's size and mtime are no measure of change."""
    if (a.st_mode, a.st_uid, a.st_gid, a.st_rdev) != (b.st_mode, b.st_uid, b.st_gid, b.st_rdev):
        return True
    if stat.S_ISDIR(a.st_mode):
        return False
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return a.st_size != b.st_size or sa != sb or not (na == nb or na == 0 or nb == 0)


def _without_init_layer(changes: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Leave out the runtime's mount points (dockerd keeps them in the init layer), and /etc when
    they were all that changed in it."""

    def init(path: str) -> bool:
        return any(
            path == p or (p in ("/dev", "/proc", "/sys") and path.startswith(p + "/")) for p in _INIT_LAYER
        )

    kept = [(p, k) for p, k in changes if not init(p)]
    return [(p, k) for p, k in kept if p != "/etc" or any(q.startswith("/etc/") for q, _ in kept)]
