"""pyregistry's filesystem storage.

    ROOT/blobs/<alg>/<2 hex>/<hex>                 content, shared by every repository (deduplicated)
    ROOT/uploads/<uuid>/{data,meta.json}           upload sessions (staging; see uploads.py)
    ROOT/repositories/<name>/_layers/<alg>/<hex>   link: the repository may serve that blob
    ROOT/repositories/<name>/_manifests/revisions/<alg>/<hex>   link; its content is the media type
    ROOT/repositories/<name>/_manifests/tags/<tag>              content: the tagged digest
    ROOT/repositories/<name>/_referrers/<alg>-<subject hex>/<alg>-<hex>   the referrer's descriptor (JSON)

Every file appears by rename(2) of a complete, verified temporary file in the same file
system, so a reader (or a crash) never sees half of one. Blob files are never rewritten:
content at a digest path is that digest's content, so committing a blob that is already
there just drops the new copy. Manifests are blobs too, with a revision link per repository.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import atomicfile

_TMP_PREFIX = atomicfile.TMP_PREFIX  # files being written: every listing leaves them out


def _split(digest: str) -> tuple[str, str]:
    algorithm, encoded = digest.split(":", 1)
    return algorithm, encoded


def write_atomic(path: Path, data: bytes, fsync: bool) -> None:
    """Write `data` to `path` by rename of a temporary file beside it (synced unless the operator
    turned `fsync` off)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomicfile.write_atomic(path, data, 0o644, durable=fsync)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


class Storage:
    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.blobs = root / "blobs"
        self.uploads = root / "uploads"
        self.repositories = root / "repositories"
        for d in (self.blobs, self.uploads, self.repositories):
            d.mkdir(parents=True, exist_ok=True)

    # --- blobs (global, content-addressed) ---------------------------------------------

    def blob_path(self, digest: str) -> Path:
        algorithm, encoded = _split(digest)
        return self.blobs / algorithm / encoded[:2] / encoded

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def commit_file(self, staged: Path, digest: str) -> None:
        """Move a verified staging file into the blob store (or drop it if the blob is there)."""
        dest = self.blob_path(digest)
        if dest.exists():
            staged.unlink(missing_ok=True)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
        if self.fsync:
            atomicfile.fsync_dir(dest.parent)

    def put_blob_bytes(self, digest: str, data: bytes) -> None:
        """Store small verified content (manifests) in the blob store."""
        dest = self.blob_path(digest)
        if not dest.exists():
            write_atomic(dest, data, self.fsync)

    def read_blob(self, digest: str) -> bytes | None:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            return None

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        for alg_dir in sorted(self.blobs.iterdir()):
            for prefix in sorted(alg_dir.iterdir()):
                for path in sorted(prefix.iterdir()):
                    if not path.name.startswith(_TMP_PREFIX):
                        yield f"{alg_dir.name}:{path.name}", path

    # --- repositories -------------------------------------------------------------------

    def repo_dir(self, name: str) -> Path:
        return self.repositories / name

    def repo_exists(self, name: str) -> bool:
        """A repository exists once a manifest was pushed to it (as distribution's catalog has it)."""
        return (self.repo_dir(name) / "_manifests").is_dir()

    def _layer_link(self, name: str, digest: str) -> Path:
        algorithm, encoded = _split(digest)
        return self.repo_dir(name) / "_layers" / algorithm / encoded

    def link_blob(self, name: str, digest: str) -> None:
        link = self._layer_link(name, digest)
        if not link.exists():
            write_atomic(link, digest.encode(), self.fsync)

    def unlink_blob(self, name: str, digest: str) -> bool:
        try:
            self._layer_link(name, digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def repo_blob_size(self, name: str, digest: str) -> int | None:
        """The size of a blob this repository may serve, or None."""
        if not self._layer_link(name, digest).exists():
            return None
        return self.blob_size(digest)

    def iter_layer_links(self, name: str) -> Iterator[str]:
        base = self.repo_dir(name) / "_layers"
        if base.is_dir():
            for alg_dir in base.iterdir():
                for link in alg_dir.iterdir():
                    if not link.name.startswith(_TMP_PREFIX):
                        yield f"{alg_dir.name}:{link.name}"

    # --- manifests and tags ---------------------------------------------------------------

    def _revision(self, name: str, digest: str) -> Path:
        algorithm, encoded = _split(digest)
        return self.repo_dir(name) / "_manifests" / "revisions" / algorithm / encoded

    def _tag_file(self, name: str, tag: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "tags" / tag

    def link_manifest(self, name: str, digest: str, media_type: str) -> None:
        write_atomic(self._revision(name, digest), media_type.encode(), self.fsync)

    def manifest_media_type(self, name: str, digest: str) -> str | None:
        """The media type of a manifest revision of the repository, None if it has none."""
        return _read_text(self._revision(name, digest))

    def unlink_manifest(self, name: str, digest: str) -> bool:
        try:
            self._revision(name, digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def iter_manifests(self, name: str) -> Iterator[str]:
        base = self.repo_dir(name) / "_manifests" / "revisions"
        if base.is_dir():
            for alg_dir in base.iterdir():
                for link in alg_dir.iterdir():
                    if not link.name.startswith(_TMP_PREFIX):
                        yield f"{alg_dir.name}:{link.name}"

    def set_tag(self, name: str, tag: str, digest: str) -> None:
        write_atomic(self._tag_file(name, tag), digest.encode(), self.fsync)

    def get_tag(self, name: str, tag: str) -> str | None:
        return _read_text(self._tag_file(name, tag))

    def delete_tag(self, name: str, tag: str) -> bool:
        try:
            self._tag_file(name, tag).unlink()
            return True
        except FileNotFoundError:
            return False

    def tags(self, name: str) -> list[str]:
        base = self.repo_dir(name) / "_manifests" / "tags"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if not p.name.startswith(_TMP_PREFIX))

    def tags_of(self, name: str, digest: str) -> list[str]:
        return [t for t in self.tags(name) if self.get_tag(name, t) == digest]

    def catalog(self, with_blobs_only: bool = False) -> list[str]:
        """Repositories that hold manifests (or, for gc, only blob links too), sorted."""
        names: list[str] = []
        for dirpath, dirnames, _ in os.walk(self.repositories):
            if "_manifests" in dirnames or (with_blobs_only and "_layers" in dirnames):
                names.append(os.path.relpath(dirpath, self.repositories))
            # Name components never start with "_": those are a repository's own data.
            dirnames[:] = [d for d in dirnames if not d.startswith("_") and not d.startswith(".")]
        return sorted(names)

    # --- referrers ------------------------------------------------------------------------

    def _referrers_dir(self, name: str, subject: str) -> Path:
        return self.repo_dir(name) / "_referrers" / subject.replace(":", "-")

    def add_referrer(self, name: str, subject: str, descriptor: dict[str, Any]) -> None:
        path = self._referrers_dir(name, subject) / descriptor["digest"].replace(":", "-")
        write_atomic(path, json.dumps(descriptor, sort_keys=True).encode(), self.fsync)

    def remove_referrer(self, name: str, subject: str, digest: str) -> None:
        d = self._referrers_dir(name, subject)
        (d / digest.replace(":", "-")).unlink(missing_ok=True)
        try:
            d.rmdir()
        except OSError:
            pass

    def referrers(self, name: str, subject: str) -> list[dict[str, Any]]:
        d = self._referrers_dir(name, subject)
        if not d.is_dir():
            return []
        out = []
        for p in sorted(d.iterdir()):
            if not p.name.startswith(_TMP_PREFIX):
                try:
                    out.append(json.loads(p.read_bytes()))
                except (OSError, ValueError):
                    continue  # removed meanwhile
        return out
