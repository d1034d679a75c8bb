"""What every namespaced store shares: the open transaction and its namespace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from containerd.metadata.validate import dump_labels, validate_identifier

if TYPE_CHECKING:
    from containerd.metadata.db import Transaction


class NamespacedStore:
    def __init__(self, tx: Transaction, namespace: str) -> None:
        self.tx = tx
        self.conn = tx.conn
        self.namespace = validate_identifier("namespace", namespace)

    def ensure_namespace(self) -> None:
        """Creating anything in a namespace creates the namespace, as in containerd."""
        now = self.tx.now()
        self.conn.execute(
            "INSERT OR IGNORE INTO namespaces (name, labels, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (self.namespace, dump_labels({}), now, now),
        )
