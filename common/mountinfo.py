"""/proc/PID/mountinfo, parsed once for every layer (proc(5), "mountinfo").

One line per mount:

    36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    id parent dev root point     options    optional... - fstype source super-options

Fields are separated by single spaces; the kernel writes a space, tab, newline or backslash
inside a path (root, mount point, source) as a backslash and three octal digits (`\\040`,
`\\011`, `\\012`, `\\134`), so a split on spaces is exact and every path must be unescaped
before it is compared with one of ours: a bundle under "/run/my tasks" is listed as
"/run/my\\040tasks".

Import-light (os only): pyrunc, which looks up mount points while it creates a container,
and the shim use it.
"""

from __future__ import annotations

import os

_OCTAL = frozenset("01234567")


class Mount:
    """One line of mountinfo; paths unescaped. Treated as an immutable value."""

    __slots__ = (
        "id",
        "parent",
        "dev",
        "root",
        "point",
        "options",
        "optional",
        "fstype",
        "source",
        "super_options",
    )

    def __init__(
        self,
        id: int,
        parent: int,
        dev: int,
        root: str,
        point: str,
        options: str,
        optional: tuple[str, ...],
        fstype: str,
        source: str,
        super_options: str,
    ) -> None:
        self.id = id
        self.parent = parent
        self.dev = dev  # st_dev of the files on this mount (os.makedev(major, minor))
        self.root = root  # the directory of the filesystem that is mounted here ("/" unless a bind)
        self.point = point
        self.options = options  # per-mount options: "rw,nosuid,relatime"
        self.optional = optional  # propagation: ("shared:12", "master:3"), () for a private mount
        self.fstype = fstype
        self.source = source
        self.super_options = super_options  # the filesystem's options: "rw,size=65536k"

    def __repr__(self) -> str:
        return f"Mount(id={self.id}, point={self.point!r}, fstype={self.fstype!r}, source={self.source!r})"

    def holds(self, path: str) -> bool:
        """Is PATH (absolute, normalised) this mount point or below it?"""
        point = self.point
        return path == point or point == "/" or path.startswith(point + "/")


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes (`\\040` -> " "); a backslash not followed by three octal
    digits is kept as it is (the kernel never writes one, but a parser must not invent bytes)."""
    if "\\" not in field:
        return field
    pieces = field.split("\\")
    out = [pieces[0]]
    for piece in pieces[1:]:
        code = piece[:3]
        if len(code) == 3 and _OCTAL.issuperset(code):
            out.append(chr(int(code, 8)) + piece[3:])
        else:
            out.append("\\" + piece)
    return "".join(out)


def parse_line(line: str) -> Mount | None:
    """One mountinfo line (without its newline), or None if it is not one."""
    fields = line.split(" ")
    try:
        sep = fields.index("-", 6)
        major, minor = fields[2].split(":")
        return Mount(
            int(fields[0]),
            int(fields[1]),
            os.makedev(int(major), int(minor)),
            unescape(fields[3]),
            unescape(fields[4]),
            fields[5],
            tuple(fields[6:sep]),
            unescape(fields[sep + 1]),
            unescape(fields[sep + 2]),
            fields[sep + 3] if len(fields) > sep + 3 else "",
        )
    except (ValueError, IndexError):
        return None


def parse(text: str) -> list[Mount]:
    """Every mount of a mountinfo table, in the kernel's order (a mount stacked on another at the
    same point comes after it)."""
    table = []
    for line in text.split("\n"):
        if line:
            mount = parse_line(line)
            if mount is not None:
                table.append(mount)
    return table


def read_text(pid: int | str = "self") -> str:
    """The raw table of /proc/PID/mountinfo. OSError if PID is gone."""
    # os.read rather than open(): mountinfo is generated per read, and a raw fd needs no text layer
    # (nor a codec module: paths are decoded as UTF-8, undecodable bytes kept as surrogates, the way
    # os.fsdecode gives them for our own paths).
    fd = os.open(f"/proc/{pid}/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "surrogateescape")


def read(pid: int | str = "self") -> list[Mount]:
    """The mount table of process PID (its mount namespace, seen from its root)."""
    return parse(read_text(pid))


def is_mount_point(path: str, table: list[Mount] | None = None) -> bool:
    """Is something mounted on PATH (an absolute path as the kernel shows it: no symlinks)?
    os.path.ismount cannot tell a bind mount within one filesystem."""
    return any(m.point == path for m in (read() if table is None else table))


def mount_points(under: str = "/", table: list[Mount] | None = None) -> list[str]:
    """Mount points at or below UNDER (resolved), in mount order."""
    base = os.path.realpath(under)
    return [m.point for m in (read() if table is None else table) if m.point == base or _below(m.point, base)]


def _below(path: str, base: str) -> bool:
    return base == "/" or path.startswith(base + "/")


def mount_of(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount PATH (absolute, normalised) is on: the longest mount point holding it, the top one
    of a stack. None only for a table without "/" (a process whose root is not a mount point)."""
    best: Mount | None = None
    for m in read() if table is None else table:
        if m.holds(path) and (best is None or len(m.point) >= len(best.point)):
            best = m
    return best


def top_mount_id(path: str, table: list[Mount] | None = None) -> int:
    """The id of the mount on top at PATH (0 if PATH is no mount point)."""
    found = 0
    for m in read() if table is None else table:
        if m.point == path:
            found = m.id  # a mount stacked on another is listed after it
    return found
