"""The cgroup manager interface and the lifecycle logic shared by v1 and v2.

A manager owns one container's cgroup: a directory per hierarchy (v1) or a single directory (v2).
It remembers which directories it created so destroy() removes exactly those and nothing else.
"""

from __future__ import annotations

import errno
import os
import time

from common.cgroups import CgroupError, all_pids, read_procs, strerror, walk_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# How long destroy() waits for SIGKILLed processes to leave the cgroup.
_EMPTY_TIMEOUT = 5.0

# SIGKILL is 9 on every Linux architecture; naming the number spares importing signal (and the enum
# machinery it loads) on every create. Callers' signal.SIGKILL compares equal to it.
_SIGKILL = 9


def write_file(directory: str, name: str, value: str | int) -> None:
    """Write one value to a cgroup control file, naming the file and the kernel's reason on failure."""
    data = str(value)
    path = os.path.join(directory, name)
    try:
        # One write(2) per value: the kernel parses each write as a whole command.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise CgroupError(f"cgroup: setting {name} to {data} failed: {strerror(err)}", err.errno) from None


def rmdir_retry(path: str, timeout: float = 2.0) -> bool:
    """rmdir a cgroup, retrying while the kernel still reports it busy.

    Returns False if it stayed busy (e.g. a sibling container still lives in a shared parent)."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() >= deadline:
                if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    return False
                raise CgroupError(f"cgroup: removing {path} failed: {strerror(err)}") from None
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class CgroupManager:
    """Base of V1Manager and V2Manager; the per-version operations raise NotImplementedError here.

    A plain base class rather than an ABC: it is imported on every `pyrunc create`."""

    version: int = 0

    def __init__(self, paths: dict[str, str], created: list[str] | None = None) -> None:
        # paths: hierarchy key -> absolute directory ('' is the cgroup2 directory).
        self.paths = dict(paths)
        self.created: list[str] = list(created or [])

    # ---- identity -------------------------------------------------------------------------------

    def dirs(self) -> list[str]:
        """Each distinct directory once (co-mounted v1 controllers share one)."""
        seen: list[str] = []
        for d in self.paths.values():
            if d not in seen:
                seen.append(d)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "paths": dict(self.paths), "created": list(self.created)}

    def mount_sources(self) -> dict[str, str]:
        """What the container's /sys/fs/cgroup should show: '__version__' plus, per hierarchy, its
        host-side name (as under a v1 /sys/fs/cgroup: 'cpu,cpuacct', 'name=systemd', 'unified'
        for cgroup2 in hybrid mode; '' for a v2 host) -> the container's directory in it."""
        out = {"__version__": str(self.version)}
        by_dir: dict[str, list[str]] = {}
        for key, d in self.paths.items():
            by_dir.setdefault(d, []).append(key)
        for d, keys in by_dir.items():
            if keys == [""]:
                out["" if self.version == 2 else "unified"] = d
            else:
                out[",".join(k for k in keys if k)] = d
        return out

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def primary_dir(self) -> str:
        """The directory whose process list is authoritative for pids() and kill_all()."""
        raise NotImplementedError

    # ---- lifecycle ------------------------------------------------------------------------------

    def create(self) -> None:
        made: list[str] = []
        try:
            for d in self.dirs():
                made.extend(self._mkdir_p(d))
                self._prepare(d)
        except BaseException:
            for d in reversed(made):
                rmdir_retry(d, timeout=0.2)
            raise
        self.created.extend(d for d in made if d not in self.created)

    def _mkdir_p(self, directory: str) -> list[str]:
        """mkdir -p, returning the directories this call created, parents first."""
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        made: list[str] = []
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o755)
                made.append(d)
            except FileExistsError:
                # Another container created a shared parent at the same moment: it is theirs.
                continue
            except OSError as err:
                for m in reversed(made):
                    rmdir_retry(m, timeout=0.2)
                raise CgroupError(f"cgroup: creating {d} failed: {os.strerror(err.errno or 0)}") from None
        return made

    def _prepare(self, directory: str) -> None:  # optional hook, no-op by default
        """Hook run after a container directory exists, before any process joins it."""

    def add_process(self, pid: int) -> None:
        for d in self.dirs():
            try:
                write_file(d, "cgroup.procs", pid)
            except CgroupError as err:
                reason = str(err).rsplit(": ", 1)[-1]
                raise CgroupError(
                    f"cgroup: adding process {pid} to {d} failed: {reason}", err.errno
                ) from None

    def pids(self) -> list[int]:
        return all_pids(self.primary_dir())

    def _pids_anywhere(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs():
            found.update(all_pids(d))
        return sorted(found)

    def kill_all(self, sig: int) -> None:
        """Signal every process; freezing first means none can fork a child we would miss."""
        was_frozen = self.is_frozen()
        froze = False
        if not was_frozen:
            try:
                self.freeze()
                froze = True
            except CgroupError:
                # Best effort, as in runc: signal unfrozen rather than not at all.
                pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # A SIGKILLed process only dies once thawed; otherwise restore a paused container.
            if froze or (was_frozen and sig == _SIGKILL):
                self.thaw()

    def destroy(self) -> None:
        if not self.exists():
            self._remove_created()
            return
        # One walk of each hierarchy serves both the check for processes and the removal (a
        # walk reads every file name of every cgroup directory: most of a `delete`'s own work);
        # after a kill the container's processes may have made sub-cgroups, so walk again.
        trees = [walk_dirs(d) for d in self.dirs()]
        if any(read_procs(sub) for tree in trees for sub in tree):
            self._kill_and_wait()
            trees = [walk_dirs(d) for d in self.dirs()]
        for tree in trees:
            # Sub-cgroups the container made for itself (e.g. systemd inside) must go before our dir.
            for sub in reversed(tree[1:]):
                if not rmdir_retry(sub):
                    raise CgroupError(f"cgroup: {sub} is still busy, cannot remove it")
        self._remove_created()

    def _kill_and_wait(self) -> None:
        deadline = time.monotonic() + _EMPTY_TIMEOUT
        next_kill = 0.0
        while True:
            remaining = self._pids_anywhere()
            if not remaining:
                return
            now = time.monotonic()
            if now >= deadline:
                raise CgroupError(
                    f"cgroup: processes {remaining} are still in {self.primary_dir()} after SIGKILL"
                )
            if now >= next_kill:
                self._sigkill_all(remaining)
                next_kill = now + 0.5
            time.sleep(0.01)

    def _sigkill_all(self, pids: list[int]) -> None:
        self.kill_all(_SIGKILL)
        # Processes that are only in a non-primary hierarchy (half-joined) are killed directly.
        for pid in pids:
            try:
                os.kill(pid, _SIGKILL)
            except ProcessLookupError:
                pass
        if self.is_frozen():
            self.thaw()

    def _remove_created(self) -> None:
        leaves = set(self.dirs())
        # Deepest first, so a created parent is only tried once its created children are gone.
        for d in sorted(self.created, key=lambda p: p.count("/"), reverse=True):
            if not os.path.isdir(d):
                continue
            if os.path.ismount(d):
                continue  # never a hierarchy root, whatever a state file says
            if not rmdir_retry(d, timeout=2.0 if d in leaves else 0.0):
                if d in leaves:
                    raise CgroupError(f"cgroup: {d} is still busy, cannot remove it")
                # A parent we created now holds another container's cgroup: leave it (runc never
                # removes parents at all).
        self.created = [d for d in self.created if os.path.isdir(d)]

    # ---- per-version operations -----------------------------------------------------------------

    def set_resources(self, resources: dict[str, Any]) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def is_frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def oom_kill_count(self) -> int:
        raise NotImplementedError
