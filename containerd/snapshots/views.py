"""Two ways to see the namespaced snapshotter without passing the namespace each time.

- `Namespaced(sn, ns)`: the brief's signatures exactly (prepare(key, parent, labels), ...),
  for code that serves one request in one namespace.
- `AllNamespaces(sn)`: walk() and remove() over every namespace at once, naming each
  snapshot "<namespace>/<key>" (a namespace name never holds "/"), which is the shape
  garbage collection's SnapshotterLike wants; pair it with `flat_name` as its namer.
"""

from __future__ import annotations

from collections.abc import Iterator

from containerd.errors import InvalidArgument
from containerd.snapshots.mount import Mount
from containerd.snapshots.overlay import OverlaySnapshotter
from containerd.snapshots.types import SnapshotInfo, Usage


class Namespaced:
    def __init__(self, snapshotter: OverlaySnapshotter, namespace: str) -> None:
        self.snapshotter = snapshotter
        self.namespace = namespace

    def prepare(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self.snapshotter.prepare(self.namespace, key, parent, labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self.snapshotter.view(self.namespace, key, parent, labels)

    def mounts(self, key: str) -> list[Mount]:
        return self.snapshotter.mounts(self.namespace, key)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        self.snapshotter.commit(self.namespace, name, key, labels)

    def remove(self, key: str) -> None:
        self.snapshotter.remove(self.namespace, key)

    def stat(self, key: str) -> SnapshotInfo:
        return self.snapshotter.stat(self.namespace, key)

    def update(self, info: SnapshotInfo, fieldpaths: list[str] | None = None) -> SnapshotInfo:
        return self.snapshotter.update(self.namespace, info, fieldpaths)

    def usage(self, key: str) -> Usage:
        return self.snapshotter.usage(self.namespace, key)

    def walk(self) -> Iterator[SnapshotInfo]:
        return self.snapshotter.walk(self.namespace)


def flat_name(namespace: str, snapshotter: str, key: str) -> str:
    """The name AllNamespaces gives KEY of NAMESPACE (the SNAPSHOTTER's name does not matter)."""
    return f"{namespace}/{key}"


class AllNamespaces:
    def __init__(self, snapshotter: OverlaySnapshotter) -> None:
        self.snapshotter = snapshotter

    def walk(self) -> Iterator[SnapshotInfo]:
        for ns in self.snapshotter.namespaces():
            for info in self.snapshotter.walk(ns):
                parent = f"{ns}/{info.parent}" if info.parent else ""
                yield SnapshotInfo(
                    f"{ns}/{info.name}", parent, info.kind, info.labels, info.created_at, info.updated_at
                )

    def remove(self, key: str) -> None:
        ns, sep, name = key.partition("/")
        if not sep or not ns or not name:
            raise InvalidArgument(f"snapshot {key!r}: expected <namespace>/<key>")
        self.snapshotter.remove(ns, name)
