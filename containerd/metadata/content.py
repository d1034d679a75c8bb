"""Per-namespace content records: which namespace has which blob, with its labels.

The blob itself lives once in the ContentStore; see nscontent.py for the namespaced
view the content service uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from containerd import filters
from containerd.content.digest import validate_digest
from containerd.content.store import ContentInfo
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.base import NamespacedStore
from containerd.metadata.validate import dump_labels, load_labels, update_mapping, validate_labels


def content_fields(info: ContentInfo) -> Callable[[Sequence[str]], str | None]:
    """Filter adaptor: digest, size, labels.<key>."""

    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        if path[0] == "digest":
            return info.digest
        if path[0] == "size":
            return str(info.size)
        if path[0] == "labels":
            return filters.map_field(info.labels, path[1:])
        return None

    return field


class ContentRecords(NamespacedStore):
    def add(self, digest: str, size: int, labels: Mapping[str, str] | None = None) -> ContentInfo:
        validate_digest(digest)
        clean = validate_labels(labels or {})
        self.ensure_namespace()
        now = self.tx.now()
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO content (namespace, digest, size, labels, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.namespace, digest, size, dump_labels(clean), now, now),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"content {digest}: already exists")
        return ContentInfo(digest, size, now, now, clean)

    def has(self, digest: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM content WHERE namespace = ? AND digest = ?", (self.namespace, digest)
        ).fetchone()
        return row is not None

    def get(self, digest: str) -> ContentInfo:
        validate_digest(digest)
        row = self.conn.execute(
            "SELECT digest, size, created_at, updated_at, labels FROM content WHERE namespace = ? AND digest = ?",
            (self.namespace, digest),
        ).fetchone()
        if row is None:
            raise NotFound(f"content {digest}: not found")
        return _info(row)

    def list(self, filter_strings: Iterable[str] = ()) -> list[ContentInfo]:
        matcher = filters.parse_all(filter_strings)
        rows = self.conn.execute(
            "SELECT digest, size, created_at, updated_at, labels FROM content WHERE namespace = ? ORDER BY digest",
            (self.namespace,),
        ).fetchall()
        found = [_info(row) for row in rows]
        return [i for i in found if matcher.match(content_fields(i))]

    def update(self, info: ContentInfo, fieldpaths: Sequence[str] = ()) -> ContentInfo:
        """Only labels change: no field paths (or `labels`) replaces them, `labels.<key>` sets one."""
        current = self.get(info.digest)
        labels, others = update_mapping(current.labels, info.labels, fieldpaths or ["labels"], "labels")
        if others:
            raise InvalidArgument(f"cannot update {others[0]!r} field on content {info.digest}")
        labels = validate_labels(labels)
        now = self.tx.now()
        self.conn.execute(
            "UPDATE content SET labels = ?, updated_at = ? WHERE namespace = ? AND digest = ?",
            (dump_labels(labels), now, self.namespace, info.digest),
        )
        return ContentInfo(current.digest, current.size, current.created_at, now, labels)

    def remove(self, digest: str) -> None:
        validate_digest(digest)
        cur = self.conn.execute(
            "DELETE FROM content WHERE namespace = ? AND digest = ?", (self.namespace, digest)
        )
        if cur.rowcount == 0:
            raise NotFound(f"content {digest}: not found")


def _info(row: Any) -> ContentInfo:
    digest, size, created, updated, labels = row
    return ContentInfo(digest, size, created, updated, load_labels(labels))
