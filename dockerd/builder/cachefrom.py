"""`--cache-from`: images (pulled from elsewhere, say) whose history stands in for build steps,
by the classic builder's rules (moby's image/cache): a source image qualifies for a step when
the step's parent is a prefix of it (the same history entries, the same layers) and its next
history entry was made by the same command. The step's image is then restored from it: the
parent's history and layers plus that entry and its layer (if it made one), with the step's
config; once the builder follows a source, it keeps to that one."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from containerd.client import ContainerdError, Platform, unpack
from dockerd.builder import image as images
from dockerd.builder.errors import BuildFailed

if TYPE_CHECKING:
    from containerd.client import Client
    from dockerd.builder.builder import ImageSource


class CacheSources:
    def __init__(self, client: Client, refs: Sequence[str], snapshotter: str, platform: Platform) -> None:
        self.client = client
        self.refs = list(refs)
        self.snapshotter = snapshotter
        self.platform = platform
        self.sources: list[images.ImageState] | None = None  # loaded at the first miss

    def _load(self, finder: ImageSource) -> list[images.ImageState]:
        found = []
        for ref in self.refs:
            # dockerd skips (with a warning in its log) a cache source it cannot find.
            with contextlib.suppress(BuildFailed, ContainerdError):
                target = finder.resolve(
                    ref, pull=False, platform=self.platform, progress=lambda message: None
                )
                state = images.load_image(self.client, target, self.platform)
                unpack(self.client, target, self.snapshotter, platform=self.platform)
                found.append(state)
        return found

    def restore(
        self, finder: ImageSource, parent: images.ImageState, child: images.ImageState, created_by: str
    ) -> images.ImageState | None:
        """The step's image restored from a source: stored already when it is the source itself,
        else still to be written (None: no source has the step)."""
        if not self.refs:
            return None
        if self.sources is None:
            self.sources = self._load(finder)
        position = len(parent.history)
        for source in self.sources:
            history = source.history
            if not _valid_parent(source, parent) or history[position].get("created_by", "") != created_by:
                continue
            self.sources = [source]
            if position == len(history) - 1:
                return source  # its last step: the source image itself, as dockerd gives it
            return _restored(parent, child, source, position)
        return None


def _valid_parent(source: images.ImageState, parent: images.ImageState) -> bool:
    if len(parent.history) >= len(source.history) or len(parent.diff_ids) > len(source.diff_ids):
        return False
    return (
        parent.history == source.history[: len(parent.history)]
        and parent.diff_ids == source.diff_ids[: len(parent.diff_ids)]
    )


def _restored(
    parent: images.ImageState, child: images.ImageState, source: images.ImageState, position: int
) -> images.ImageState:
    entry: dict[str, Any] = dict(source.history[position])
    config: dict[str, Any] = {
        "architecture": source.config.get("architecture", ""),
        "config": child.run_config,
        "created": entry.get("created", ""),
        "os": source.config.get("os", ""),
        "rootfs": {"type": "layers", "diff_ids": parent.diff_ids},
        "history": [*parent.history, entry],
    }
    for key in ("author", "variant", "os.version", "os.features"):
        if source.config.get(key):
            config[key] = source.config[key]
    restored = images.ImageState(config, list(parent.layers))
    if not entry.get("empty_layer"):
        index = sum(1 for h in source.history[:position] if not h.get("empty_layer"))
        images.add_layer(restored, source.layers[index], source.diff_ids[index])
    return restored
