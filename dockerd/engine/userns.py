"""daemon.json `userns-remap` / --userns-remap: every container's root mapped to a subordinate
uid/gid range, as dockerd does it.

* The value is a user (name or uid) with an optional group, or `default`, which creates (once)
  the `dockremap` user and its /etc/subuid and /etc/subgid ranges with shadow's useradd and
  usermod, as dockerd's AddNamespaceRangesUser does. The user's ranges, sorted, map container
  ids 0, 1, ... in order (dockerd's createIDMap).
* The daemon's state moves to `<data-root>/<uid>.<gid>/` (uid and gid: the host ids of the
  container's root), 0710 and group-owned by the remapped root so that it can reach its
  files; every directory above it must let it through, or the daemon refuses to start.
* Image layers stay as pycontainerd unpacked them; a container's writable snapshot grows from
  a remapped copy of the image's chain (containerd's WithRemappedSnapshot): a snapshot in
  which every file's owner is moved into the range, made once per image and mapping and kept
  alive by a label on the image's config blob, so the image's removal collects it. (Measured on
  this host's kernel 6.18: an idmapped bind of a layer directory, open_tree + mount_setattr with
  MOUNT_ATTR_IDMAP, works as an overlayfs lower and would spare the copy, as containerd 2.0's
  snapshotter does; it needs the shim to mount through idmapped lowers, which it does not yet.
  util-linux 2.38's `mount -o X-mount.idmap=` silently ignores the option.)
* Volumes' `_data` directories and the bind sources the daemon creates belong to the remapped
  root; each container gets a user namespace with the mapping (linux.uidMappings/gidMappings),
  unless it asks for `--userns=host`.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockerd.engine.errors import InvalidParameter

DEFAULT_SPECIFIER = "default"
DEFAULT_USER = "dockremap"
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"
# dockerd's range for a dockremap it creates: above every existing range, 65536 ids long.
DEFAULT_RANGE_START, DEFAULT_RANGE_SIZE = 100000, 65536
GC_REF_SNAPSHOT = "containerd.io/gc.ref.snapshot.overlayfs"


@dataclass(frozen=True)
class IDMap:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class IdentityMapping:
    user: str
    group: str
    uids: tuple[IDMap, ...]
    gids: tuple[IDMap, ...]

    def root_pair(self) -> tuple[int, int]:
        return self.uid_to_host(0), self.gid_to_host(0)

    def uid_to_host(self, uid: int) -> int:
        return _to_host(self.uids, uid)

    def gid_to_host(self, gid: int) -> int:
        return _to_host(self.gids, gid)

    def oci(self) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
        """linux.uidMappings and linux.gidMappings."""
        return _oci(self.uids), _oci(self.gids)

    def dir_name(self) -> str:
        uid, gid = self.root_pair()
        return f"{uid}.{gid}"


def _to_host(maps: tuple[IDMap, ...], cid: int) -> int:
    for m in maps:
        if m.container_id <= cid < m.container_id + m.size:
            return m.host_id + cid - m.container_id
    raise ValueError(f"Container ID {cid} cannot be mapped to a host ID")


def _oci(maps: tuple[IDMap, ...]) -> list[dict[str, int]]:
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.size} for m in maps]


# --- the daemon's setting -----------------------------------------------------------------------


def load(value: str, run: Callable[[list[str]], None] | None = None) -> IdentityMapping | None:
    """The mapping `userns-remap` names, None for none; InvalidParameter with dockerd's words.
    RUN runs shadow's tools for `default` (subprocess by default)."""
    if not value:
        return None
    user, group = _parse_remapped_root(value, run or _run_tool)
    if user == "root":
        return None  # root remapped to itself is no remapping (dockerd warns and goes on)
    try:
        uids = _id_maps(SUBUID, user, "subuid")
        gids = _id_maps(SUBGID, group, "subgid")
    except InvalidParameter as exc:
        raise InvalidParameter(f"Can't create ID mappings: {exc}") from None
    return IdentityMapping(user, group, uids, gids)


def _parse_remapped_root(value: str, run: Callable[[list[str]], None]) -> tuple[str, str]:
    """dockerd's parseRemappedRoot: (user name, group name)."""
    parts = value.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f'Invalid user/group specification in --userns-remap: "{value}"')
    group = ""
    if _is_int32(parts[0]):
        uid = int(parts[0])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            raise InvalidParameter(
                f"Uid {uid} has no entry in /etc/passwd: {_getent(str(uid), 'passwd')}"
            ) from None
        if len(parts) == 1:
            try:
                group = grp.getgrgid(uid).gr_name
            except KeyError:
                raise InvalidParameter(
                    f"Gid {uid} has no entry in /etc/group: {_getent(str(uid), 'group')}"
                ) from None
    else:
        lookup = DEFAULT_USER if parts[0] == DEFAULT_SPECIFIER else parts[0]
        try:
            user = pwd.getpwnam(lookup).pw_name
        except KeyError:
            if parts[0] != DEFAULT_SPECIFIER:
                raise InvalidParameter(
                    f'Error during uid lookup for "{lookup}": {_getent(lookup, "passwd")}'
                ) from None
            _add_default_user(run)
            return DEFAULT_USER, DEFAULT_USER
        if len(parts) == 1:
            try:
                group = grp.getgrnam(lookup).gr_name
            except KeyError:
                raise InvalidParameter(
                    f'Error during gid lookup for "{lookup}": {_getent(lookup, "group")}'
                ) from None
    if len(parts) == 2:
        group = _group(parts[1])
    return user, group


def _group(spec: str) -> str:
    if _is_int32(spec):
        try:
            return grp.getgrgid(int(spec)).gr_name
        except KeyError:
            raise InvalidParameter(
                f"Gid {spec} has no entry in /etc/passwd: {_getent(spec, 'group')}"
            ) from None
    try:
        return grp.getgrnam(spec).gr_name
    except KeyError:
        raise InvalidParameter(
            f'Error during groupname lookup for "{spec}": {_getent(spec, "group")}'
        ) from None


def _getent(key: str, database: str) -> str:
    """dockerd's words when its getent lookup finds nothing."""
    return f'getent unable to find entry "{key}" in {database} database'


def _is_int32(text: str) -> bool:
    try:
        return -(2**31) <= int(text, 10) < 2**31
    except ValueError:
        return False


def _id_maps(path: str, name: str, kind: str) -> tuple[IDMap, ...]:
    """NAME's ranges in /etc/subuid or /etc/subgid (by name or number), sorted, mapped in order."""
    ids = {name}
    with contextlib.suppress(KeyError):
        ids.add(str(pwd.getpwnam(name).pw_uid) if kind == "subuid" else str(grp.getgrnam(name).gr_gid))
    ranges = sorted(r for owner, r in read_ranges(path) if owner in ids)
    if not ranges:
        raise InvalidParameter(
            f'no {kind} ranges found for {"user" if kind == "subuid" else "group"} "{name}"'
        )
    maps, next_id = [], 0
    for start, size in ranges:
        maps.append(IDMap(next_id, start, size))
        next_id += size
    return tuple(maps)


def read_ranges(path: str) -> list[tuple[str, tuple[int, int]]]:
    """(owner, (start, size)) for each well-formed line of a subordinate-id file."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and not line.startswith("#") and parts[1].isdigit() and parts[2].isdigit():
            found.append((parts[0], (int(parts[1]), int(parts[2]))))
    return found


def _add_default_user(run: Callable[[list[str]], None]) -> None:
    """dockerd's AddNamespaceRangesUser: a system user `dockremap` (its group too) and, when it
    has none, one subordinate range of each kind above every range the files hold."""
    try:
        run(["useradd", "--system", "--shell", "/bin/false", "--user-group", DEFAULT_USER])
        for path, flag in ((SUBUID, "--add-subuids"), (SUBGID, "--add-subgids")):
            ranges = read_ranges(path)
            if not any(owner == DEFAULT_USER for owner, _ in ranges):
                start = next_range_start(sorted(r for _, r in ranges))
                run(["usermod", flag, f"{start}-{start + DEFAULT_RANGE_SIZE - 1}", DEFAULT_USER])
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InvalidParameter(f'Error during "{DEFAULT_USER}" user creation: {exc}') from None


def next_range_start(ranges: list[tuple[int, int]]) -> int:
    """dockerd's findNextRangeStart: from 100000 up, past every (sorted) range the candidate
    would touch."""
    start = DEFAULT_RANGE_START
    for first, size in ranges:
        low, high = start, start + DEFAULT_RANGE_SIZE
        if first <= low <= first + size or first <= high <= first + size:
            start = first + size
    return start


def _run_tool(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


# --- the data root ----------------------------------------------------------------------------


def setup_data_root(data_root: str, mapping: IdentityMapping) -> str:
    """`<data-root>/<uid>.<gid>`, made (0710, root:remapped gid) with its parent, every directory
    above checked to let the remapped root through (dockerd's setupDaemonRoot); returns it."""
    uid, gid = mapping.root_pair()
    top = os.path.abspath(data_root)
    root = os.path.join(top, mapping.dir_name())
    for path in (top, root):
        os.makedirs(path, mode=0o710, exist_ok=True)
        os.chown(path, os.getuid(), gid)
        os.chmod(path, 0o710)
    parent = root
    while True:
        parent = os.path.dirname(parent)
        if parent == "/":
            break
        if not can_traverse(parent, uid, gid):
            raise InvalidParameter(
                f"a subdirectory in your graphroot path ({root}) restricts access to the remapped root "
                "uid/gid; please fix by allowing 'o+x' permissions on existing directories"
            )
    return root


def can_traverse(path: str, uid: int, gid: int) -> bool:
    """Whether UID:GID (no capabilities) may search the directory PATH (idtools.CanAccess)."""
    st = os.stat(path)
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def share_with_root(path: str, mapping: IdentityMapping | None) -> None:
    """A daemon directory the container's root must reach (containers/, a container's own):
    0710, group-owned by the remapped root (no-op without remapping)."""
    if mapping is None:
        return
    os.chown(path, os.getuid(), mapping.root_pair()[1])
    os.chmod(path, 0o710)


def chown_to_root(path: str, mapping: IdentityMapping | None) -> None:
    """A directory the daemon made for the container's root to own (a volume's _data, a bind source)."""
    if mapping is not None:
        os.chown(path, *mapping.root_pair())


# --- the image's files --------------------------------------------------------------------------


def remap_tree(root: str, mapping: IdentityMapping) -> None:
    """Move every owner under ROOT (a mounted snapshot) into the mapping's range; no symlink is
    followed, a hard-linked file is moved once. An owner the mapping does not cover is refused
    (ValueError), as dockerd's ToHost."""
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.stat(top)
        os.chown(top, mapping.uid_to_host(st.st_uid), mapping.gid_to_host(st.st_gid))
        os.chmod(top, st.st_mode & 0o7777)
        _remap_children(top, mapping, set())
    finally:
        os.close(top)


def _remap_children(dir_fd: int, mapping: IdentityMapping, seen: set[tuple[int, int]]) -> None:
    for entry in os.scandir(dir_fd):
        st = entry.stat(follow_symlinks=False)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        uid, gid = mapping.uid_to_host(st.st_uid), mapping.gid_to_host(st.st_gid)
        os.chown(entry.name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            continue
        if st.st_mode & 0o6000:  # chown clears the set-id bits; the image's stay
            os.chmod(entry.name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
        if stat.S_ISDIR(st.st_mode):
            child = os.open(
                entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
            )
            try:
                _remap_children(child, mapping, seen)
            finally:
                os.close(child)


def remapped_parent(
    client: Any, top: str, config_digest: str, mapping: IdentityMapping, mount: Callable[[list[Any]], Any]
) -> str:
    """The snapshot a remapped container's writable layer grows from: the image's chain TOP with
    every owner moved into the range, committed once as `<top>-<uid>-<gid>` (containerd's key)
    and referenced from the image's config blob, so that it lives as long as the image.
    MOUNT(mounts) is a context manager yielding the mounted path."""
    from containerd.client import Snapshots
    from containerd.client.errors import AlreadyExists, ContainerdError

    snaps = Snapshots(client, "overlayfs")
    uid, gid = mapping.root_pair()
    key = f"{top}-{uid}-{gid}"
    with client.lease():
        if not snaps.exists(key):
            work = f"{key}-remap-{os.urandom(4).hex()}"
            mounts = snaps.prepare(work, top)
            try:
                with mount(mounts) as path:
                    remap_tree(path, mapping)
                with contextlib.suppress(AlreadyExists):  # another start committed it first
                    snaps.commit(key, work)
            finally:
                with contextlib.suppress(ContainerdError):
                    snaps.remove(work)
        client.content.update_labels(config_digest, {f"{GC_REF_SNAPSHOT}/userns-{uid}-{gid}": key})
    return key
