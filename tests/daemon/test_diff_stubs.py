"""Diff.Diff and Diff.Apply through the stubs: a container's changes become a layer in
content (with its uncompressed digest label) that applies onto a fresh snapshot."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from protos.gen.containerd_api.types import mount_pb2
from tests.daemon.conftest import RunningDaemon
from tests.daemon.test_tasks_ctr import BUSYBOX


def mount_at(mounts: list[mount_pb2.Mount], target: str) -> None:
    m = mounts[0]
    args = ["mount", "-t", m.type, m.source, target]
    if m.options:
        args += ["-o", ",".join(m.options)]
    subprocess.run(args, check=True)


def test_diff_of_changes_applies_elsewhere(daemon: RunningDaemon) -> None:
    from protos.gen.containerd_api.services.content.v1 import content_pb2, content_pb2_grpc
    from protos.gen.containerd_api.services.diff.v1 import diff_pb2, diff_pb2_grpc
    from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2 as sp
    from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2_grpc

    assert daemon.ctr("images", "import", str(BUSYBOX)).returncode == 0
    channel = daemon.channel("default")
    snaps = snapshots_pb2_grpc.SnapshotsStub(channel)
    diff = diff_pb2_grpc.DiffStub(channel)
    content = content_pb2_grpc.ContentStub(channel)
    base = next(i.name for r in snaps.List(sp.ListSnapshotsRequest(snapshotter="overlayfs")) for i in r.info)
    upper = list(
        snaps.Prepare(sp.PrepareSnapshotRequest(snapshotter="overlayfs", key="work", parent=base)).mounts
    )
    lower = list(
        snaps.View(sp.ViewSnapshotRequest(snapshotter="overlayfs", key="base-view", parent=base)).mounts
    )
    with tempfile.TemporaryDirectory(dir=daemon.root.parent) as target:
        mount_at(upper, target)
        try:
            Path(target, "added.txt").write_text("made in the container\n")
            os.unlink(Path(target, "bin", "vi"))
        finally:
            subprocess.run(["umount", target], check=True)
    made = diff.Diff(
        diff_pb2.DiffRequest(
            left=lower, right=upper, media_type="application/vnd.oci.image.layer.v1.tar+gzip"
        )
    ).diff
    info = content.Info(content_pb2.InfoRequest(digest=made.digest)).info
    assert info.size == made.size and info.labels["containerd.io/uncompressed"].startswith("sha256:")

    fresh = list(
        snaps.Prepare(sp.PrepareSnapshotRequest(snapshotter="overlayfs", key="replay", parent=base)).mounts
    )
    applied = diff.Apply(diff_pb2.ApplyRequest(diff=made, mounts=fresh)).applied
    assert applied.digest == info.labels["containerd.io/uncompressed"]
    with tempfile.TemporaryDirectory(dir=daemon.root.parent) as target:
        mount_at(fresh, target)
        try:
            assert Path(target, "added.txt").read_text() == "made in the container\n"
            assert not os.path.lexists(Path(target, "bin", "vi"))
            assert Path(target, "bin", "sh").exists()
        finally:
            subprocess.run(["umount", target], check=True)
    for key in ("work", "base-view", "replay"):
        snaps.Remove(sp.RemoveSnapshotRequest(snapshotter="overlayfs", key=key))
