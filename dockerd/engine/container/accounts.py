"""The container's users and groups as dockerd reads them: from its own /etc/passwd and
/etc/group (engine/users.py applies runc's lookup rules to them)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dockerd.engine import scoped, users
from dockerd.engine.container import rootfs
from dockerd.engine.container.state import Container
from dockerd.engine.errors import Conflict, InvalidParameter

if TYPE_CHECKING:
    from containerd.client import Mount
    from dockerd.engine.image.service import ImageService


def account_texts(root: int) -> tuple[str | None, str | None]:
    """The container's /etc/passwd and /etc/group below ROOT (None: missing), resolved inside it."""
    texts = [scoped.read_file(root, p, 8 << 20) for p in ("/etc/passwd", "/etc/group")]
    return tuple(t.decode(errors="replace") if t is not None else None for t in texts)  # type: ignore[return-value]


def owners(root: int) -> users.Owners:
    """Who owns what, by name, in the container below ROOT: the names dockerd's tar headers
    give (it looks the ids up in the container's own account files)."""
    return users.owner_names(*account_texts(root))


def account_files(
    images: ImageService, c: Container, top: str, mounts: list[Mount] | None, mount_root: str
) -> tuple[str | None, str | None]:
    """/etc/passwd and /etc/group as dockerd reads them at start: from the container's own
    filesystem (its snapshot, read-only), or the image's (chain TOP) before its first start,
    read once per chain (a view of it mounted, read and unmounted costs a run 20-50 ms)."""
    if mounts is None:

        def read() -> tuple[str | None, str | None]:
            with rootfs.image_root(images.client, f"{c.id}-accounts", top, mount_root) as root:
                return account_texts(root)

        return images.chain_fact(top, "accounts", read) if top else read()
    with rootfs.mounted(mounts, mount_root, readonly=True) as path:
        root = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return account_texts(root)
        finally:
            os.close(root)


def user_of(c: Container, image: Any) -> str:
    """The user the container runs as: its own --user, else the image's."""
    return str(c.config.get("User") or (image.config.get("config") or {}).get("User") or "")


def resolve_exec_user(c: Container, wanted: str) -> users.ExecUser:
    """An exec's --user, in the running container's own account files (its init's root)."""
    try:
        root = os.open(
            f"/proc/{int(c.state.get('Pid') or 0)}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
        )
    except OSError as exc:
        raise Conflict(f"Container {c.id} is not running: {exc.strerror}") from None
    try:
        passwd, group = account_texts(root)
    finally:
        os.close(root)
    return users.resolve(wanted, [str(g) for g in c.host_config.get("GroupAdd") or []], passwd, group)


def account_texts_or_empty(root: int) -> tuple[str, str]:
    """The container's /etc/passwd and /etc/group below ROOT ("" when missing)."""
    texts = [scoped.read_file(root, p, 8 << 20) or b"" for p in ("/etc/passwd", "/etc/group")]
    return texts[0].decode(errors="replace"), texts[1].decode(errors="replace")


def lookup_user(user: str, passwd: str, groups: str) -> tuple[int, int]:
    """uid and gid of USER ("name", "uid", "name:group", ...) in a container's account files."""
    name, _, group = user.partition(":")
    uid = gid = None
    if name.isdigit():
        uid = int(name)
    for line in passwd.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and (parts[0] == name or (name.isdigit() and parts[2] == name)):
            uid, gid = int(parts[2]), int(parts[3])
            break
    if uid is None:
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            gid = next(
                (
                    int(p[2])
                    for p in (g.split(":") for g in groups.splitlines())
                    if len(p) >= 3 and p[0] == group
                ),
                None,
            )
            if gid is None:
                raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")
    return uid, gid or 0
