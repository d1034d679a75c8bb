"""Container records (containerd.services.containers.v1): create, get, list, update, delete."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from containerd import filters
from containerd.errors import AlreadyExists, InvalidArgument, NotFound
from containerd.metadata.base import NamespacedStore
from containerd.metadata.records import AnyProto, Container, Runtime
from containerd.metadata.validate import dump_labels, load_labels, validate_identifier, validate_labels

_COLUMNS = (
    "id, labels, image, runtime_name, runtime_options_type_url, runtime_options, spec_type_url, spec,"
    " snapshotter, snapshot_key, extensions, sandbox, created_at, updated_at"
)
# Field paths an update may name (containerd's list); with none, these are all replaced.
_UPDATABLE = ("labels", "spec", "extensions", "image", "snapshotkey")


def container_fields(c: Container) -> Callable[[Sequence[str]], str | None]:
    """Filter adaptor: id, image, runtime.name, snapshotter, snapshotkey, labels.<key>."""

    def field(path: Sequence[str]) -> str | None:
        if not path:
            return None
        head = path[0]
        if head == "id":
            return c.id or None
        if head == "image":
            return c.image or None
        if head == "runtime" and len(path) == 2 and path[1] == "name":
            return c.runtime.name or None
        if head == "snapshotter":
            return c.snapshotter or None
        if head == "snapshotkey":
            return c.snapshot_key or None
        if head == "labels":
            return filters.map_field(c.labels, path[1:])
        return None

    return field


def validate_container(c: Container) -> Container:
    validate_identifier("container id", c.id)
    labels = validate_labels(c.labels)
    for name in c.extensions:
        if not name:
            raise InvalidArgument(f"container {c.id}: extension key must not be empty")
    if not c.runtime.name:
        raise InvalidArgument(f"container {c.id}: Runtime.Name must be set")
    if c.spec is None:
        raise InvalidArgument(f"container {c.id}: Spec must be set")
    if c.snapshot_key and not c.snapshotter:
        raise InvalidArgument(f"container {c.id}: Snapshotter must be set if SnapshotKey is set")
    return dataclasses.replace(c, labels=labels)


class ContainerStore(NamespacedStore):
    def create(self, container: Container) -> Container:
        c = validate_container(container)
        self.ensure_namespace()
        now = self.tx.now()
        c = dataclasses.replace(c, created_at=now, updated_at=now)
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO containers (namespace, {_COLUMNS}) VALUES ({', '.join('?' * 15)})",
            (self.namespace, *_row(c)),
        )
        if cur.rowcount == 0:
            raise AlreadyExists(f"container {c.id}: already exists")
        return c

    def get(self, container_id: str) -> Container:
        row = self.conn.execute(
            f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? AND id = ?",
            (self.namespace, container_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"container {container_id}: not found")
        return _container(row)

    def list(self, filter_strings: Iterable[str] = ()) -> list[Container]:
        matcher = filters.parse_all(filter_strings)
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM containers WHERE namespace = ? ORDER BY id", (self.namespace,)
        ).fetchall()
        found = [_container(row) for row in rows]
        return [c for c in found if matcher.match(container_fields(c))]

    def update(self, container: Container, fieldpaths: Sequence[str] = ()) -> Container:
        """containerd's rules: no field paths replaces labels, spec, extensions, image and
        snapshot key (snapshotter and runtime name are immutable); otherwise only the
        named fields (`labels.<key>` and `extensions.<key>` for single entries)."""
        if not container.id:
            raise InvalidArgument("must specify a container id")
        current = self.get(container.id)
        if not fieldpaths:
            if container.snapshotter != current.snapshotter:
                raise InvalidArgument(f"container {container.id}: Snapshotter field is immutable")
            if container.runtime.name != current.runtime.name:
                raise InvalidArgument(f"container {container.id}: Runtime.Name field is immutable")
            fieldpaths = _UPDATABLE
        updated = current
        for path in fieldpaths:
            if path.startswith("labels."):
                key = path[len("labels.") :]
                updated = dataclasses.replace(
                    updated, labels=_set_entry(updated.labels, key, container.labels)
                )
            elif path.startswith("extensions."):
                key = path[len("extensions.") :]
                exts = dict(updated.extensions)
                if key in container.extensions:
                    exts[key] = container.extensions[key]
                else:
                    exts.pop(key, None)
                updated = dataclasses.replace(updated, extensions=exts)
            elif path == "labels":
                updated = dataclasses.replace(updated, labels=dict(container.labels))
            elif path == "spec":
                updated = dataclasses.replace(updated, spec=container.spec)
            elif path == "extensions":
                updated = dataclasses.replace(updated, extensions=dict(container.extensions))
            elif path == "image":
                updated = dataclasses.replace(updated, image=container.image)
            elif path == "snapshotkey":
                updated = dataclasses.replace(updated, snapshot_key=container.snapshot_key)
            else:
                raise InvalidArgument(f"cannot update {path!r} field on container {container.id}")
        updated = validate_container(dataclasses.replace(updated, updated_at=self.tx.now()))
        self.conn.execute(
            f"UPDATE containers SET ({_COLUMNS}) = ({', '.join('?' * 14)}) WHERE namespace = ? AND id = ?",
            (*_row(updated), self.namespace, updated.id),
        )
        return updated

    def delete(self, container_id: str) -> None:
        cur = self.conn.execute(
            "DELETE FROM containers WHERE namespace = ? AND id = ?", (self.namespace, container_id)
        )
        if cur.rowcount == 0:
            raise NotFound(f"container {container_id}: not found")


def _set_entry(current: Mapping[str, str], key: str, incoming: Mapping[str, str]) -> dict[str, str]:
    out = dict(current)
    if incoming.get(key):
        out[key] = incoming[key]
    else:
        out.pop(key, None)
    return out


def _row(c: Container) -> tuple[object, ...]:
    options = c.runtime.options
    return (
        c.id,
        dump_labels(c.labels),
        c.image,
        c.runtime.name,
        options.type_url if options else None,
        options.value if options else None,
        c.spec.type_url if c.spec else None,
        c.spec.value if c.spec else None,
        c.snapshotter,
        c.snapshot_key,
        json.dumps(
            {k: [v.type_url, base64.b64encode(v.value).decode()] for k, v in sorted(c.extensions.items())}
        ),
        c.sandbox,
        c.created_at,
        c.updated_at,
    )


def _container(row: Any) -> Container:
    (
        cid,
        labels,
        image,
        rname,
        otype,
        ovalue,
        stype,
        svalue,
        snapshotter,
        skey,
        exts,
        sandbox,
        created,
        updated,
    ) = row
    options = AnyProto(str(otype), bytes(ovalue or b"")) if otype is not None else None
    spec = AnyProto(str(stype), bytes(svalue or b"")) if stype is not None else None
    extensions = {
        k: AnyProto(type_url, base64.b64decode(value))
        for k, (type_url, value) in json.loads(str(exts)).items()
    }
    return Container(
        id=str(cid),
        runtime=Runtime(str(rname), options),
        spec=spec,
        labels=load_labels(str(labels)),
        image=str(image),
        snapshotter=str(snapshotter),
        snapshot_key=str(skey),
        extensions=extensions,
        sandbox=str(sandbox),
        created_at=int(created),
        updated_at=int(updated),
    )
