"""Leases: named holds on content, ingests and snapshots that garbage collection respects.

Labels with meaning to the collector (containerd's): `containerd.io/gc.expire` (RFC 3339
time after which the lease no longer protects anything and is removed) and
`containerd.io/gc.flat` (protect only the resources themselves, not what they reference).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from containerd import filters
from containerd.content.digest import validate_digest
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.base import NamespacedStore
from containerd.metadata.records import Lease, LeaseResource
from containerd.metadata.validate import dump_labels, load_labels, validate_labels

SNAPSHOTS_PREFIX = "snapshots/"


def lease_fields(lease: Lease) -> Callable[[Sequence[str]], str | None]:
    """Filter adaptor: id, labels.<key>."""

    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "id":
            return lease.id or None
        if path[0] == "labels":
            return filters.map_field(lease.labels, path[1:])
        return None

    return field


def validate_resource(resource: LeaseResource) -> LeaseResource:
    if resource.type == "content":
        validate_digest(resource.id)
    elif resource.type == "ingests" or (
        resource.type.startswith(SNAPSHOTS_PREFIX) and len(resource.type) > len(SNAPSHOTS_PREFIX)
    ):
        if not resource.id:
            raise InvalidArgument(f"lease resource of type {resource.type} needs an id")
    else:
        raise InvalidArgument(
            f"unsupported lease resource type {resource.type!r} (content, ingests or snapshots/<snapshotter>)"
        )
    return resource


class LeaseStore(NamespacedStore):
    def create(self, lease_id: str, labels: Mapping[str, str] | None = None) -> Lease:
        _validate_lease_id(lease_id)
        clean = validate_labels(labels or {})
        self.ensure_namespace()
        lease = Lease(lease_id, clean, self.tx.now())
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO leases (namespace, id, labels, created_at) VALUES (?, ?, ?, ?)",
            (self.namespace, lease.id, dump_labels(lease.labels), lease.created_at),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"lease {lease_id}: already exists")
        return lease

    def get(self, lease_id: str) -> Lease:
        row = self.conn.execute(
            "SELECT id, labels, created_at FROM leases WHERE namespace = ? AND id = ?",
            (self.namespace, lease_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"lease {lease_id}: not found")
        return _lease(row)

    def exists(self, lease_id: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM leases WHERE namespace = ? AND id = ?", (self.namespace, lease_id)
        ).fetchone()
        return row is not None

    def list(self, filter_strings: Iterable[str] = ()) -> list[Lease]:
        matcher = filters.parse_all(filter_strings)
        rows = self.conn.execute(
            "SELECT id, labels, created_at FROM leases WHERE namespace = ? ORDER BY id", (self.namespace,)
        ).fetchall()
        found = [_lease(row) for row in rows]
        return [lease for lease in found if matcher.match(lease_fields(lease))]

    def delete(self, lease_id: str) -> None:
        cur = self.conn.execute(
            "DELETE FROM leases WHERE namespace = ? AND id = ?", (self.namespace, lease_id)
        )
        if cur.rowcount == 0:
            raise NotFound(f"lease {lease_id}: not found")

    def add_resource(self, lease_id: str, resource: LeaseResource) -> None:
        validate_resource(resource)
        self.get(lease_id)
        self.conn.execute(
            "INSERT OR IGNORE INTO lease_resources (namespace, lease, type, id) VALUES (?, ?, ?, ?)",
            (self.namespace, lease_id, resource.type, resource.id),
        )

    def delete_resource(self, lease_id: str, resource: LeaseResource) -> None:
        """Drop a resource from a lease (a resource the lease does not hold is no error)."""
        self.get(lease_id)
        self.conn.execute(
            "DELETE FROM lease_resources WHERE namespace = ? AND lease = ? AND type = ? AND id = ?",
            (self.namespace, lease_id, resource.type, resource.id),
        )

    def list_resources(self, lease_id: str) -> builtins.list[LeaseResource]:
        self.get(lease_id)
        rows = self.conn.execute(
            "SELECT id, type FROM lease_resources WHERE namespace = ? AND lease = ? ORDER BY type, id",
            (self.namespace, lease_id),
        ).fetchall()
        return [LeaseResource(rid, rtype) for rid, rtype in rows]


def _lease(row: Any) -> Lease:
    lease_id, labels, created = row
    return Lease(lease_id, load_labels(labels), created)


def _validate_lease_id(lease_id: str) -> None:
    """Lease ids are not identifiers: containerd's clients make them from a time and URL-safe
    base64 (e.g. "47472413-_I3M"), so only emptiness, length and control characters are refused."""
    if not lease_id:
        raise InvalidArgument("lease id must not be empty")
    if len(lease_id) > 256 or any(ord(c) < 0x20 or c == "/" for c in lease_id):
        raise InvalidArgument(f"invalid lease id {lease_id!r}")
