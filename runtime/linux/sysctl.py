"""Which linux.sysctl entries a container may set: only those of a namespace it has of its own,
as runc's validator allows them. A sysctl of a namespace shared with the host would be written
to the host's (an IPC limit, a network setting, the host's domain name)."""

from __future__ import annotations

import os

from runtime.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The IPC namespace's sysctls (with every fs.mqueue.*).
_IPC = frozenset(
    {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
     "kernel.shmmni", "kernel.shm_rmid_forced"}
)  # fmt: skip


def validate(spec: dict[str, Any]) -> None:
    linux = spec.get("linux") or {}
    namespaces = {ns.get("type"): ns.get("path") or "" for ns in linux.get("namespaces") or []}
    for key in linux.get("sysctl") or {}:
        if key in _IPC or key.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise PyruncError(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
            continue
        if key.startswith("net."):
            if "network" not in namespaces or _is_own_netns(namespaces["network"]):
                raise PyruncError(f'sysctl "{key}" not allowed in host network namespace')
            continue
        if "uts" in namespaces and key == "kernel.domainname":
            continue  # namespaced, and the OCI field came later
        if "uts" in namespaces and key == "kernel.hostname":
            raise PyruncError(f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field')
        raise PyruncError(f'sysctl "{key}" is not in a separate kernel namespace')


def _is_own_netns(path: str) -> bool:
    """Whether a network namespace to join is the one pyrunc runs in ("host" as runc means it)."""
    if not path:
        return False
    try:
        joined, ours = os.stat(path), os.stat("/proc/self/ns/net")
    except OSError as exc:
        raise PyruncError(f"cannot stat network namespace {path}: {exc.strerror}") from None
    return (joined.st_dev, joined.st_ino) == (ours.st_dev, ours.st_ino)
