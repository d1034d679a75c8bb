"""The user a container runs as, as containerd's CRI decides it (WithUser/WithUserID/WithAdditionalGIDs).

run_as_user (and run_as_group) in the security context win; run_as_username, or the image's
`User` ("uid", "uid:gid", "name", "name:group"), is looked up in the container's own /etc/passwd
and /etc/group, read through READ (a function of the rootfs path, None when there is no such
file). The groups a user is a member of in /etc/group and the pod's supplemental groups are added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from containerd.cri.spec import User
from containerd.errors import InvalidArgument

Reader = Callable[[str], "str | None"]


def _entries(text: str | None) -> list[list[str]]:
    if not text:
        return []
    return [
        line.split(":")
        for line in text.splitlines()
        if line and not line.startswith("#") and line.count(":") >= 2
    ]


def _lookup_user(name: str, passwd: str | None) -> tuple[int, int, str]:
    for fields in _entries(passwd):
        if fields[0] == name or (name.isdigit() and fields[2] == name):
            return int(fields[2]), int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else 0, fields[0]
    if name.isdigit():
        return int(name), 0, ""
    raise InvalidArgument(f"no users found: unable to find user {name}: no matching entries in passwd file")


def _lookup_group(name: str, group: str | None) -> int:
    if name.isdigit():
        return int(name)
    for fields in _entries(group):
        if fields[0] == name:
            return int(fields[2])
    raise InvalidArgument(f"unable to find group {name}: no matching entries in group file")


def _member_gids(username: str, group: str | None) -> list[int]:
    if not username:
        return []
    return [
        int(f[2]) for f in _entries(group) if len(f) > 3 and username in f[3].split(",") and f[2].isdigit()
    ]


def resolve_user(
    image_config: Mapping[str, Any],
    read: Reader | None,
    run_as_user: int | None,
    run_as_group: int | None,
    supplemental: Sequence[int],
    run_as_username: str = "",
) -> User:
    if run_as_group is not None and run_as_user is None and not run_as_username:
        raise InvalidArgument("user group is specified without user")
    passwd = read("/etc/passwd") if read else None
    group = read("/etc/group") if read else None
    username = ""
    if run_as_user is not None:
        uid, gid, username = _lookup_user(str(run_as_user), passwd)
    elif run_as_username:
        uid, gid, username = _lookup_user(run_as_username, passwd)
    else:
        spec = str((image_config.get("config") or {}).get("User") or "")
        user_part, _, group_part = spec.partition(":")
        if user_part:
            uid, gid, username = _lookup_user(user_part, passwd)
        else:
            uid, gid, username = _lookup_user("0", passwd)
        if group_part:
            gid = _lookup_group(group_part, group)
    if run_as_group is not None:
        gid = run_as_group
    # containerd 1.6 (WithAdditionalGIDs, then the supplemental groups): the primary group first,
    # then the user's groups in /etc/group, then the request's
    extra = [gid]
    extra += [g for g in _member_gids(username, group) if g not in extra]
    extra += [g for g in supplemental if g not in extra]
    return User(uid, gid, tuple(extra))
