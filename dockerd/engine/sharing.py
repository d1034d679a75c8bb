"""What a container shares with the host or with another container: PidMode, IpcMode, UTSMode
and UsernsMode, as dockerd implements them.

* pid: private (a new namespace), `host` (none), `container:X` (X's init's /proc/PID/ns/pid).
* ipc: `private` (the default, a new namespace and a tmpfs /dev/shm), `none` (a new namespace,
  no /dev/shm), `shareable` (a new namespace; /dev/shm is a tmpfs the daemon mounts under the
  container's directory, so that others can join it), `container:X` (X's namespace and X's
  /dev/shm; X must be shareable, or share with the host), `host` (the host's namespace and
  /dev/shm).
* uts: private or `host` (then the container has no hostname of its own).
* userns: `host` is what every container here gets (pydockerd has no user-namespace remapping).

At create the modes are checked and a donor container X must exist (dockerd's 400 "No such
container"); at start X must be running, with dockerd's wording otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from common import libc
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter

if TYPE_CHECKING:
    from dockerd.engine.container.state import Container

IPC_MODES = ("", "private", "none", "shareable", "host")
HOST_SHM = "/dev/shm"


def _donor(mode: str) -> str | None:
    return mode.split(":", 1)[1] if mode.startswith("container:") else None


def check(config: dict[str, Any], host: dict[str, Any], find: Callable[[str], Container]) -> None:
    """Create-time checks of the modes (400s); FIND looks a donor up (raising when there is none)."""
    pid = str(host.get("PidMode") or "")
    if pid not in ("", "host") and _donor(pid) is None:
        raise InvalidParameter(f"invalid PID mode: {pid}")
    ipc = str(host.get("IpcMode") or "")
    if ipc not in IPC_MODES and _donor(ipc) is None:
        raise InvalidParameter(f"Invalid IPC mode: {ipc}")
    uts = str(host.get("UTSMode") or "")
    if uts not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {uts}")
    if uts == "host" and config.get("Hostname"):
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    if uts == "host" and config.get("Domainname"):
        # dockerd lets runc fail at start; the host's domain name is not the container's to set.
        raise InvalidParameter("conflicting options: domainname and the UTS mode")
    userns = str(host.get("UsernsMode") or "")
    if userns not in ("", "host"):
        raise InvalidParameter(f"invalid USER mode: {userns}")
    for mode in (pid, ipc):
        donor = _donor(mode)
        if donor is None:
            continue
        if not donor:
            raise InvalidParameter('invalid name or ID supplied: ""')
        try:
            find(donor)
        except EngineError:
            raise InvalidParameter(f"No such container: {donor}") from None


@dataclass
class Shared:
    """The spec's namespaces and /dev/shm for one start."""

    namespaces: list[dict[str, str]] = field(default_factory=list)
    shm: dict[str, Any] | None = None  # the /dev/shm mount; None: no /dev/shm (IpcMode none)


def shm_dir(container_dir: str) -> str:
    """Where a shareable container's /dev/shm tmpfs is mounted on the host (dockerd's ShmPath)."""
    return os.path.join(container_dir, "mounts", "shm")


class Resolver:
    """Turns a container's modes into namespaces at start, looking donors up through the engine."""

    def __init__(self, find: Callable[[str], Container], container_dir: Callable[[str], str]) -> None:
        self.find = find
        self.container_dir = container_dir

    def shm_source(self, c: Container) -> str | None:
        """The host directory behind c's /dev/shm when others may share it (None otherwise)."""
        ipc = str(c.host_config.get("IpcMode") or "")
        if ipc == "shareable":
            return shm_dir(self.container_dir(c.id))
        if ipc == "host":
            return HOST_SHM
        donor = _donor(ipc)
        if donor:
            try:
                return self.shm_source(self.find(donor))
            except EngineError:
                return None
        return None

    def resolve(self, c: Container, shm_size: int) -> Shared:
        host = c.host_config
        out = Shared()
        out.namespaces.append({"type": "mount"})
        out.namespaces.append({"type": "network"})
        if (host.get("UTSMode") or "") != "host":
            out.namespaces.append({"type": "uts"})
        pid = str(host.get("PidMode") or "")
        if pid != "host":
            donor = _donor(pid)
            if donor is not None:
                out.namespaces.append({"type": "pid", "path": self._pid_path(donor)})
            else:
                out.namespaces.append({"type": "pid"})
        ipc = str(host.get("IpcMode") or "")
        tmpfs = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]}  # fmt: skip
        if ipc == "host":
            out.shm = _bind(HOST_SHM)
        elif _donor(ipc) is not None:
            ipc_donor = self._ipc_donor(str(_donor(ipc)))
            out.namespaces.append({"type": "ipc", "path": f"/proc/{ipc_donor.state.get('Pid')}/ns/ipc"})
            out.shm = _bind(str(self.shm_source(ipc_donor)))
        else:
            out.namespaces.append({"type": "ipc"})
            if ipc == "shareable":
                out.shm = _bind(shm_dir(self.container_dir(c.id)))
            elif ipc != "none":
                out.shm = tmpfs
        return out

    def _running(self, ref: str, what: str) -> Container:
        try:
            donor = self.find(ref)
        except EngineError as exc:
            raise InvalidParameter(f"{what}: {exc}") from None
        if donor.state.get("Restarting"):
            raise Conflict(f"Container {donor.id} is restarting, wait until the container is running")
        if not donor.running() or not donor.state.get("Pid"):
            raise Conflict(f"container {donor.id} is not running")
        return donor

    def _pid_path(self, ref: str) -> str:
        donor = self._running(ref, f"cannot join PID of a non running container: {ref}")
        return f"/proc/{donor.state.get('Pid')}/ns/pid"

    def _ipc_donor(self, ref: str) -> Container:
        what = f"can't join IPC of container {ref}"
        try:
            donor = self._running(ref, what)
        except Conflict as exc:
            raise Conflict(f"can't join IPC of container {self.find(ref).id}: {exc}") from None
        source = self.shm_source(donor)
        if source is None or not os.path.isdir(source):
            raise InvalidParameter(
                f"can't join IPC of container {donor.id}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
            )
        return donor


def _bind(source: str) -> dict[str, Any]:
    return {"destination": "/dev/shm", "type": "bind", "source": source, "options": ["rbind", "rprivate"]}


# --- the shareable /dev/shm on the host ---------------------------------------------------------


def mount_shm(container_dir: str, size: int) -> None:
    """Mount a shareable container's /dev/shm tmpfs (before its start; kept if already there)."""
    path = shm_dir(container_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.path.ismount(path):
        return
    flags = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
    try:
        libc.mount("shm", path, "tmpfs", flags, f"mode=1777,size={size}")
    except OSError as exc:
        raise EngineError(f"mounting shm tmpfs: {exc.strerror}") from None


def unmount_shm(container_dir: str) -> None:
    """Unmount it (at exit and removal); containers that joined keep their own bind of it."""
    path = shm_dir(container_dir)
    while os.path.ismount(path):
        try:
            libc.umount(path, libc.MNT_DETACH)
        except OSError:
            return
