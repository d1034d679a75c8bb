"""Kept build contexts (dockerd/builder/contexts.py) on the real kernel: the same request bytes
find the unpacked context again, read-only on its own tmpfs; other bytes get their own; unused
ones beyond the kept number and those cleared go with their mounts."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pytest

from common import mountinfo
from dockerd.builder.contexts import ContextCache
from tests.builder.conftest import context


def _body(text: str) -> io.BytesIO:
    return context(
        {"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": text, ".dockerignore": "secret\n", "secret": "s"}
    )


def test_same_bytes_share_one_read_only_context(tmp_path: Path) -> None:
    cache = ContextCache(keep=1)
    first = cache.open(_body("one"), "Dockerfile", str(tmp_path))
    second = cache.open(_body("one"), "Dockerfile", str(tmp_path))
    try:
        assert first.root == second.root and mountinfo.is_mount_point(first.root)
        assert (
            first.sums == second.sums and "f" in first.sums and second.dockerfile.startswith("FROM busybox")
        )
        assert not os.path.exists(
            os.path.join(first.root, "secret")
        )  # .dockerignore applied before it was kept
        with pytest.raises(OSError) as written:
            Path(first.root, "new").write_text("x")
        assert written.value.errno == errno.EROFS
        other = cache.open(_body("two"), "Dockerfile", str(tmp_path))
        assert other.root != first.root and Path(other.root, "f").read_text() == "two"
        other.close()
    finally:
        first.close()
        second.close()
        first.close()  # (closing twice releases once)
    # one kept (the most recently used unused one), the other removed with its mount
    kept = [p for p in tmp_path.iterdir()]
    assert len(kept) == 1 and mountinfo.mount_points(str(tmp_path)) == [str(kept[0])]
    assert cache.clear() == 1
    assert list(tmp_path.iterdir()) == [] and mountinfo.mount_points(str(tmp_path)) == []


def test_a_context_in_use_is_not_cleared_until_the_daemon_stops(tmp_path: Path) -> None:
    cache = ContextCache()
    used = cache.open(_body("one"), "Dockerfile", str(tmp_path))
    assert cache.clear() == 0 and Path(used.root, "f").read_text() == "one"
    assert cache.clear(in_use=True) == 1
    assert list(tmp_path.iterdir()) == []
    used.close()  # the build ends after the stop: nothing left to release
    assert list(tmp_path.iterdir()) == []
