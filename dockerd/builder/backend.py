"""The builder as pydockerd's backend of POST /build, /build/prune, POST /commit and the build
cache of /system/df (moby's builder backend and daemon/commit.go).

    backend.prepare(body, options, auth)    BuildRequestError -> an HTTP error (dockerd's status)
    backend.stream(job)                     the JSON lines of the build's stream
    backend.commit(CommitQuery)             POST /commit
    backend.prune(...), backend.usage()     the build cache

Build containers are pycontainerd containers under the daemon's cgroup parent with its default
runtime and security defaults, on the network the build names through the network backend's
hook; FROM pulls through the distribution backend (pulling.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from containerd.client import ContainerdError, NotFound, Payload, RuncOptions, Runtime, chain_ids, get_image
from dockerd.builder import image as images
from dockerd.builder.builder import Builder, BuilderConfig, BuildJob
from dockerd.builder.cache import CacheRecord
from dockerd.builder.commit import CommitRequest, commit_container
from dockerd.builder.contexts import ContextCache
from dockerd.builder.errors import BuildError, BuildFailed, BuildRequestError
from dockerd.builder.options import BuildOptions
from dockerd.builder.pulling import RegistryImages
from dockerd.builder.recovery import remove_build_leftovers
from dockerd.builder.runner import NetworkHook, RunSettings
from dockerd.engine import filters as prune_filters
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotImplementedYet
from dockerd.engine.events import Publish
from dockerd.engine.image.service import DANGLING, tag_name
from dockerd.engine.runtimes import SHIM

if TYPE_CHECKING:
    from containerd.client import Client
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.distribution.backend import Distribution
    from dockerd.engine.distribution.registry_client import AuthConfig
    from dockerd.engine.filters import Filters
    from dockerd.engine.image.service import ImageService

# What a build's RUN may use as its network without a NetworkHook (the daemon gives one, the
# network backend's): Docker's default and "bridge" then get a namespace of their own with
# loopback only.
NETWORK_MODES = ("", "default", "bridge", "none", "host")
log = logging.getLogger("pydockerd.build")


class RequestError(EngineError):
    """A BuildRequestError as the API answers it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def request_error(exc: BuildRequestError) -> EngineError:
    return RequestError(exc.message, exc.status)


@dataclass
class CommitQuery:
    """POST /commit's query and body."""

    container: str
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None  # the body; None: the container's own Config


class BuildBackend:
    def __init__(
        self,
        client: Client,
        images_service: ImageService,
        containers: Containers,
        distribution: Distribution,
        publish: Publish,
        tmp_dir: str,
        version: str,
        network_hook: NetworkHook | None = None,
    ) -> None:
        self.client = client
        self.images = images_service
        self.containers = containers
        self.distribution = distribution
        self.publish = publish
        self.tmp_dir = tmp_dir
        self.version = version
        self.network_hook = network_hook
        self.contexts = ContextCache()
        self.cache = Builder(client, self._config(None)).cache

    def _run_settings(self) -> RunSettings:
        runtimes = self.containers.runtimes
        binary = runtimes.binary(runtimes.default)
        options = Payload.message(RuncOptions(binary_name=binary)) if binary is not None else None
        return RunSettings(
            runtime=Runtime(SHIM, options),
            cgroup_parent=self.containers.cgroup_parent,
            security=self.containers.security,
            network_hook=self.network_hook,
        )

    def _config(self, auth: Mapping[str, AuthConfig] | None) -> BuilderConfig:
        source = RegistryImages(self.client, self.distribution, auth) if auth is not None else None
        return BuilderConfig(
            tmp_dir=self.tmp_dir, docker_version=self.version, dangling_prefix=DANGLING, run=self._run_settings(),
            image_source=source, contexts=self.contexts,
        )  # fmt: skip

    def close(self) -> None:
        """At the daemon's stop: the kept contexts go (their tmpfs mounts with them)."""
        self.contexts.clear(in_use=True)

    def recover(self) -> None:
        """At start: what builds interrupted by pydockerd's death left in pycontainerd."""
        try:
            gone = remove_build_leftovers(self.client, self.cache.snapshotter)
        except ContainerdError as exc:
            log.warning("build recovery: %s", exc)
            return
        if gone:
            log.info("build recovery: removed %s", ", ".join(gone))

    # --- POST /build ---

    def prepare(self, body: IO[bytes], options: BuildOptions, auth: Mapping[str, AuthConfig]) -> BuildJob:
        """Unpack the context and parse the Dockerfile: what dockerd refuses before its stream."""
        if options.network_mode not in NETWORK_MODES and self.network_hook is None:
            raise InvalidParameter(
                f"network mode {options.network_mode!r} is not supported by this builder yet: use default, none or host"
            )
        builder = Builder(self.client, self._config(auth))
        try:
            return builder.prepare(body, options)
        except BuildRequestError as exc:
            raise request_error(exc) from None

    def stream(self, job: BuildJob) -> BuildStream:
        return BuildStream(self, job)

    def _tagged(self, job: BuildJob, image_id: str) -> None:
        for name in job.names:
            self.publish("image", "tag", image_id, {"name": name})

    # --- POST /build/prune, /system/df ---

    def prune(self, filters: Filters, keep_storage: int, all_: bool) -> dict[str, Any]:
        try:
            filters.validate(prune_filters.BUILD_CACHE_PRUNE)
            older_than = prune_filters.build_cache_until(filters)
        except InvalidParameter as exc:
            raise InvalidParameter(f"failed to prune build cache: {exc}") from None
        del all_  # every record is a regular one (BuildKit's --all adds internal and frontend ones)
        rows = {r.key: r for r in self.cache.records()}
        wanted = {key for key, r in rows.items() if _matches(r, filters)}
        result = self.cache.prune(older_than=older_than, keep_storage=keep_storage, keys=wanted)
        self.contexts.clear()  # (kept contexts are no cache record: nothing to count)
        return {"CachesDeleted": result.deleted or None, "SpaceReclaimed": result.reclaimed}

    def usage(self) -> list[dict[str, Any]]:
        """The build cache's rows of /system/df: one per step record, with its own layer's size;
        Shared when an image still uses that layer (pruning it then frees nothing)."""
        records = self.cache.records()
        by_image = {r.image_id: r for r in records}
        used = self._image_chains()
        rows = []
        for record in records:
            created = images.rfc3339(record.created_at / 1e9)
            parent = by_image.get(record.parent)
            rows.append({
                "ID": record.id, "Parent": parent.id if parent else "", "Type": "regular",
                "Description": record.description, "InUse": False, "Shared": bool(record.chain) and record.chain in used,
                "Size": self.cache.size(record), "CreatedAt": created, "LastUsedAt": created, "UsageCount": 1,
            })  # fmt: skip
        return rows

    def _image_chains(self) -> set[str]:
        chains: set[str] = set()
        for image in self.images.all():
            chains.update(chain_ids((image.config.get("rootfs") or {}).get("diff_ids") or []))
        return chains

    # --- POST /commit ---

    def commit(self, query: CommitQuery) -> str:
        c = self.containers.get(query.container)
        if c.state.get("Dead"):
            raise Conflict(f"You cannot commit container {c.id} which is Dead")
        if c.removal_in_progress:
            raise Conflict(f"You cannot commit container {c.id} which is being removed")
        names = [tag_name(query.repo, query.tag)] if query.repo else []
        resolved = self.images.resolve(c.image_id)
        try:
            target = get_image(self.client, resolved.names[0]).target
        except NotFound:
            target = None
        config = dict(query.config) if query.config else dict(c.config)
        request = CommitRequest(
            snapshot_key=c.id, image=target, container_id=c.id, container_config=dict(c.config), config=config,
            changes=query.changes, message=query.comment, author=query.author,
            pause=query.pause and c.running() and not c.state.get("Paused"), names=names, dangling_prefix=DANGLING,
        )  # fmt: skip
        try:
            stored = commit_container(self.client, request, tmp_dir=self.tmp_dir, docker_version=self.version)
        except BuildRequestError as exc:
            raise request_error(exc) from None
        except BuildError as exc:
            raise InvalidParameter(exc.message) from None
        attrs = {"comment": query.comment, "imageID": stored.id, "imageRef": names[0] if names else ""}
        self.publish("container", "commit", c.id, {**attrs, "image": c.image_ref, "name": c.name})
        return stored.id


def _matches(record: CacheRecord, filters: Filters) -> bool:
    """BuildKit's prune filters on our records (all "regular", never in use while no build runs)."""
    checks: dict[str, Callable[[str], bool]] = {
        "id": lambda v: record.id.startswith(v) or record.key.startswith(v),
        "parent": lambda v: record.parent == v or record.parent.removeprefix("sha256:").startswith(v),
        "type": lambda v: v == "regular",
        "description": lambda v: v in record.description,
        "inuse": lambda v: False,
        "shared": lambda v: False,
        "private": lambda v: True,
    }
    for key, check in checks.items():
        values = filters.get(key)
        if values and not any(check(v) for v in values):
            return False
    return True


class _Cancelled(Exception):
    pass


class BuildStream:
    """A build's JSON stream: the job runs in a worker thread, its messages go through a queue
    to the response. With `q`, dockerd keeps the output back and sends only the image ID, or,
    on failure, what it kept back and then the error. A client that hangs up cancels the build
    at its next step (`cancel()`)."""

    _END = object()

    def __init__(self, backend: BuildBackend, job: BuildJob) -> None:
        self.backend = backend
        self.job = job
        self.queue: queue.Queue[Any] = queue.Queue()
        self.kept: list[bytes] = []  # the output held back with `q`
        self.lock = threading.Lock()

    def cancel(self) -> None:
        self.job.cancelled.set()

    def _put(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\r\n"
        with self.lock:
            if self.job.options.quiet:
                self.kept.append(data)
            else:
                self.queue.put(data)

    def _work(self) -> None:
        job = self.job
        try:
            result = job.run(self._put)
        except BuildFailed as exc:
            self._fail(exc.stream_message())
        except (ContainerdError, EngineError) as exc:
            self._fail(BuildFailed(str(exc)).stream_message())
        except Exception as exc:  # noqa: BLE001 - never a traceback in the stream
            self._fail(BuildFailed(f"{type(exc).__name__}: {exc}").stream_message())
        else:
            if job.options.quiet:
                self.queue.put(
                    json.dumps({"stream": result.image_id + "\n"}, separators=(",", ":")).encode() + b"\r\n"
                )
            self.backend._tagged(job, result.image_id)
        finally:
            # The client has its answer before the context's files are removed.
            self.queue.put(self._END)
            with contextlib.suppress(Exception):
                job.close()

    def _fail(self, message: dict[str, Any]) -> None:
        with self.lock:
            for data in self.kept:
                self.queue.put(data)
            self.kept.clear()
        self.queue.put(json.dumps(message, separators=(",", ":")).encode() + b"\r\n")

    def __iter__(self) -> Iterator[bytes]:
        threading.Thread(target=self._work, name="build", daemon=True).start()
        while True:
            item = self.queue.get()
            if item is self._END:
                return
            yield item


__all__ = ["BuildBackend", "BuildStream", "CommitQuery", "NotImplementedYet"]
