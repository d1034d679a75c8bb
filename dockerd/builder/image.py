"""Images as the builder holds them, and writing them into pycontainerd's content store.

An image is its config JSON (Docker's: sorted top-level keys as dockerd writes them, the
container config in Go's field order, history, rootfs.diff_ids) and its layers (uncompressed
tar blobs, the media type `application/vnd.docker.image.rootfs.diff.tar`, so a layer's
digest is its diff ID). Writing one stores the config and a Docker schema 2 manifest with
containerd's gc labels: the manifest keeps its config and layers, the config keeps the
unpacked snapshot chain (`containerd.io/gc.ref.snapshot.<snapshotter>`), which is what a
container of the image, or the next build step, is prepared on.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from common.digest import compute as compute_digest
from containerd.client import Descriptor, Image, Platform, chain_ids, image_manifest
from containerd.client.media import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    LABEL_GC_REF_CONTENT,
    LABEL_GC_REF_SNAPSHOT,
    MAX_JSON_BLOB,
)

if TYPE_CHECKING:
    from containerd.client import Client

# The container config's fields in the order Go marshals container.Config (dockerd's JSON).
CONFIG_ORDER = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts", "Tty",
    "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
    "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)  # fmt: skip
# Fields Go always writes (no omitempty), with their zero values.
_ALWAYS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
    "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}  # fmt: skip
_HISTORY_ORDER = ("created", "author", "created_by", "comment", "empty_layer")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def empty_container_config() -> dict[str, Any]:
    return dict(_ALWAYS)


def ordered_container_config(config: dict[str, Any]) -> dict[str, Any]:
    """CONFIG in Go's field order, omitempty fields left out when empty, maps sorted."""
    out: dict[str, Any] = {}
    for key in CONFIG_ORDER:
        if key in _ALWAYS:
            out[key] = config.get(key, _ALWAYS[key])
        elif config.get(key) not in (None, "", False, {}, []):
            out[key] = config[key]
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if isinstance(out.get(key), dict):
            out[key] = dict(sorted(out[key].items()))
    return out


def go_json(value: Any) -> bytes:
    """JSON as Go's encoding/json writes it (compact, <, > and & escaped)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def rfc3339(seconds: float | None = None, *, epoch: int | None = None) -> str:
    """Go's RFC 3339 with nanoseconds, UTC: now, the given time, or SOURCE_DATE_EPOCH exactly."""
    if epoch is not None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    ns = time.time_ns() if seconds is None else int(seconds * 10**9)
    whole, frac = divmod(ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


@dataclass
class ImageState:
    """An image: its config JSON and layer blobs; `id` and `manifest` once stored ("" and None
    for scratch or an image not yet written)."""

    config: dict[str, Any]
    layers: list[Descriptor] = field(default_factory=list)
    id: str = ""
    manifest: Descriptor | None = None

    @property
    def run_config(self) -> dict[str, Any]:
        cfg = self.config.get("config")
        return cfg if isinstance(cfg, dict) else {}

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def chain(self) -> str:
        """The snapshot the image's root filesystem is (top of its chain; "" for none)."""
        chains = chain_ids(self.diff_ids)
        return chains[-1] if chains else ""

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.config.get("history") or [])

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def child(self) -> ImageState:
        """A copy to change into the next step's image (not stored yet)."""
        return ImageState(copy.deepcopy(self.config), list(self.layers))


def scratch(platform: Platform) -> ImageState:
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "config": empty_container_config(),
        "os": platform.os,
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    if platform.variant:
        config["variant"] = platform.variant
    return ImageState(config)


def load_image(client: Client, image: Image | Descriptor, platform: Platform | None = None) -> ImageState:
    """An image of the content store, for PLATFORM (default: the host's)."""
    desc, manifest, _ = image_manifest(client, image, platform)
    raw = client.content.read_all(manifest.config.digest, MAX_JSON_BLOB)
    config = json.loads(raw)
    if not isinstance(config.get("config"), dict):
        config["config"] = empty_container_config()
    return ImageState(config, list(manifest.layers), manifest.config.digest, desc)


def add_history(state: ImageState, entry: dict[str, Any]) -> None:
    state.config.setdefault("history", []).append({k: entry[k] for k in _HISTORY_ORDER if entry.get(k)})


def add_layer(state: ImageState, layer: Descriptor, diff_id: str) -> None:
    state.layers.append(layer)
    rootfs = state.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("diff_ids", []).append(diff_id)


def write_image(client: Client, state: ImageState, snapshotter: str) -> ImageState:
    """Store STATE's config and manifest (its layers must be stored already); the stored image."""
    config = dict(state.config)
    config["config"] = ordered_container_config(config.get("config") or {})
    if isinstance(config.get("container_config"), dict):
        config["container_config"] = ordered_container_config(config["container_config"])
    config["rootfs"] = {"type": "layers", "diff_ids": state.diff_ids}
    raw = go_json(dict(sorted(config.items())))
    config_desc = Descriptor(DOCKER_CONFIG, compute_digest(raw), len(raw))
    chain = state.chain
    labels = {f"{LABEL_GC_REF_SNAPSHOT}.{snapshotter}": chain} if chain else {}
    _store(client, raw, config_desc, labels)
    manifest = go_json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [layer.to_json() for layer in state.layers],
        }
    )
    manifest_desc = Descriptor(DOCKER_MANIFEST, compute_digest(manifest), len(manifest))
    refs = {f"{LABEL_GC_REF_CONTENT}.config": config_desc.digest}
    refs.update({f"{LABEL_GC_REF_CONTENT}.l.{i}": layer.digest for i, layer in enumerate(state.layers)})
    _store(client, manifest, manifest_desc, refs)
    return replace(state, config=json.loads(raw), id=config_desc.digest, manifest=manifest_desc)


def _store(client: Client, data: bytes, desc: Descriptor, labels: dict[str, str]) -> None:
    _, written = client.content.write(data, size=desc.size, expected=desc.digest, labels=labels)
    if labels and not written:
        client.content.update_labels(desc.digest, labels)
