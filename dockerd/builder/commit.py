"""`docker commit` (POST /commit): a container's changes as a new image, with the same image
machinery as a build step.

The layer is the difference between the container's snapshot and its image with what
dockerd's init layer holds (engine/initlayer.py), so the mount points and /.dockerenv a
container always has stay out of it, as they do under dockerd. `changes` are Dockerfile
instructions (CMD ENTRYPOINT ENV EXPOSE HEALTHCHECK LABEL ONBUILD USER VOLUME WORKDIR)
applied to the config; `pause` freezes the container's task while the layer is taken.
"""

from __future__ import annotations

import contextlib
import copy
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from containerd.client import (
    ContainerdError,
    Descriptor,
    Image,
    NotFound,
    Platform,
    create_or_update_image,
    host_platform,
)
from dockerd.builder import image as images
from dockerd.builder import instructions as ins
from dockerd.builder import metadata
from dockerd.builder.errors import BuildFailed, BuildRequestError
from dockerd.builder.layers import Layers, new_key
from dockerd.builder.parse import parse_line
from dockerd.engine import initlayer

if TYPE_CHECKING:
    from containerd.client import Client

_CHANGES = (
    ins.Command,
    ins.Env,
    ins.Expose,
    ins.Healthcheck,
    ins.Label,
    ins.OnBuild,
    ins.User,
    ins.Volume,
    ins.Workdir,
)


@dataclass
class CommitRequest:
    snapshot_key: str  # the container's writable snapshot
    image: Descriptor | None  # the container's image (its target); None: from scratch
    container_id: str = ""  # recorded as "container"; its task is paused when `pause`
    container_config: Mapping[str, Any] = field(
        default_factory=dict
    )  # the container's Config (Cmd for the history)
    config: Mapping[str, Any] | None = None  # the new image's Config before the changes (None: the image's)
    changes: Sequence[str] = ()
    message: str = ""
    author: str = ""
    pause: bool = True
    names: Sequence[str] = ()  # normalised references to tag; none: an untagged image
    dangling_prefix: str = "moby-dangling"


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> None:
    """Apply `--change` lines to the image config; BuildRequestError (400) as dockerd words it."""
    for text in changes:
        for line in text.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            instruction = parse_line(line)
            if not isinstance(instruction, _CHANGES):
                raise BuildRequestError(f"{instruction.keyword.lower()} is not a valid change command")
            env = metadata.env_map(config.get("config") or {})
            try:
                if isinstance(instruction, ins.Workdir):
                    run_config = config.setdefault("config", {})
                    run_config["WorkingDir"] = metadata.workdir(
                        run_config.get("WorkingDir") or "", instruction.path
                    )
                else:
                    metadata.apply(instruction, config, env, "\\", True)
            except BuildFailed as exc:
                raise BuildRequestError(exc.message) from None


def commit_container(
    client: Client,
    request: CommitRequest,
    *,
    snapshotter: str = "overlayfs",
    tmp_dir: str | None = None,
    docker_version: str = "",
    platform: Platform | None = None,
) -> images.ImageState:
    """The new image, stored and named; BuildRequestError for bad changes."""
    want = platform or host_platform()
    parent = (
        images.load_image(client, request.image, want) if request.image is not None else images.scratch(want)
    )
    child = parent.child()
    if request.config is not None:
        # dockerd: the given Config (the container's, unless the request has one) with the
        # changes applied, its empty fields then filled from the container's Config.
        child.config["config"] = copy.deepcopy(dict(request.config))
    apply_changes(child.config, request.changes)
    if request.config is not None:
        merge_config(child.config["config"], request.container_config)
    layers = Layers(client, snapshotter, tmp_dir)
    with client.lease():
        paused = False
        if request.pause and request.container_id:
            with contextlib.suppress(NotFound, ContainerdError):
                client.tasks.pause(request.container_id)
                paused = True
        try:
            desc = _container_layer(layers, parent, request.snapshot_key)
        finally:
            if paused:
                with contextlib.suppress(ContainerdError):
                    client.tasks.resume(request.container_id)
        if desc is not None:
            layers.materialize(parent.diff_ids, desc)
            images.add_layer(child, desc, desc.digest)
        created = images.rfc3339()
        child.config["created"] = created
        child.config["container"] = request.container_id
        child.config["container_config"] = dict(request.container_config)
        if docker_version:
            child.config["docker_version"] = docker_version
        if request.author:
            child.config["author"] = request.author
        if request.message:
            child.config["comment"] = request.message
        else:
            child.config.pop("comment", None)
        cmd = request.container_config.get("Cmd") or []
        images.add_history(
            child,
            {"created": created, "author": request.author, "created_by": " ".join(cmd), "comment": request.message,
             "empty_layer": desc is None},
        )  # fmt: skip
        stored = images.write_image(client, child, snapshotter)
        assert stored.manifest is not None
        for name in request.names or [f"{request.dangling_prefix}@{stored.manifest.digest}"]:
            create_or_update_image(client, Image(name, stored.manifest))
    return stored


def merge_config(user: dict[str, Any], container: Mapping[str, Any]) -> None:
    """moby's commit merge: what USER (the new image's config) leaves empty comes from the
    container's config; environment, ports, labels and volumes are unions."""
    for key in ("User", "WorkingDir", "StopSignal"):
        if not user.get(key) and container.get(key):
            user[key] = container[key]
    for key in ("ExposedPorts", "Volumes"):
        theirs = container.get(key) or {}
        if not user.get(key):
            user[key] = copy.deepcopy(theirs) or user.get(key)
        else:
            for name, value in theirs.items():
                user[key].setdefault(name, value)
    if not user.get("Env"):
        user["Env"] = list(container.get("Env") or []) or user.get("Env")
    else:
        keys = {entry.split("=", 1)[0] for entry in user["Env"]}
        user["Env"] += [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys]
    labels = user.get("Labels") or {}
    for name, value in (container.get("Labels") or {}).items():
        labels.setdefault(name, value)
    user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = container.get("Cmd")
            if container.get("ArgsEscaped"):
                user["ArgsEscaped"] = True
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck") and not user.get("Healthcheck"):
        user["Healthcheck"] = container["Healthcheck"]


def _same_times(source: str, target: str) -> None:
    """Give the init entries made for the comparison the times the container's own have, so
    only entries the container changed differ."""
    for path, _ in initlayer.ENTRIES:
        with contextlib.suppress(OSError):
            st = os.lstat(os.path.join(source, path.lstrip("/")))
            mine = os.path.join(target, path.lstrip("/"))
            if stat.S_IFMT(os.lstat(mine).st_mode) == stat.S_IFMT(st.st_mode):
                os.utime(mine, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    for directory in ("dev", "etc", ""):
        with contextlib.suppress(OSError):
            st = os.lstat(os.path.join(source, directory))
            os.utime(
                os.path.join(target, directory), ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False
            )


def _container_layer(layers: Layers, parent: images.ImageState, snapshot_key: str) -> Descriptor | None:
    """The container's changes to its image, its init-layer entries left out."""
    init_work, init = new_key("commit-init-work"), new_key("commit-init")
    try:
        try:
            upper = layers.snapshots.mounts(snapshot_key)
        except NotFound:
            raise BuildRequestError(f"the container's snapshot {snapshot_key} does not exist", 404) from None
        mounts = layers.snapshots.prepare(init_work, parent.chain)
        with layers.mounted(mounts) as root, layers.mounted(upper, readonly=True) as container_root:
            initlayer.setup(root)
            _same_times(container_root, root)
        layers.snapshots.commit(init, init_work)
        return layers.diff(init, upper, None)
    finally:
        layers.remove_quietly(init, init_work)
