"""The per-container state directory under --root, and the container's status.

Layout: ROOT/ID/state.json (written atomically) and ROOT/ID/exec.fifo, which exists
from `create` until `start` (its presence is what makes a live init "created").
"""

from __future__ import annotations

import os

from common import fastjson, schema
from common.procfs import process_start_time, process_state
from runtime.errors import PyruncError
from runtime.linux.log import rfc3339_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

OCI_VERSION = "1.2.0"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
# state.json's layout (common/schema.py): release 0.1.0's, without a "Version", is 1.
LAYOUT_VERSION = 1
MIGRATIONS: dict[int, Callable[[dict[str, Any]], None]] = {}
_ID_EXTRA_CHARS = set("+.-_")


class ContainerState:
    """What survives between pyrunc invocations; saved as ROOT/ID/state.json."""

    __slots__ = (
        "id", "bundle", "rootfs", "pid", "pid_start", "created", "config", "cgroup", "owner", "annotations",
        "rootfs_mount",
    )  # fmt: skip

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        pid: int,
        pid_start: int,
        created: str,
        config: dict[str, Any],
        cgroup: dict[str, Any],
        owner: str = "",
        annotations: dict[str, str] | None = None,
        rootfs_mount: int = 0,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.pid = pid
        self.pid_start = pid_start
        self.created = created
        self.config = config
        self.cgroup = cgroup
        self.owner = owner
        self.annotations = annotations or {}
        # Without a mount namespace of its own, the container's mounts are in the runtime's, all
        # below a bind of the rootfs: that bind's mount id, which delete detaches (0: nothing to do).
        self.rootfs_mount = rootfs_mount

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def directory(self, root: str) -> str:
        return os.path.join(root, self.id)

    def save(self, root: str) -> None:
        doc = schema.stamped(self.to_dict(), LAYOUT_VERSION)
        write_state_file(os.path.join(self.directory(root), STATE_FILE), fastjson.dumps(doc).encode())


now_rfc3339 = rfc3339_now


def write_state_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """state.json and pid files: replaced whole, since readers (containerd reads pid files, every
    verb reads state.json) must never see half of one; not synced to disk, as runc's are not: they
    describe processes, which a power loss ends, and pyrunc writes them on every create."""
    from common import atomicfile  # only the verbs that write state load it

    atomicfile.write_atomic(path, data, mode, durable=False)


def validate_id(container_id: str) -> None:
    if not container_id:
        raise PyruncError("container id cannot be empty")
    if not all(c.isalnum() or c in _ID_EXTRA_CHARS for c in container_id) or container_id in (".", ".."):
        raise PyruncError(f"invalid container id format: {container_id}")
    if len(container_id) > 1024:
        raise PyruncError("container id is too long")


def load(root: str, container_id: str) -> ContainerState:
    validate_id(container_id)
    path = os.path.join(root, container_id, STATE_FILE)
    try:
        # An older layout is read as this build's (and written in it at the next save); a newer
        # one or a damaged file is refused, naming the file, and left as it is.
        raw, _ = schema.load(path, fastjson.loads, LAYOUT_VERSION, MIGRATIONS)
    except FileNotFoundError:
        raise PyruncError(f"container {container_id} does not exist") from None
    except OSError as exc:
        raise PyruncError(
            f"container {container_id} has an unreadable state file {path}: {exc.strerror}"
        ) from None
    except schema.LayoutError as exc:
        raise PyruncError(f"container {container_id}: {exc}") from None
    del raw[schema.VERSION_KEY]
    try:
        return ContainerState(**raw)
    except TypeError as exc:
        raise PyruncError(f"container {container_id} has an invalid state file {path}: {exc}") from None


def list_ids(root: str) -> list[str]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [n for n in names if os.path.exists(os.path.join(root, n, STATE_FILE))]


def init_alive(cs: ContainerState) -> bool:
    """Alive means the same process (pid + start time) and not a zombie awaiting its reaper."""
    if cs.pid <= 0:
        return False
    if process_start_time(cs.pid) != cs.pid_start:
        return False
    return process_state(cs.pid) not in (None, "Z", "X")


def status(root: str, cs: ContainerState) -> str:
    if not init_alive(cs):
        return "stopped"
    if os.path.exists(os.path.join(root, cs.id, EXEC_FIFO)):
        return "created"
    from runtime.linux.cgroups import load_manager

    try:
        if load_manager(cs.cgroup).is_frozen():
            return "paused"
    except Exception:  # noqa: BLE001 - a vanished cgroup means not paused
        pass
    return "running"


def oci_state(root: str, cs: ContainerState, current: str | None = None) -> dict[str, Any]:
    """The JSON `state` prints (runc's shape) and hooks read on stdin."""
    current = current or status(root, cs)
    out: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "id": cs.id,
        "pid": cs.pid if current != "stopped" else 0,
        "status": current,
        "bundle": cs.bundle,
        "rootfs": cs.rootfs,
        "created": cs.created,
        "owner": cs.owner,
    }
    if cs.annotations:
        out["annotations"] = cs.annotations
    return out


def remove_dir(root: str, container_id: str) -> None:
    """The state directory holds only flat files (state.json, exec.fifo, temporaries)."""
    directory = os.path.join(root, container_id)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            import shutil

            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
