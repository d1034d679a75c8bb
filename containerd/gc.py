"""Garbage collection: mark from the roots, sweep content and snapshots nothing reaches.

Roots (per namespace, as containerd's collector has them):
  - images: their target digest, and their gc.ref labels;
  - containers: their snapshot (snapshotter + snapshot key), and their gc.ref labels;
  - leases, unless expired (`containerd.io/gc.expire`, RFC 3339): every content, ingest
    and snapshot resource they hold (a `containerd.io/gc.flat` lease holds only those,
    not what they reference);
  - content records and snapshots labelled `containerd.io/gc.root`.
References followed from a marked object:
  - labels `containerd.io/gc.ref.content[.<anything>]` = digest (containerd's unpacker
    labels an index with its manifests, a manifest with its config and layers this way);
  - labels `containerd.io/gc.ref.snapshot.<snapshotter>[/<anything>]` = snapshot key
    (how an image config names its unpacked chain);
  - a snapshot's parent.
Swept: expired leases, unmarked content records (per namespace), blobs no marked record
or reference names, unmarked snapshots (children before parents), and ingests that no
lease holds, no live writer holds, and that have been idle longer than `ingest_grace_ns`.

Snapshots are reached through the SnapshotterLike protocol (walk + remove), so this
module knows no snapshotter. A namespace's snapshot key is resolved to the snapshotter's
own name through the DB's snapshot records when there is one (`backend_key`), else it is
the key itself; `snapshot_name` overrides that for a snapshotter that namespaces itself.

Collection runs inside one metadata transaction, so it is serialized with every other
metadata change (a content commit records its blob under the same lock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from containerd.content.digest import is_digest
from containerd.content.store import ContentStore
from containerd.errors import ContainerdError
from containerd.metadata.db import MetadataDB, Transaction
from containerd.metadata.leases import SNAPSHOTS_PREFIX
from containerd.metadata.nscontent import backend_ref
from containerd.metadata.validate import load_labels

LABEL_ROOT = "containerd.io/gc.root"
LABEL_REF_CONTENT = "containerd.io/gc.ref.content"
LABEL_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot."
LABEL_EXPIRE = "containerd.io/gc.expire"
LABEL_FLAT = "containerd.io/gc.flat"

DEFAULT_INGEST_GRACE_NS = 3600 * 10**9


class SnapshotLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def parent(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...


class SnapshotterLike(Protocol):
    def walk(self) -> Iterable[SnapshotLike]: ...

    def remove(self, key: str) -> None: ...


# (namespace, snapshotter, key) -> the snapshotter's name for the snapshot
SnapshotNamer = Callable[[str, str, str], str]
# (snapshotter, name) -> the namespace owning that snapshot, None when unknown
SnapshotOwner = Callable[[str, str], str | None]


def prefix_namer(namespace: str, snapshotter: str, key: str) -> str:
    """Names of the form "<namespace>/<key>" (what a namespaced snapshotter's all-namespace
    view yields; namespaces never contain "/")."""
    return f"{namespace}/{key}"


def prefix_owner(snapshotter: str, name: str) -> str | None:
    """The inverse of prefix_namer."""
    namespace, sep, key = name.partition("/")
    return namespace if sep and namespace and key else None


@dataclass
class GCResult:
    dry_run: bool
    content: list[str] = field(default_factory=list)  # blobs removed from the store
    content_records: list[tuple[str, str]] = field(default_factory=list)  # (namespace, digest)
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (snapshotter, name)
    snapshot_records: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (namespace, snapshotter, key)
    ingests: list[str] = field(default_factory=list)  # content store refs
    leases: list[tuple[str, str]] = field(default_factory=list)  # expired (namespace, id)
    errors: list[str] = field(default_factory=list)  # removals that failed; retried next time

    @property
    def removed_anything(self) -> bool:
        return bool(self.content or self.content_records or self.snapshots or self.ingests or self.leases)


def references(labels: Mapping[str, str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The content digests and (snapshotter, key) pairs that gc.ref labels name."""
    digests: list[str] = []
    snapshots: list[tuple[str, str]] = []
    for key, value in labels.items():
        if key == LABEL_REF_CONTENT or key.startswith(LABEL_REF_CONTENT + "."):
            if is_digest(value):
                digests.append(value)
        elif key.startswith(LABEL_REF_SNAPSHOT):
            snapshotter = key[len(LABEL_REF_SNAPSHOT) :].split("/", 1)[0]
            if snapshotter and value:
                snapshots.append((snapshotter, value))
    return digests, snapshots


def lease_expired(labels: Mapping[str, str], now_ns: int) -> bool:
    value = labels.get(LABEL_EXPIRE)
    if not value:
        return False
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return False  # containerd ignores an unreadable expiry and keeps the lease
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when_ns = (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    return when_ns < now_ns


# A node of the reference graph: ("content", namespace or None for any, digest)
# or ("snapshot", snapshotter, name).
_Node = tuple[str, str | None, str]


class _Graph:
    """Everything the mark phase needs, read once inside the transaction."""

    def __init__(
        self,
        tx: Transaction,
        store: ContentStore,
        snapshotters: Mapping[str, SnapshotterLike],
        namer: SnapshotNamer | None,
        owner: SnapshotOwner | None,
    ) -> None:
        conn = tx.conn
        self.store = store
        self.content: dict[tuple[str, str], dict[str, str]] = {
            (ns, d): load_labels(labels)
            for ns, d, labels in conn.execute("SELECT namespace, digest, labels FROM content")
        }
        self.namespaces_of: dict[str, list[str]] = {}
        for ns, d in self.content:
            self.namespaces_of.setdefault(d, []).append(ns)
        # DB snapshot records: (ns, snapshotter, key) -> (name in snapshotter, labels)
        self.snapshot_records: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = {}
        self.owner_of: dict[tuple[str, str], str] = {}
        self.record_labels: dict[tuple[str, str], dict[str, str]] = {}
        for ns, sn, key, bkey, labels in conn.execute(
            "SELECT namespace, snapshotter, key, backend_key, labels FROM snapshots"
        ):
            name = bkey or key
            self.snapshot_records[(ns, sn, key)] = (name, load_labels(labels))
            self.owner_of[(sn, name)] = ns
            self.record_labels.setdefault((sn, name), {}).update(load_labels(labels))
        self.snapshots: dict[str, dict[str, SnapshotLike]] = {
            sn: {info.name: info for info in snapshotter.walk()} for sn, snapshotter in snapshotters.items()
        }
        self.namer = namer
        self.owner = owner

    def snapshot_name(self, namespace: str | None, snapshotter: str, key: str) -> str:
        if namespace is None:
            return key
        if self.namer is not None:
            return self.namer(namespace, snapshotter, key)
        record = self.snapshot_records.get((namespace, snapshotter, key))
        return record[0] if record else key

    def owner_namespace(self, snapshotter: str, name: str) -> str | None:
        owner = self.owner_of.get((snapshotter, name))
        if owner is None and self.owner is not None:
            owner = self.owner(snapshotter, name)
        return owner

    def snapshot_labels(self, snapshotter: str, name: str) -> dict[str, str]:
        labels: dict[str, str] = {}
        info = self.snapshots.get(snapshotter, {}).get(name)
        if info is not None:
            labels.update(info.labels)
        labels.update(self.record_labels.get((snapshotter, name), {}))
        return labels

    def label_edges(self, namespace: str | None, labels: Mapping[str, str]) -> list[_Node]:
        digests, snaps = references(labels)
        edges: list[_Node] = [("content", namespace, d) for d in digests]
        edges += [("snapshot", sn, self.snapshot_name(namespace, sn, key)) for sn, key in snaps]
        return edges

    def edges(self, node: _Node, flat: bool) -> list[_Node]:
        kind, scope, key = node
        if kind == "content":
            if flat:
                return []
            namespaces = [scope] if scope is not None else self.namespaces_of.get(key, [])
            out: list[_Node] = []
            for ns in namespaces:
                labels = self.content.get((ns, key))
                if labels is not None:
                    out += self.label_edges(ns, labels)
            return out
        assert scope is not None
        info = self.snapshots.get(scope, {}).get(key)
        if info is None:
            return []  # a reference to a snapshot that does not exist
        out = [("snapshot", scope, info.parent)] if info.parent else []
        if not flat:
            out += self.label_edges(self.owner_namespace(scope, key), self.snapshot_labels(scope, key))
        return out


def collect(
    db: MetadataDB,
    content_store: ContentStore,
    snapshotters: Mapping[str, SnapshotterLike] | None = None,
    *,
    dry_run: bool = False,
    now_ns: int | None = None,
    ingest_grace_ns: int = DEFAULT_INGEST_GRACE_NS,
    snapshot_name: SnapshotNamer | None = None,
    snapshot_owner: SnapshotOwner | None = None,
) -> GCResult:
    """Collect garbage; with dry_run, report what would go and touch nothing.

    `snapshot_name`/`snapshot_owner` translate between a namespace's snapshot keys and
    the names the snapshotters' walk() yields (e.g. prefix_namer/prefix_owner); without
    them the DB's snapshot records translate, else names are the keys themselves.
    """
    now = time.time_ns() if now_ns is None else now_ns
    snapshotters = snapshotters or {}
    result = GCResult(dry_run)
    with db.transaction() as tx:
        graph = _Graph(tx, content_store, snapshotters, snapshot_name, snapshot_owner)
        roots, flat_roots, kept_ingests, expired = _roots(tx, graph, content_store, now)
        result.leases = expired
        marked = _mark(graph, roots, flat_roots)
        marked_digests = {key for kind, _scope, key in marked if kind == "content"}

        result.content_records = sorted(
            (ns, d)
            for ns, d in graph.content
            if ("content", ns, d) not in marked and ("content", None, d) not in marked
        )
        doomed_snapshots = {
            sn: [name for name in names if ("snapshot", sn, name) not in marked]
            for sn, names in graph.snapshots.items()
        }
        blobs = [info.digest for info in content_store.walk() if info.digest not in marked_digests]
        ingests = [
            s.ref
            for s in content_store.list_statuses()
            if s.ref not in kept_ingests
            and now - s.updated_at > ingest_grace_ns
            and not content_store.ingest_locked(s.ref)
        ]

        if dry_run:
            result.snapshots = [
                (sn, name) for sn, names in doomed_snapshots.items() for name in sorted(names)
            ]
            result.snapshot_records = _records_of(graph, set(result.snapshots), marked)
            result.content = blobs
            result.ingests = ingests
            return result

        for ns, lease_id in expired:
            tx.conn.execute("DELETE FROM leases WHERE namespace = ? AND id = ?", (ns, lease_id))
        for ns, d in result.content_records:
            tx.conn.execute("DELETE FROM content WHERE namespace = ? AND digest = ?", (ns, d))
        for sn, names in doomed_snapshots.items():
            _remove_snapshots(snapshotters[sn], sn, graph.snapshots[sn], names, result)
        result.snapshot_records = _records_of(graph, set(result.snapshots), marked)
        for ns, sn, key in result.snapshot_records:
            tx.conn.execute(
                "DELETE FROM snapshots WHERE namespace = ? AND snapshotter = ? AND key = ?", (ns, sn, key)
            )
        for digest in blobs:
            try:
                content_store.delete(digest)
                result.content.append(digest)
            except (ContainerdError, OSError) as e:
                result.errors.append(f"content {digest}: {e}")
        for ref in ingests:
            try:
                content_store.abort(ref)
                result.ingests.append(ref)
            except (ContainerdError, OSError) as e:
                result.errors.append(f"ingest {ref}: {e}")
    return result


def _roots(
    tx: Transaction, graph: _Graph, store: ContentStore, now: int
) -> tuple[list[_Node], list[_Node], set[str], list[tuple[str, str]]]:
    conn = tx.conn
    roots: list[_Node] = []
    flat: list[_Node] = []
    kept_ingests: set[str] = set()
    expired: list[tuple[str, str]] = []

    for ns, digest, labels in conn.execute("SELECT namespace, digest, labels FROM images"):
        roots.append(("content", ns, digest))
        roots += graph.label_edges(ns, load_labels(labels))
    for ns, sn, key, labels in conn.execute(
        "SELECT namespace, snapshotter, snapshot_key, labels FROM containers"
    ):
        if sn and key:
            roots.append(("snapshot", sn, graph.snapshot_name(ns, sn, key)))
        roots += graph.label_edges(ns, load_labels(labels))
    for (ns, digest), labels in graph.content.items():
        if LABEL_ROOT in labels:
            roots.append(("content", ns, digest))
    for sn, infos in graph.snapshots.items():
        for name in infos:
            if LABEL_ROOT in graph.snapshot_labels(sn, name):
                roots.append(("snapshot", sn, name))

    for ns, lease_id, text in conn.execute("SELECT namespace, id, labels FROM leases"):
        labels = load_labels(text)
        if lease_expired(labels, now):
            expired.append((ns, lease_id))
            continue
        target = flat if LABEL_FLAT in labels else roots
        for rtype, rid in conn.execute(
            "SELECT type, id FROM lease_resources WHERE namespace = ? AND lease = ?", (ns, lease_id)
        ):
            if rtype == "content":
                target.append(("content", ns, rid))
            elif rtype == "ingests":
                refs = [backend_ref(ns, rid)]
                if rid.startswith(backend_ref(ns, "")):
                    refs.append(rid)  # recorded as the store's own ref already: keep that too
                for ref in refs:
                    kept_ingests.add(ref)
                    try:
                        expected = store.status(ref).expected
                    except ContainerdError:
                        continue
                    if expected:
                        target.append(("content", ns, expected))
            elif rtype.startswith(SNAPSHOTS_PREFIX):
                sn = rtype[len(SNAPSHOTS_PREFIX) :]
                target.append(("snapshot", sn, graph.snapshot_name(ns, sn, rid)))
    return roots, flat, kept_ingests, expired


def _mark(graph: _Graph, roots: list[_Node], flat_roots: list[_Node]) -> set[_Node]:
    marked: set[_Node] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node in marked:
            continue
        marked.add(node)
        stack.extend(graph.edges(node, flat=False))
    # Flat nodes keep themselves (and a snapshot its parents) but reach nothing else.
    stack = list(flat_roots)
    while stack:
        node = stack.pop()
        if node in marked:
            continue
        marked.add(node)
        stack.extend(graph.edges(node, flat=True))
    return marked


def _remove_snapshots(
    snapshotter: SnapshotterLike,
    sn: str,
    infos: Mapping[str, SnapshotLike],
    names: list[str],
    result: GCResult,
) -> None:
    """Remove children before parents. Marking keeps every ancestor of a kept snapshot,
    so all descendants of an unmarked snapshot are unmarked too."""

    def depth(name: str) -> int:
        d, seen = 0, set()
        while name in infos and infos[name].parent and name not in seen:
            seen.add(name)
            name = infos[name].parent
            d += 1
        return d

    failed: set[str] = set()
    for name in sorted(names, key=lambda n: (-depth(n), n)):
        if any(infos[child].parent == name for child in failed if child in infos):
            failed.add(name)  # its child is still there: removing it cannot work
            continue
        try:
            snapshotter.remove(name)
            result.snapshots.append((sn, name))
        except (ContainerdError, OSError) as e:
            failed.add(name)
            result.errors.append(f"snapshot {name} ({sn}): {e}")


def _records_of(
    graph: _Graph, removed: set[tuple[str, str]], marked: set[_Node]
) -> list[tuple[str, str, str]]:
    """DB snapshot records whose snapshot went, or that point at nothing and nothing needs."""
    out = []
    for (ns, sn, key), (name, _labels) in sorted(graph.snapshot_records.items()):
        gone = (sn, name) in removed
        dangling = (
            sn in graph.snapshots and name not in graph.snapshots[sn] and ("snapshot", sn, name) not in marked
        )
        if gone or dangling:
            out.append((ns, sn, key))
    return out
