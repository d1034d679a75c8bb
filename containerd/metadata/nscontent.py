"""The content store as one namespace sees it (what containerd's metadata layer does).

Blobs live once in the ContentStore; a namespace "has" a blob when it has a content
record (with its own labels). Ingest refs are namespaced by prefixing the namespace
(`<ns>/<ref>`; namespaces cannot contain "/"), so two namespaces never share an ingest.

Sharing: a writer that names an `expected` digest the store already holds (with the
same size, when one is given) records the blob in this namespace at once and raises
AlreadyExists, so clients skip the upload, as containerd's shared-content policy does.

Leases: a writer opened with `lease=` adds its ingest to the lease, and its commit adds
the blob (and drops the ingest); the collector spares both while the lease lives.
Delete removes only the record; the blob goes at the next garbage collection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from containerd import filters
from containerd.content.digest import validate_digest
from containerd.content.store import ContentInfo, ContentStore, ContentWriter, IngestStatus
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.db import MetadataDB
from containerd.metadata.records import LeaseResource
from containerd.metadata.validate import validate_identifier, validate_labels


def backend_ref(namespace: str, ref: str) -> str:
    return f"{namespace}/{ref}"


def split_backend_ref(ref: str) -> tuple[str, str] | None:
    """(namespace, ref) of an ingest written through a NamespacedContent, else None."""
    namespace, sep, rest = ref.partition("/")
    return (namespace, rest) if sep and namespace and rest else None


class NamespacedContent:
    def __init__(self, db: MetadataDB, store: ContentStore, namespace: str) -> None:
        self.db = db
        self.store = store
        self.namespace = validate_identifier("namespace", namespace)

    def info(self, digest: str) -> ContentInfo:
        with self.db.transaction() as tx:
            return tx.content(self.namespace).get(digest)

    def update(self, info: ContentInfo, fieldpaths: Sequence[str] = ()) -> ContentInfo:
        with self.db.transaction() as tx:
            return tx.content(self.namespace).update(info, fieldpaths)

    def walk(self, filter_strings: Iterable[str] = ()) -> list[ContentInfo]:
        with self.db.transaction() as tx:
            return tx.content(self.namespace).list(filter_strings)

    def delete(self, digest: str) -> None:
        with self.db.transaction() as tx:
            tx.content(self.namespace).remove(digest)

    def read(self, digest: str, offset: int = 0, size: int = -1) -> Iterator[bytes]:
        self.info(digest)  # NotFound unless this namespace has it
        return self.store.read(digest, offset, size)

    def writer(self, ref: str, total: int = 0, expected: str = "", lease: str = "") -> NamespacedWriter:
        if not ref:
            raise InvalidArgument("ref must not be empty")
        if expected:
            validate_digest(expected)
            shared = False
            with self.db.transaction() as tx:
                records = tx.content(self.namespace)
                if records.has(expected):
                    raise AlreadyExists(f"content {expected}: already exists")
                if lease:
                    tx.leases(self.namespace).get(lease)
                if self.store.exists(expected):
                    size = self.store.info(expected).size
                    if total and total != size:
                        raise InvalidArgument(f"content {expected} has {size} bytes, not {total}")
                    records.add(expected, size)
                    if lease:
                        tx.leases(self.namespace).add_resource(lease, LeaseResource(expected, "content"))
                    shared = True
            if shared:  # raised after the transaction so that the record stays
                raise AlreadyExists(f"content {expected}: already exists")
        if lease:
            with self.db.transaction() as tx:
                tx.leases(self.namespace).add_resource(lease, LeaseResource(ref, "ingests"))
        inner = self.store.writer(backend_ref(self.namespace, ref), total, expected)
        return NamespacedWriter(self, inner, ref, lease)

    def status(self, ref: str) -> IngestStatus:
        try:
            return self._unprefixed(self.store.status(backend_ref(self.namespace, ref)))
        except NotFound:
            raise NotFound(f"ingest {ref}: not found") from None

    def list_statuses(self, filter_strings: Iterable[str] = ()) -> list[IngestStatus]:
        matcher = filters.parse_all(filter_strings)
        prefix = backend_ref(self.namespace, "")
        found = [self._unprefixed(s) for s in self.store.list_statuses() if s.ref.startswith(prefix)]
        return [s for s in found if matcher.match(_status_fields(s))]

    def abort(self, ref: str) -> None:
        try:
            self.store.abort(backend_ref(self.namespace, ref))
        except NotFound:
            raise NotFound(f"ingest {ref}: not found") from None

    def _unprefixed(self, status: IngestStatus) -> IngestStatus:
        ref = status.ref[len(self.namespace) + 1 :]
        return IngestStatus(
            ref, status.offset, status.total, status.expected, status.started_at, status.updated_at
        )


class NamespacedWriter:
    """A ContentWriter whose commit also records the blob in the namespace (and lease)."""

    def __init__(self, owner: NamespacedContent, inner: ContentWriter, ref: str, lease: str) -> None:
        self._owner = owner
        self._inner = inner
        self.ref = ref
        self.lease = lease

    def __enter__(self) -> NamespacedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def offset(self) -> int:
        return self._inner.offset

    @property
    def total(self) -> int:
        return self._inner.total

    @property
    def expected(self) -> str:
        return self._inner.expected

    @property
    def closed(self) -> bool:
        return self._inner.closed

    def write(self, data: bytes, offset: int | None = None) -> int:
        return self._inner.write(data, offset)

    def truncate(self, size: int) -> None:
        self._inner.truncate(size)

    def digest(self) -> str:
        return self._inner.digest()

    def status(self) -> IngestStatus:
        s = self._inner.status()
        return IngestStatus(self.ref, s.offset, s.total, s.expected, s.started_at, s.updated_at)

    def commit(self, size: int = 0, expected: str = "", labels: Mapping[str, str] | None = None) -> str:
        """Verify and store the blob, then record it in the namespace with `labels`.

        Verification failures discard the ingest (see ContentWriter.commit). A blob the
        store already had is recorded here all the same; AlreadyExists only when this
        namespace already had it.
        """
        clean = validate_labels(labels or {})
        owner = self._owner
        # One transaction around the move into blobs/ and the record: the collector takes
        # the same lock, so it never sees a blob that is committed but not yet recorded.
        with owner.db.transaction() as tx:
            size_written = self._inner.offset
            try:
                digest = self._inner.commit(size, expected)
            except AlreadyExists:
                digest = self._inner.digest()  # verified before the existence check
            records = tx.content(owner.namespace)
            leases = tx.leases(owner.namespace)
            if self.lease and leases.exists(self.lease):  # a lease gone meanwhile must not undo the commit
                leases.delete_resource(self.lease, LeaseResource(self.ref, "ingests"))
                leases.add_resource(self.lease, LeaseResource(digest, "content"))
            already = records.has(digest)
            if not already:
                records.add(digest, size_written, clean)
        if already:
            raise AlreadyExists(f"content {digest}: already exists")
        return digest

    def close(self) -> None:
        self._inner.close()


def _status_fields(status: IngestStatus) -> filters.Adaptor:
    def field(path: Sequence[str]) -> str | None:
        if len(path) == 1 and path[0] == "ref":
            return status.ref
        if len(path) == 1 and path[0] == "expected":
            return status.expected or None
        return None

    return field
