"""Copy-up on a real overlay mount of a real image (the busybox bundle scripts/setup builds):
a new, empty volume gets the image's files at the mount path with owners, modes, xattrs,
symlinks, hard links and special files; a volume with content, or nocopy, is left alone."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.mount import Mount, mount_all, unmount
from dockerd.engine.errors import InvalidParameter
from dockerd.volumes import containermounts, mountplan
from dockerd.volumes.copyup import copy_up, ensure_mountable
from dockerd.volumes.mountpoint import MountPoint
from dockerd.volumes.service import VolumeService

REPO = Path(__file__).resolve().parents[2]
BUSYBOX_ROOTFS = REPO / "images" / "busybox-bundle" / "rootfs"
CID = "f" * 64


@pytest.fixture
def rootfs(root: Path) -> Iterator[Path]:
    """The busybox image as a container sees it: an overlay with the image below and a writable
    layer on top, where the test adds what busybox lacks (an owned tree, a setuid file, xattrs,
    hard links, a FIFO, a device node) as an image layer would."""
    assert (BUSYBOX_ROOTFS / "bin" / "busybox").exists(), "scripts/setup builds images/busybox-bundle"
    upper, work, merged = root / "upper", root / "work", root / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    opts = [f"lowerdir={BUSYBOX_ROOTFS}", f"upperdir={upper}", f"workdir={work}"]
    mount_all([Mount("overlay", "overlay", options=opts)], str(merged))
    try:
        app = merged / "srv" / "app"
        (app / "sub").mkdir(parents=True)
        os.chown(app, 1234, 5678)
        os.chmod(app, 0o750)
        (app / "prog").write_bytes(b"#!/bin/sh\necho hi\n")
        os.chown(app / "prog", 1000, 1000)
        os.chmod(app / "prog", 0o4755)  # setuid survives (mode set after the owner)
        (app / "sub" / "data").write_bytes(os.urandom(300_000))
        os.link(app / "sub" / "data", app / "hard")
        os.symlink("sub/data", app / "rel-link")
        os.symlink("/etc/passwd", app / "abs-link")  # copied as a link, never followed
        os.mkfifo(app / "fifo", 0o640)
        os.mknod(app / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.setxattr(app / "prog", "user.origin", b"image")
        os.setxattr(app / "prog", "security.capability", _CAP_NET_BIND)  # a file capability
        os.utime(app / "sub" / "data", ns=(1_000_000_000, 1_500_000_000))
        yield merged
    finally:
        unmount(str(merged))


# VFS_CAP_REVISION_2, effective, CAP_NET_BIND_SERVICE (bit 10) permitted
_CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")


def _tree(top: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(top))
            extra: tuple[object, ...] = ()
            if stat.S_ISLNK(st.st_mode):
                extra = (os.readlink(p),)
            elif stat.S_ISREG(st.st_mode):
                extra = (p.read_bytes(), st.st_mtime_ns, sorted(_xattrs(p)))
            elif stat.S_ISCHR(st.st_mode):
                extra = (st.st_rdev,)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink, *extra)
    return out


def _xattrs(p: Path) -> list[tuple[str, bytes]]:
    return [(a, os.getxattr(p, a, follow_symlinks=False)) for a in os.listxattr(p, follow_symlinks=False)]


def test_copy_preserves_everything(rootfs: Path, root: Path) -> None:
    volume = root / "vol"
    volume.mkdir()
    assert copy_up(str(rootfs), "/srv/app", str(volume))
    assert _tree(volume) == _tree(rootfs / "srv" / "app")
    st = volume.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o750)  # the directory itself too
    assert os.stat(volume / "hard").st_ino == os.stat(volume / "sub" / "data").st_ino
    assert os.getxattr(volume / "prog", "security.capability") == _CAP_NET_BIND
    assert not copy_up(str(rootfs), "/srv/app", str(volume))  # not empty any more: untouched


def test_busybox_etc_through_the_service(rootfs: Path, service: VolumeService) -> None:
    """As `docker create -v fresh:/etc -v full:/etc2 -v none:/srv:nocopy busybox`: the new empty volume
    gets /etc; one that holds files, a nocopy one and one over a missing path get nothing."""
    full = service.create("full")
    Path(full.mountpoint, "mine").write_text("keep")
    points = mountplan.plan(
        {"Binds": ["fresh:/etc", "full:/bin", "none:/srv:nocopy", "missing:/not/there"]}, [], _none, "/n"
    )
    containermounts.create_volumes(points, service, CID)
    containermounts.populate(points, str(rootfs), service)
    fresh = Path(service.inspect("fresh")["Mountpoint"])
    assert sorted(os.listdir(fresh)) == sorted(os.listdir(rootfs / "etc"))
    assert (fresh / "passwd").read_bytes() == (rootfs / "etc" / "passwd").read_bytes()
    assert os.listdir(full.mountpoint) == ["mine"]
    assert os.listdir(service.inspect("none")["Mountpoint"]) == []
    assert os.listdir(service.inspect("missing")["Mountpoint"]) == []


def test_volume_with_mount_options_mounted_for_the_copy(rootfs: Path, service: VolumeService) -> None:
    """A volume with mount options is mounted for the copy and unmounted after (as dockerd does)."""
    service.create(
        "tv", options={"type": "none", "o": "bind", "device": str(rootfs.parent / "upper" / "srv")}
    )
    points = mountplan.plan({"Binds": ["tv:/usr"]}, [], _none, "/n")
    containermounts.create_volumes(points, service, CID)
    before = set(os.listdir(rootfs.parent / "upper" / "srv"))
    containermounts.populate(points, str(rootfs), service)
    assert set(os.listdir(rootfs.parent / "upper" / "srv")) == before  # not empty: nothing copied
    assert service.inspect("tv")["Mountpoint"] not in _mounted()


def test_symlinked_destination_stays_in_the_root(rootfs: Path, root: Path) -> None:
    """A destination that is a symlink to the host's / resolves inside the container's root."""
    os.symlink("/", rootfs / "escape")
    volume = root / "vol2"
    volume.mkdir()
    assert copy_up(str(rootfs), "/escape/srv/app", str(volume))
    assert sorted(os.listdir(volume)) == sorted(os.listdir(rootfs / "srv" / "app"))


def test_volume_over_a_file_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter) as exc:
        ensure_mountable(str(rootfs), "/etc/passwd")
    assert str(exc.value) == "cannot mount volume over existing file, file exists /etc/passwd"
    ensure_mountable(str(rootfs), "/etc")
    ensure_mountable(str(rootfs), "/new/dir")


def _none(ref: str) -> list[MountPoint]:
    raise AssertionError(ref)


def _mounted() -> set[str]:
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}
    return set()
