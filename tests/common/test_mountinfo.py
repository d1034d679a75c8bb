"""common/mountinfo.py: the one mountinfo parser, on lines written by hand and on the kernel's own table.

The kernel writes a space, tab, newline or backslash inside a path as `\\ooo` octal; a path with
one of them is only found if it is unescaped, which the real mount below checks.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from common import mountinfo


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("/plain/path", "/plain/path"),
        ("/a\\040b", "/a b"),
        ("/tab\\011here", "/tab\there"),
        ("/new\\012line", "/new\nline"),
        ("/back\\134slash", "/back\\slash"),
        ("/\\134040", "/\\040"),  # an escaped backslash followed by digits stays those digits
        ("/not\\an\\escape\\9", "/not\\an\\escape\\9"),  # the kernel never writes these; kept as they are
        ("/caf\u00e9", "/caf\u00e9"),
    ],
)
def test_unescape(raw: str, path: str) -> None:
    assert mountinfo.unescape(raw) == path


def test_parse_lines_with_and_without_optional_fields() -> None:
    text = (
        "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
        "36 22 0:31 /sub /mnt/with\\040space rw,nosuid master:3 shared:7 - tmpfs tm\\040pfs rw,size=64k\n"
        "40 22 0:40 / /bare rw - proc proc rw\n"
        "not a mountinfo line\n"
    )
    root, spaced, bare = mountinfo.parse(text)
    assert (root.id, root.parent, root.dev) == (22, 1, os.makedev(254, 0))
    assert (root.point, root.optional, root.fstype, root.source, root.super_options) == (
        "/",
        ("shared:1",),
        "ext4",
        "/dev/vda",
        "rw,discard",
    )
    assert (spaced.root, spaced.point, spaced.options) == ("/sub", "/mnt/with space", "rw,nosuid")
    assert (spaced.optional, spaced.source) == (("master:3", "shared:7"), "tm pfs")
    assert (bare.optional, bare.fstype, bare.super_options) == ((), "proc", "rw")
    table = [root, spaced, bare]
    assert mountinfo.is_mount_point("/mnt/with space", table)
    assert not mountinfo.is_mount_point("/mnt/with\\040space", table)
    assert mountinfo.mount_points("/mnt", table) == ["/mnt/with space"]
    holder = mountinfo.mount_of("/mnt/with space/deeper/file", table)
    assert holder is not None and holder.id == 36
    holder = mountinfo.mount_of("/mnt/with spaceX", table)  # a sibling name, not below it
    assert holder is not None and holder.id == 22
    assert mountinfo.top_mount_id("/bare", table) == 40
    assert mountinfo.top_mount_id("/elsewhere", table) == 0


def test_a_stacked_mount_is_the_top_one() -> None:
    text = "1 0 0:1 / / rw - rootfs r rw\n5 1 0:5 / /m rw - tmpfs a rw\n9 5 0:9 / /m rw - tmpfs b rw\n"
    table = mountinfo.parse(text)
    assert mountinfo.top_mount_id("/m", table) == 9
    holder = mountinfo.mount_of("/m/x", table)
    assert holder is not None and holder.source == "b"


@pytest.fixture
def odd_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose path holds a space and a tab (a bundle named by a user), cleaned up whatever
    the test left mounted there."""
    path = tmp_path / "my bundle" / "rootfs\twith tab"
    path.mkdir(parents=True)
    yield path
    while subprocess.run(["umount", "-l", str(path)], capture_output=True).returncode == 0:
        pass


def test_a_bind_mount_on_a_path_with_a_space_and_a_tab_is_seen(odd_dir: Path) -> None:
    path = str(odd_dir)
    assert not mountinfo.is_mount_point(path)
    subprocess.run(["mount", "--bind", path, path], check=True)
    with open("/proc/self/mountinfo") as f:
        raw = f.read()
    assert path.replace(" ", "\\040").replace("\t", "\\011") in raw  # the kernel escaped it
    assert mountinfo.is_mount_point(path)
    assert path in mountinfo.mount_points(str(odd_dir.parent.parent))
    holder = mountinfo.mount_of(os.path.join(path, "inside"))
    assert holder is not None and holder.point == path
    assert holder.id == mountinfo.top_mount_id(path) != 0
    # the same table through /proc/PID/mountinfo of another process in our mount namespace
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert any(m.point == path for m in mountinfo.read(child.pid))
    finally:
        child.kill()
        child.wait()
    subprocess.run(["umount", path], check=True)
    assert not mountinfo.is_mount_point(path)


def test_unmount_all_of_the_shared_mount_package_sees_the_odd_path(odd_dir: Path) -> None:
    # common/mount.py's unmount_all loops while the path is a mount point: with the raw field it
    # would stop at once and leave both mounts.
    from common.mount import unmount_all

    path = str(odd_dir)
    subprocess.run(["mount", "-t", "tmpfs", "one", path], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "two", path], check=True)
    assert [m.source for m in mountinfo.read() if m.point == path] == ["one", "two"]
    unmount_all(path)
    assert not mountinfo.is_mount_point(path)
