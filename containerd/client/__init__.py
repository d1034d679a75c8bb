"""A small client library over containerd's gRPC API (pycontainerd's or containerd's own).

It talks only gRPC, never touches the daemon's files, and sits on the API the way
containerd's Go client does: a Client per namespace, leases around multi-step work,
content and snapshot helpers, and the image operations built on them:

    from containerd.client import Client, import_archive, export_archive

    with Client("/run/pycontainerd/pycontainerd.sock", "default") as client:
        images = import_archive(client, "busybox.tar")          # and unpacks them
        export_archive(client, ["busybox"], "out.tar", format="docker")
"""

from containerd.client.client import Client
from containerd.client.content import ContentInfo, ContentStore
from containerd.client.errors import ArchiveError, DigestMismatch
from containerd.client.exporter import export_archive, find_image
from containerd.client.images import Image, create_or_update_image, delete_image, get_image, list_images
from containerd.client.importer import import_archive
from containerd.client.media import Descriptor, Platform, chain_ids, host_platform
from containerd.client.names import familiar_name, normalize_name, parse_reference
from containerd.client.snapshots import Mount, SnapshotInfo, Snapshots
from containerd.client.unpack import Unpacked, image_manifest, is_unpacked, resolve_manifest, unpack

__all__ = [
    "ArchiveError",
    "Client",
    "ContentInfo",
    "ContentStore",
    "Descriptor",
    "DigestMismatch",
    "Image",
    "Mount",
    "Platform",
    "SnapshotInfo",
    "Snapshots",
    "Unpacked",
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
