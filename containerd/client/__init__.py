"""The client library of containerd's gRPC API (pycontainerd's or containerd's own).

It talks only gRPC, never touches the daemon's files, and sits on the API the way
containerd's Go client does: a Client per namespace, one typed wrapper per service, leases
around multi-step work, the error kinds of containerd's errdefs, and the image operations
built on content and snapshots:

    from containerd.client import Client, Container, IO, import_archive

    with Client("/run/pycontainerd/pycontainerd.sock", "default") as client:
        images = import_archive(client, "busybox.tar")          # and unpacks them
        client.containers.create(Container.with_oci_spec("c1", spec, snapshotter="overlayfs", snapshot_key="c1"))
        pid = client.tasks.create("c1", client.snapshots().prepare("c1", top), IO(stdout="/tmp/out"))
        client.tasks.start("c1")
        exit = client.tasks.wait("c1")

The generated stubs (protos.gen) stay behind it; `client.api` has them, typed, for the rare
call no wrapper covers.
"""

from containerd.client.client import Client
from containerd.client.containers import RUNC_V2, Container, Containers, RuncOptions, Runtime
from containerd.client.content import ContentInfo, ContentStore
from containerd.client.diff import Diff
from containerd.client.errors import (
    AlreadyExists,
    ArchiveError,
    ContainerdError,
    DigestMismatch,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from containerd.client.events import Envelope, Events, Subscription
from containerd.client.exporter import export_archive, find_image
from containerd.client.images import Image, create_or_update_image, delete_image, get_image, list_images
from containerd.client.importer import import_archive
from containerd.client.leases import Lease, Leases, Resource
from containerd.client.media import Descriptor, Platform, chain_ids, host_platform
from containerd.client.mount import Mount
from containerd.client.names import familiar_name, normalize_name, parse_reference
from containerd.client.snapshots import SnapshotInfo, Snapshots, Usage
from containerd.client.tasks import IO, Exit, Metric, Process, ProcessInfo, Status, Tasks
from containerd.client.typeurl import PROCESS_TYPE, RESOURCES_TYPE, SPEC_TYPE, Payload
from containerd.client.unpack import Unpacked, image_manifest, is_unpacked, resolve_manifest, unpack

__all__ = [
    "IO",
    "PROCESS_TYPE",
    "RESOURCES_TYPE",
    "RUNC_V2",
    "SPEC_TYPE",
    "AlreadyExists",
    "ArchiveError",
    "Client",
    "Container",
    "ContainerdError",
    "Containers",
    "ContentInfo",
    "ContentStore",
    "Descriptor",
    "Diff",
    "DigestMismatch",
    "Envelope",
    "Events",
    "Exit",
    "FailedPrecondition",
    "Image",
    "InvalidArgument",
    "Lease",
    "Leases",
    "Metric",
    "Mount",
    "NotFound",
    "Payload",
    "Platform",
    "Process",
    "ProcessInfo",
    "Resource",
    "RuncOptions",
    "Runtime",
    "SnapshotInfo",
    "Snapshots",
    "Status",
    "Subscription",
    "Tasks",
    "Unavailable",
    "Unimplemented",
    "Unpacked",
    "Usage",
    "chain_ids",
    "create_or_update_image",
    "delete_image",
    "export_archive",
    "familiar_name",
    "find_image",
    "get_image",
    "host_platform",
    "image_manifest",
    "import_archive",
    "is_unpacked",
    "list_images",
    "normalize_name",
    "parse_reference",
    "resolve_manifest",
    "unpack",
]
