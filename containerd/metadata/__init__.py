"""Metadata DB (SQLite, namespaced like containerd's bolt store) and the namespaced content view."""

from containerd.metadata.db import MetadataDB, Transaction
from containerd.metadata.nscontent import NamespacedContent, NamespacedWriter
from containerd.metadata.records import (
    AnyProto,
    Container,
    Descriptor,
    Image,
    Lease,
    LeaseResource,
    Namespace,
    Runtime,
    SnapshotRecord,
)

__all__ = [
    "AnyProto",
    "Container",
    "Descriptor",
    "Image",
    "Lease",
    "LeaseResource",
    "MetadataDB",
    "Namespace",
    "NamespacedContent",
    "NamespacedWriter",
    "Runtime",
    "SnapshotRecord",
    "Transaction",
]
