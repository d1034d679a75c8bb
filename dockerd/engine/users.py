"""A container's user as dockerd resolves it: uid, gid and supplementary groups from the
container's own /etc/passwd and /etc/group, with runc's lookup rules (libcontainer/user's
GetExecUser and GetAdditionalGroups), which dockerd calls before it writes the spec.

* USER is `name|uid[:group|gid]`; an empty USER is uid 0. A uid without a passwd entry is
  used as it is; a name without one is an error.
* Without an explicit group the gid is the passwd entry's, and every group whose member
  list names the user is a supplementary group; with one, there are none.
* `--group-add` entries are group names or gids (a gid need not exist in /etc/group).
* The primary gid is always the first supplementary group, as in the specs dockerd 20.10
  writes (so `id` shows `groups=`); duplicates go.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockerd.engine.errors import InvalidParameter

MAX_ID = (1 << 31) - 1


@dataclass(frozen=True)
class Entry:
    name: str
    id: int
    gid: int = 0  # passwd only
    members: tuple[str, ...] = ()  # group only


@dataclass
class ExecUser:
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)  # supplementary, the primary gid first


def _parse(text: str | None, kind: str) -> list[Entry]:
    entries = []
    for line in (text or "").splitlines():
        parts = line.strip().split(":")
        if not parts[0] or parts[0].startswith("#"):
            continue
        try:
            if kind == "passwd" and len(parts) >= 4:
                entries.append(Entry(parts[0], int(parts[2]), int(parts[3])))
            elif kind == "group" and len(parts) >= 3:
                members = tuple(m for m in (parts[3].split(",") if len(parts) > 3 else []) if m)
                entries.append(Entry(parts[0], int(parts[2]), members=members))
        except ValueError:
            continue  # as runc: a malformed line matches nothing
    return entries


Owners = tuple[dict[int, str], dict[int, str]]  # uid -> user name, gid -> group name


def owner_names(passwd: str | None, group: str | None) -> Owners:
    """uid -> user name and gid -> group name from a container's account files, the first entry
    of an id winning (as the user lookups that name the owners in dockerd's tar headers)."""
    users: dict[int, str] = {}
    groups: dict[int, str] = {}
    for entry in _parse(passwd, "passwd"):
        users.setdefault(entry.id, entry.name)
    for entry in _parse(group, "group"):
        groups.setdefault(entry.id, entry.name)
    return users, groups


def _numeric(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidParameter("uids and gids must be in range 0-2147483647")
    return value


def resolve(user: str, group_add: list[str], passwd: str | None, group: str | None) -> ExecUser:
    """USER and HostConfig.GroupAdd against the container's account files (None: file missing)."""
    name, _, group_arg = user.partition(":")
    uid_arg = _numeric(name)
    found = next((u for u in _parse(passwd, "passwd") if _is_user(u, name, uid_arg)), None)
    out = ExecUser()
    matched = ""
    if found is not None:
        matched, out.uid, out.gid = found.name, found.id, found.gid
    elif name:
        if uid_arg is None:
            raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
        out.uid = uid_arg
    groups = _parse(group, "group")
    supplementary: list[int] = []
    if group_arg:
        gid_arg = _numeric(group_arg)
        match = next(
            (g for g in groups if (g.id == gid_arg if gid_arg is not None else g.name == group_arg)), None
        )
        if match is not None:
            out.gid = match.id
        elif gid_arg is None:
            raise InvalidParameter(f"unable to find group {group_arg}: no matching entries in group file")
        else:
            out.gid = gid_arg
    elif matched:
        supplementary = [g.id for g in groups if matched in g.members]
    out.groups = _unique([out.gid, *supplementary, *additional_groups(group_add, groups)])
    return out


def _is_user(entry: Entry, name: str, uid: int | None) -> bool:
    if not name:
        return entry.id == 0  # no USER: root, with whatever its passwd entry says
    return entry.id == uid if uid is not None else entry.name == name


def additional_groups(wanted: list[str], groups: list[Entry]) -> list[int]:
    gids = []
    for item in wanted:
        match = next((g for g in groups if g.name == item or str(g.id) == item), None)
        if match is not None:
            gids.append(match.id)
            continue
        gid = _numeric(item)
        if gid is None:
            raise InvalidParameter(f"Unable to find group {item}: no matching entries in group file")
        gids.append(gid)
    return gids


def _unique(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))
