"""Docker's view of images, kept entirely in pycontainerd (reached only over gRPC).

An image is a containerd image record named like `docker.io/library/busybox:latest`; its
Docker ID is the digest of its config. Nothing about images is stored by pydockerd.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from containerd.client import (
    Client,
    Descriptor,
    Image,
    Snapshots,
    chain_ids,
    create_or_update_image,
    delete_image,
    export_archive,
    familiar_name,
    image_manifest,
    import_archive,
    list_images,
    normalize_name,
    parse_reference,
    unpack,
)
from containerd.client.errors import ContainerdError, InvalidArgument
from containerd.client.errors import NotFound as ContainerdNotFound
from containerd.client.names import is_tag
from dockerd.engine.errors import Conflict, InvalidParameter, no_such_image
from dockerd.engine.image import layersize
from dockerd.engine.logs import parse_time

CONFIG_LIMIT = 8 << 20
CACHED_IMAGES = 512  # images whose manifests, unpacked state and account files are kept in memory
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")
# The name of an image without a reference: loaded without a tag, or that lost its last
# reference while a container used it (Docker's containerd image store names them so). Never
# shown as a reference; "import@" is what loads named them before.
DANGLING = "moby-dangling"
DANGLING_PREFIX = DANGLING + "@"
HIDDEN_PREFIXES = (DANGLING_PREFIX, "import@")


def _hidden(name: str) -> bool:
    return name.startswith(HIDDEN_PREFIXES)


@dataclass
class ResolvedImage:
    id: str  # sha256:<config digest>
    names: list[str]  # containerd names pointing at it
    config: dict[str, Any]  # the image config JSON
    chain_id: str  # top of the unpacked chain ("" for no layers)
    size: int
    created: str
    layer_blob_sizes: list[int] = field(default_factory=list)  # the manifest's, one per layer
    layer_digests: list[str] = field(default_factory=list)  # the manifest's layer blobs


@dataclass(frozen=True)
class _Parsed:
    """What an image's target (manifest or index) says, as read once: content never changes
    under a digest, so it is kept (the config as its bytes: each caller gets its own dict)."""

    config_digest: str
    config_raw: bytes
    diff_ids: tuple[str, ...]
    layers: tuple[Descriptor, ...]


class Bounded(Generic[K, V]):
    """A dict that forgets its oldest entries past LIMIT (for content-addressed facts)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._limit:
                self._items.popitem(last=False)


class ImageService:
    def __init__(self, client: Client) -> None:
        self.client = client
        # Layers never change: each one's size is measured once.
        self._layer_usage: dict[str, int] = {}
        self._usage_lock = threading.Lock()
        # Every container start and exec resolves its image: without these, each would read the
        # manifest and config of every image, and unpack and mount the image's layers anew.
        self._parsed: Bounded[str, _Parsed] = Bounded(CACHED_IMAGES)
        self._unpacked: Bounded[str, bool] = Bounded(CACHED_IMAGES)  # chains this process unpacked
        self._chain_facts: Bounded[tuple[str, str], tuple[Any]] = Bounded(CACHED_IMAGES)
        self._configs: Bounded[str, bytes] = Bounded(CACHED_IMAGES)  # image ID (config digest) -> config

    # --- reading ---------------------------------------------------------------------------

    def _config_of(self, image: Image) -> tuple[str, dict[str, Any], list[str], list[Descriptor]]:
        parsed = self._parsed.get(image.target.digest)
        if parsed is None:
            desc, manifest, config = image_manifest(self.client, image)
            raw = self.client.content.read_all(manifest.config.digest, CONFIG_LIMIT)
            parsed = _Parsed(manifest.config.digest, raw, tuple(config.diff_ids), tuple(manifest.layers))
            self._parsed.put(image.target.digest, parsed)
            self._configs.put(parsed.config_digest, raw)
        return parsed.config_digest, json.loads(parsed.config_raw), list(parsed.diff_ids), list(parsed.layers)

    def chain_fact(self, chain: str, name: str, compute: Callable[[], T]) -> T:
        """What COMPUTE reads from the committed (so unchanging) layer chain CHAIN, computed once
        per NAME (the account files a start reads before the container has a filesystem)."""
        cached = self._chain_facts.get((chain, name))
        if cached is None:
            cached = (compute(),)
            self._chain_facts.put((chain, name), cached)
        return cached[0]

    def config_of(self, image_id: str) -> dict[str, Any]:
        """The config of the image IMAGE_ID (its config's digest, so what was read once under it
        stays true): an exec's environment without listing every image each time."""
        raw = self._configs.get(image_id)
        if raw is None:
            return self.resolve(image_id).config
        loaded: dict[str, Any] = json.loads(raw)
        return loaded

    def all(self) -> list[ResolvedImage]:
        grouped: dict[str, ResolvedImage] = {}
        for image in list_images(self.client):
            try:
                image_id, config, diff_ids, layers = self._config_of(image)
            except ContainerdError:
                continue  # an index without our platform, or content garbage-collected meanwhile
            entry = grouped.get(image_id)
            if entry is None:
                chains = chain_ids(diff_ids)
                blob_sizes = [layer.size for layer in layers]
                entry = grouped[image_id] = ResolvedImage(
                    image_id, [], config, chains[-1] if chains else "", sum(blob_sizes), config.get("created", ""),
                    blob_sizes, [layer.digest for layer in layers],
                )  # fmt: skip
            entry.names.append(image.name)
        return list(grouped.values())

    def resolve(self, ref: str, images: list[ResolvedImage] | None = None) -> ResolvedImage:
        """By name (normalised like Docker's), by full or short ID (with or without sha256:),
        among IMAGES (a listing the caller already has) or every image."""
        wanted = parse_name(ref)  # as dockerd's GetImage: a reference that does not parse is a 400
        images = self.all() if images is None else images
        if ref:
            for image in images:
                if wanted in image.names:
                    return image
            short = ref.removeprefix("sha256:")
            if len(short) >= 1 and all(c in "0123456789abcdef" for c in short):
                matches = [i for i in images if i.id.removeprefix("sha256:").startswith(short)]
                if len(matches) == 1:
                    return matches[0]
                if len(matches) > 1:
                    raise InvalidParameter(f"ambiguous image reference {ref}")
        # Docker names the reference as it looked it up: `busybox` is `busybox:latest`.
        has_tag = ":" in ref.rsplit("/", 1)[-1] or "@" in ref
        raise no_such_image(ref if has_tag or _looks_like_id(ref) else f"{ref}:latest")

    def repo_tags(self, image: ResolvedImage) -> list[str]:
        return sorted(familiar_name(name) for name in image.names if "@" not in name)

    def repo_digests(self, image: ResolvedImage) -> list[str]:
        """`repo@digest` references: the manifests a pull or push of a repository resolved to."""
        return sorted(familiar_name(name) for name in image.names if "@" in name and not _hidden(name))

    def layer_sizes(self, image: ResolvedImage) -> list[tuple[str, int]]:
        """(chain ID, bytes) per layer: the apparent size of the layer's files, as dockerd's
        layer store records it (layersize.py); the blob's size if the blob is gone."""
        diff_ids = (image.config.get("rootfs") or {}).get("diff_ids") or []
        out = []
        for i, chain in enumerate(chain_ids(diff_ids)):
            with self._usage_lock:
                size = self._layer_usage.get(chain)
            if size is None and i < len(image.layer_digests):
                size = layersize.layer_size(self.client, image.layer_digests[i])
                if size is not None:
                    with self._usage_lock:
                        self._layer_usage[chain] = size
            if size is None:
                size = image.layer_blob_sizes[i] if i < len(image.layer_blob_sizes) else 0
            out.append((chain, size))
        return out

    def unpacked_size(self, image: ResolvedImage) -> int:
        return sum(size for _, size in self.layer_sizes(image))

    # --- Docker JSON -----------------------------------------------------------------------

    def summary(self, image: ResolvedImage) -> dict[str, Any]:
        created = _unix(image.created)
        tags, digests = self.repo_tags(image), self.repo_digests(image)
        if not tags and not digests:  # as dockerd's list: an image without references shows `<none>`
            tags, digests = ["<none>:<none>"], ["<none>@<none>"]
        return {
            "Containers": -1,
            "Created": created,
            "Id": image.id,
            "Labels": (image.config.get("config") or {}).get("Labels"),
            "ParentId": "",
            "RepoDigests": digests or None,
            "RepoTags": tags or None,
            "SharedSize": -1,
            "Size": (size := self.unpacked_size(image)),
            "VirtualSize": size,
        }

    def inspect(self, image: ResolvedImage) -> dict[str, Any]:
        cfg = image.config
        return {
            "Id": image.id,
            "RepoTags": self.repo_tags(image),
            "RepoDigests": self.repo_digests(image),
            "Parent": "",
            "Comment": cfg.get("comment", ""),
            "Created": image.created,
            "Container": cfg.get("container", ""),
            "ContainerConfig": cfg.get("container_config") or {},
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or {},
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": (size := self.unpacked_size(image)),
            "VirtualSize": size,
            "GraphDriver": {"Data": None, "Name": "overlay2"},  # the storage driver info and containers name
            "RootFS": {"Type": "layers", "Layers": (cfg.get("rootfs") or {}).get("diff_ids", [])},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def history(self, image: ResolvedImage) -> list[dict[str, Any]]:
        """Newest first; each entry that made a layer has that layer's size (the same sizes
        `images` adds up), the others (`empty_layer`) 0, as dockerd's history."""
        sizes = iter(size for _, size in self.layer_sizes(image))
        entries = []
        for entry in image.config.get("history") or []:
            size = 0 if entry.get("empty_layer") else next(sizes, 0)
            entries.append((entry, size))
        out = []
        for i, (entry, size) in enumerate(reversed(entries)):
            out.append(
                {
                    "Id": image.id if i == 0 else "<missing>",
                    "Created": _unix(entry.get("created", "")),
                    "CreatedBy": entry.get("created_by", ""),
                    "Tags": self.repo_tags(image) if i == 0 else None,
                    "Size": size,
                    "Comment": entry.get("comment", ""),
                }
            )
        return out

    # --- changing --------------------------------------------------------------------------

    def load(self, stream: IO[bytes]) -> list[str]:
        """Import an archive (docker-save, OCI layout or archive); return Docker's 'Loaded image' lines."""
        try:
            images = import_archive(self.client, stream, dangling_prefix=DANGLING)
        except ContainerdError as exc:
            raise InvalidParameter(str(exc)) from None
        lines = []
        for image in images:
            if "@" in image.name:
                # Docker's image ID is the config's digest, not the manifest's.
                try:
                    image_id = image_manifest(self.client, image)[1].config.digest
                except ContainerdError:
                    image_id = image.target.digest
                lines.append(f"Loaded image ID: {image_id}")
            else:
                lines.append(f"Loaded image: {familiar_name(image.name)}")
        return lines

    def ensure_unpacked(self, image: ResolvedImage) -> str:
        """The image's unpacked chain (its top snapshot), unpacking what is missing. A chain this
        process unpacked (and labelled for the garbage collector) costs one Stat while it exists."""
        chain = image.chain_id
        if chain and self._unpacked.get(chain) and Snapshots(self.client, "overlayfs").exists(chain):
            return chain
        from containerd.client import get_image

        result = unpack(self.client, get_image(self.client, image.names[0]))
        if result.top:
            self._unpacked.put(result.top, True)
        return result.top

    def tag(self, source: str, repo: str, tag: str) -> str:
        """Name the image `repo`[:`tag`]; returns the new name as Docker prints it."""
        image = self.resolve(source)
        target_name = tag_name(repo, tag)
        from containerd.client import get_image

        existing = get_image(self.client, image.names[0])
        create_or_update_image(
            self.client, Image(name=target_name, target=existing.target, labels=dict(existing.labels))
        )
        return familiar_name(target_name)

    def remove(self, ref: str, force: bool, users: list[tuple[str, bool]]) -> list[dict[str, str]]:
        """dockerd's image delete. By a reference: untag it (and the digests of its repository
        when it was that repository's last tag), and delete the image once nothing names it,
        unless a running container still needs it (it then stays, dangling). By ID: untag everything
        and delete, refused while a container uses it or (without force) other repositories name
        it. `users` are the (container ID, running) pairs of the image's containers."""
        image = self.resolve(ref)
        short_id = image.id.removeprefix("sha256:")[:12]
        names = [n for n in image.names if not _hidden(n)]
        by_name = parse_name(ref)
        running = [cid for cid, live in users if live]
        layers = self._layers(image)
        records: list[dict[str, str]] = []
        if by_name in names and not _is_id_prefix(image.id, ref):
            if not force and users and _single_reference(names):
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - container '
                    f"{users[0][0][:12]} is using its referenced image {short_id}"
                )
            doomed = _untagged_with(by_name, names)
            if running and len(doomed) == len(names):
                # Nothing names it any more, but a running container needs it: dockerd keeps it.
                self._keep_dangling(image)
            self._untag(doomed, records)
            if running or len(doomed) < len(names):
                return records
        else:
            conflict = _delete_conflict(short_id, names, users, force)
            if conflict is not None:
                raise conflict
            self._untag(sorted(names, key=familiar_name), records)
        for name in image.names:
            if _hidden(name):
                self._delete_name(name)
        records.append({"Deleted": image.id})
        records.extend({"Deleted": chain} for chain in self._layers_gone(layers))
        return records

    def _layers(self, image: ResolvedImage) -> list[str]:
        """The chain IDs of the image's unpacked layers, top first."""
        chains = chain_ids((image.config.get("rootfs") or {}).get("diff_ids") or [])
        snapshots = self.client.snapshots("overlayfs")
        return [chain for chain in reversed(chains) if snapshots.exists(chain)]

    def _layers_gone(self, chains: list[str]) -> list[str]:
        """Which of CHAINS the collection after the image's deletion removed: the layers dockerd
        lists as deleted (its layer store releases those no other image or container holds)."""
        snapshots = self.client.snapshots("overlayfs")
        return [chain for chain in chains if not snapshots.exists(chain)]

    def _untag(self, names: list[str], records: list[dict[str, str]]) -> None:
        for name in names:
            if self._delete_name(name):
                records.append({"Untagged": familiar_name(name)})

    def _delete_name(self, name: str) -> bool:
        try:
            delete_image(self.client, name, sync=True)
        except ContainerdNotFound:
            return False
        return True

    def _keep_dangling(self, image: ResolvedImage) -> None:
        """A record no reference shows, which keeps the image's content (as Docker's containerd
        image store names an image that lost its last name while in use)."""
        from containerd.client import get_image

        existing = get_image(self.client, image.names[0])
        dangling = Image(
            name=DANGLING_PREFIX + existing.target.digest,
            target=existing.target,
            labels=dict(existing.labels),
        )
        create_or_update_image(self.client, dangling)

    def save(self, refs: list[str], out: IO[bytes]) -> None:
        names = []
        for ref in refs:
            image = self.resolve(ref)
            wanted = parse_name(ref)
            names.append(wanted if wanted in image.names else image.names[0])
        export_archive(self.client, names, out, format="docker")


def reference_error(exc: InvalidArgument) -> str:
    """A reference's parse error in the words of Docker's reference package."""
    text = str(exc)
    if "must be lowercase" in text:
        return "invalid reference format: repository name must be lowercase"
    if "longer than" in text:
        return "repository name must not be more than 255 characters"
    return "invalid reference format"


def parse_name(ref: str) -> str:
    """`ref` normalised (`busybox` -> `docker.io/library/busybox:latest`); a 400 when it is no reference."""
    try:
        return normalize_name(ref)
    except InvalidArgument as exc:
        raise InvalidParameter(reference_error(exc)) from None


def tag_name(repo: str, tag: str) -> str:
    """The name `docker tag` gives: REPO (its own tag or digest dropped when TAG is given) with
    TAG, else REPO's tag, else `latest` (dockerd's TagImage)."""
    try:
        ref = parse_reference(repo, default_tag=False)
    except InvalidArgument as exc:
        raise InvalidParameter(reference_error(exc)) from None
    if tag and not is_tag(tag):
        raise InvalidParameter("invalid tag format")
    if ref.digest and not tag:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    return f"{ref.repository}:{tag or ref.tag or 'latest'}"


def snapshot_usage(client: Client, key: str, snapshotter: str = "overlayfs") -> tuple[int, int] | None:
    """(bytes, inodes) of a snapshot from Snapshots.Usage, None when there is no such snapshot."""
    try:
        usage = client.snapshots(snapshotter).usage(key)
    except ContainerdNotFound:
        return None
    return usage.size, usage.inodes


def _unix(created: str) -> int:
    return int(parse_time(created)) if created else 0


def _looks_like_id(ref: str) -> bool:
    short = ref.removeprefix("sha256:")
    return len(short) >= 12 and all(c in "0123456789abcdef" for c in short)


def _repository(name: str) -> str:
    """A normalised reference's repository: without its tag or digest."""
    base = name.split("@", 1)[0]
    last = base.rsplit("/", 1)[-1]
    return base.rsplit(":", 1)[0] if ":" in last else base


def _untagged_with(name: str, names: list[str]) -> list[str]:
    """What untagging `name` removes (dockerd): the name, and when it was its repository's last
    tag, that repository's digest references too."""
    if "@" in name:
        return [name]
    repo = _repository(name)
    if any("@" not in n and n != name and _repository(n) == repo for n in names):
        return [name]
    return [name, *(n for n in names if "@" in n and _repository(n) == repo)]


def _single_reference(names: list[str]) -> bool:
    """dockerd's isSingleReference: all references in one repository, at most one of them a tag."""
    if len(names) <= 1:
        return len(names) == 1
    tags = [n for n in names if "@" not in n]
    digest_repos = {_repository(n) for n in names if "@" in n}
    if len(tags) > 1:
        return False
    single = tags[0] if tags else names[0]
    return len(digest_repos) == 1 and _repository(single) in digest_repos


def _is_id_prefix(image_id: str, ref: str) -> bool:
    """dockerd's isImageIDPrefix: the reference is (a prefix of) the ID, with or without sha256:."""
    return image_id.startswith(ref) or image_id.removeprefix("sha256:").startswith(ref)


def _delete_conflict(
    short_id: str, names: list[str], users: list[tuple[str, bool]], force: bool
) -> Conflict | None:
    """Why an image cannot be deleted by ID, checked in dockerd's order: a running container
    (even with force), then without force other repositories' references and stopped containers."""
    running = [cid for cid, live in users if live]
    if running:
        return Conflict(
            f"conflict: unable to delete {short_id} (cannot be forced) - image is being used by running container {running[0][:12]}"
        )
    if force:
        return None
    if names and not _single_reference(names):
        return Conflict(
            f"conflict: unable to delete {short_id} (must be forced) - image is referenced in multiple repositories"
        )
    if users:
        return Conflict(
            f"conflict: unable to delete {short_id} (must be forced) - image is being used by stopped container {users[0][0][:12]}"
        )
    return None
