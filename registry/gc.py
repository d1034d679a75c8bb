"""`pyregistry gc`: mark and sweep over the storage root, as distribution's garbage-collect.

Mark: in every repository, every manifest revision (or, with delete_untagged, only those a tag
reaches, their index children and the referrers of what is kept) marks itself, its config,
its layers and its child manifests. Sweep: every blob in the shared store that nothing marked
is removed, with the repository links to it. Upload sessions are left alone.

Run it while the registry is stopped or read-only: a blob pushed but not yet referenced by a
manifest looks unreferenced (the same rule as distribution).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from registry import manifests as mf
from registry.errors import RegistryError
from registry.storage import Storage


@dataclass
class Result:
    marked: int = 0
    blobs: list[str] = field(default_factory=list)
    freed: int = 0
    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest) removed


def _parse(storage: Storage, digest: str) -> mf.Manifest | None:
    body = storage.read_blob(digest)
    if body is None:
        return None
    try:
        return mf.parse(body, None)
    except RegistryError:
        return None


def _kept_manifests(storage: Storage, repo: str) -> set[str]:
    """Manifests a tag reaches, with index children and referrers of kept ones."""
    present = set(storage.iter_manifests(repo))
    kept: set[str] = set()
    todo = [d for t in storage.tags(repo) if (d := storage.get_tag(repo, t)) in present]
    while todo:
        digest = todo.pop()
        if digest in kept:
            continue
        kept.add(digest)
        m = _parse(storage, digest)
        if m is not None:
            todo.extend(c["digest"] for c in m.children if c["digest"] in present)
        todo.extend(r["digest"] for r in storage.referrers(repo, digest) if r["digest"] in present)
    return kept


def collect(
    storage: Storage, dry_run: bool = False, delete_untagged: bool = False, say: Callable[[str], None] = print
) -> Result:
    result = Result()
    marked: set[str] = set()
    for repo in storage.catalog():
        manifests = set(storage.iter_manifests(repo))
        if delete_untagged:
            kept = _kept_manifests(storage, repo)
            for digest in sorted(manifests - kept):
                say(f"{repo}: manifest eligible for deletion: {digest}")
                result.manifests.append((repo, digest))
                if not dry_run:
                    m = _parse(storage, digest)
                    storage.unlink_manifest(repo, digest)
                    if m is not None and m.subject is not None:
                        storage.remove_referrer(repo, m.subject["digest"], digest)
            manifests = kept
        for digest in manifests:
            marked.add(digest)
            m = _parse(storage, digest)
            if m is None:
                say(f"{repo}: manifest {digest} unreadable: its blobs are kept")
                marked.update(storage.iter_layer_links(repo))
                continue
            marked.update(d["digest"] for d in m.blobs)
            marked.update(d["digest"] for d in m.children)
    result.marked = len(marked)
    for digest, path in list(storage.iter_blobs()):
        if digest in marked:
            continue
        size = path.stat().st_size
        say(f"blob eligible for deletion: {digest} ({size} bytes)")
        result.blobs.append(digest)
        result.freed += size
        if not dry_run:
            path.unlink(missing_ok=True)
    if not dry_run:
        gone = set(result.blobs)
        for repo in storage.catalog(with_blobs_only=True):
            for digest in list(storage.iter_layer_links(repo)):
                if digest in gone:
                    storage.unlink_blob(repo, digest)
    return result
