"""The plugin's view of pods and containers: in memory, rebuilt from what survives a restart.

What a sandbox or container *is* (its CRI config, names, paths) is stored with its containerd
container record as an extension (as containerd's CRI plugin does), so the metadata store is the
one truth and a record without it is not ours. What *happens* to it (pid, start and finish times,
exit code) is a small JSON file in the plugin's root, written atomically at each change.
Names are reserved per kind, as kubelet relies on: a second sandbox or container with the same
metadata is refused (as containerd: a plain error) until the first is removed.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

from common import atomicfile
from containerd.errors import ContainerdError, NotFound

SANDBOX_EXTENSION = "io.cri-containerd.sandbox.metadata"
CONTAINER_EXTENSION = "io.cri-containerd.container.metadata"
SANDBOX_TYPE = "pycontainerd.cri.v1.SandboxMetadata"
CONTAINER_TYPE = "pycontainerd.cri.v1.ContainerMetadata"
KIND_LABEL = "io.cri-containerd.kind"


def now_ns() -> int:
    return time.time_ns()


@dataclass
class SandboxMeta:
    id: str
    name: str
    config: bytes  # the PodSandboxConfig as kubelet sent it (serialized)
    netns: str = ""
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    runtime_handler: str = ""
    created_at: int = 0
    cgroup_parent: str = ""
    root: str = ""  # <cri root>/sandboxes/<id>: hosts, resolv.conf, hostname
    shm: str = ""  # the pod's /dev/shm (a tmpfs mounted there) when IPC is the pod's
    host_network: bool = False

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["config"] = base64.b64encode(self.config).decode()
        return json.dumps(doc).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SandboxMeta:
        doc = json.loads(data)
        doc["config"] = base64.b64decode(doc["config"])
        return cls(**doc)


@dataclass
class ContainerMeta:
    id: str
    name: str
    sandbox_id: str
    config: bytes  # the ContainerConfig (serialized)
    image_ref: str = ""  # the image id (config digest)
    image_name: str = ""
    log_path: str = ""
    created_at: int = 0
    stop_signal: str = ""

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["config"] = base64.b64encode(self.config).decode()
        return json.dumps(doc).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ContainerMeta:
        doc = json.loads(data)
        doc["config"] = base64.b64decode(doc["config"])
        return cls(**doc)


@dataclass
class Status:
    """A process's life: pid while it runs, times in ns since the epoch."""

    pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    removing: bool = False


M = TypeVar("M", SandboxMeta, ContainerMeta)


class Item(Generic[M]):
    """One sandbox or container: its metadata, its status (persisted), and an event for its exit."""

    def __init__(self, meta: M, status_path: str, status: Status | None = None) -> None:
        self.meta: M = meta
        self.status_path = status_path
        self.status = status or Status()
        self.lock = threading.RLock()
        self.exited = threading.Event()
        if self.status.finished_at:
            self.exited.set()

    def update(self, **changes: Any) -> None:
        with self.lock:
            for key, value in changes.items():
                setattr(self.status, key, value)
            if self.status.finished_at:
                self.exited.set()
            write_json(self.status_path, asdict(self.status))

    @staticmethod
    def load_status(path: str) -> Status | None:
        try:
            with open(path) as f:
                return Status(**json.load(f))
        except (FileNotFoundError, ValueError, TypeError):
            return None


class Store(Generic[M]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._lock = threading.Lock()
        self._items: dict[str, Item[M]] = {}
        self._names: dict[str, str] = {}

    def reserve(self, name: str, id_: str) -> None:
        with self._lock:
            owner = self._names.get(name)
            if owner is not None and owner != id_:
                # a plain error (UNKNOWN), as containerd's CRI answers it
                raise ContainerdError(
                    f'failed to reserve {self.kind} name "{name}": name "{name}" is reserved for "{owner}"'
                )
            self._names[name] = id_

    def release(self, name: str) -> None:
        with self._lock:
            self._names.pop(name, None)

    def add(self, item: Item[M]) -> None:
        with self._lock:
            self._items[item.meta.id] = item
            self._names[item.meta.name] = item.meta.id

    def remove(self, id_: str) -> None:
        with self._lock:
            item = self._items.pop(id_, None)
            if item is not None and self._names.get(item.meta.name) == id_:
                del self._names[item.meta.name]

    def get(self, id_: str) -> Item[M]:
        """By full id or a unique prefix of one (as containerd's truncindex)."""
        with self._lock:
            if id_ in self._items:
                return self._items[id_]
            found = [item for key, item in self._items.items() if id_ and key.startswith(id_)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFound(f"{self.kind} {id_!r}: ambiguous id prefix")
        raise NotFound(f"an error occurred when try to find {self.kind} {id_!r}: not found")

    def find(self, id_: str) -> Item[M] | None:
        try:
            return self.get(id_)
        except NotFound:
            return None

    def list(self) -> list[Item[M]]:
        with self._lock:
            return list(self._items.values())


def write_json(path: str, doc: Any) -> None:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    atomicfile.write_text(path, json.dumps(doc))
