"""The backend of the /containers routes (and of exec, the images in use, system info): the
container records and every verb on them, one module per verb or concern, each a function
of this object (moby's daemon methods, one file per verb):

    create.py         POST /containers/create
    start.py          POST /containers/{id}/start (containerd record, snapshot, task)
    stop.py           POST /containers/{id}/stop, /kill, /restart; signals
    pause.py          POST /containers/{id}/pause, /unpause
    wait.py           POST /containers/{id}/wait
    delete.py         DELETE /containers/{id}
    rename.py         POST /containers/{id}/rename
    inspect.py        GET /containers/{id}/json, the rows of GET /containers/json (list.py)
    stdio.py          FIFOs, logs (GET /containers/{id}/logs), attach, resize, stdin
    top.py            GET /containers/{id}/top
    stats.py          GET /containers/{id}/stats
    update.py         POST /containers/{id}/update
    sizes.py          sizes (`ps -s`, inspect's size) and GET /system/df
    prune.py          POST /containers/prune
    copy.py           HEAD, GET, PUT /containers/{id}/archive (`docker cp`)
    export.py         GET /containers/{id}/export
    changes.py        GET /containers/{id}/changes
    rootfs.py         where those reach the container's files; the init layer's snapshot
    accounts.py       users and groups in the container's own files
    monitor.py        task exits and OOMs (from the containerd event listener)
    restart_policy.py restart policies and their back-off
    restore.py        live restore and reconciliation with pycontainerd's tasks
    state.py          the records, their persistence, waiting for a change
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

from containerd.client import Client
from dockerd.engine import security, sharing, userns
from dockerd.engine.container import (
    changes,
    copy,
    create,
    delete,
    export,
    inspect,
    monitor,
    pause,
    prune,
    rename,
    restore,
    rootfs,
    sizes,
    start,
    stats,
    stop,
    top,
    update,
    wait,
)
from dockerd.engine.container import list as container_list
from dockerd.engine.container.state import Container, ContainerStore
from dockerd.engine.container.stdio import Output, Stdio
from dockerd.engine.events import ContainerAttributes, Publish
from dockerd.engine.filters import Filters
from dockerd.engine.image.service import ImageService
from dockerd.engine.logs import resolve_log_config
from dockerd.engine.network import Networking
from dockerd.engine.runtimes import Runtimes
from dockerd.health.containers import ContainerHealth
from dockerd.network.backend import NetworkBackend
from dockerd.volumes.service import VolumeService

NAMESPACE = "moby"  # pydockerd's containerd namespace, as dockerd's


class Containers:
    def __init__(
        self,
        data_root: str,
        exec_root: str,
        client: Client,
        images: ImageService,
        publish: Publish,
        network: NetworkBackend,
        cgroup_parent: str = "/pydocker",
        log_driver: str = "json-file",
        log_opts: dict[str, str] | None = None,
        security_defaults: security.SecurityDefaults | None = None,
        runtimes: Runtimes | None = None,
        cpu_rt: tuple[int, int] = (0, 0),
        tmp_dir: str = "",
        volumes: VolumeService | None = None,
    ) -> None:
        self.client = client
        self.tmp_dir = tmp_dir or os.path.join(data_root, "tmp")  # spooled archives (cp, export)
        self.images = images
        self.publish = publish
        self.cgroup_parent = cgroup_parent
        # The daemon's seccomp-profile, no-new-privileges and default-ulimits.
        self.security = security_defaults or security.SecurityDefaults()
        self.runtimes = runtimes or Runtimes()
        self.cpu_rt_period, self.cpu_rt_runtime = cpu_rt  # daemon --cpu-rt-period/--cpu-rt-runtime
        # The daemon's default LogConfig (daemon.json log-driver/log-opts), checked as a container's is.
        self.log_defaults = resolve_log_config({"Type": log_driver, "Config": log_opts or {}}, log_driver, {})
        self.store = ContainerStore(os.path.join(data_root, "containers"))
        userns.share_with_root(self.store.root, self.security.userns)  # its files are bind-mounted in
        self.publish = ContainerAttributes(publish, self.store.find)  # labels, image and name, as dockerd's
        self.data_root = data_root
        # The volume service (dockerd/volumes/): create, start, stop, rm and restore call it.
        self.volumes = volumes if volumes is not None else VolumeService(data_root)
        self.stdio = Stdio(os.path.join(exec_root, "fifo"), self.store, client)
        self.sharing = sharing.Resolver(self.get, self.store.dir)
        # Sandboxes, endpoints, ports at start/exit/rm; NetworkSettings; the /networks routes' backend.
        self.networking = Networking(network, self.get, self.all, self.store.dir, self.store.save)
        # Where container and image filesystems are mounted for cp, export, changes (private, ours).
        self.mount_root = os.path.join(data_root, "mnt")
        os.makedirs(self.mount_root, mode=0o700, exist_ok=True)
        rootfs.clean_mount_root(self.mount_root)
        self.rootfs_guard = rootfs.RootfsGuard()
        # Healthchecks (dockerd/health/): the verbs tell it of starts, exits, pauses, removals.
        self.health = ContainerHealth(self.store, client, os.path.join(exec_root, "fifo"), self.publish)
        # Cleared while the daemon restores: a restart its policy schedules meanwhile waits, so that
        # the release of stopped containers' sandboxes cannot take the one that restart just made.
        self.restored = threading.Event()
        self.restored.set()

    # --- records -------------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without its leading slash)."""
        return self.store.get(ref)

    def all(self) -> list[Container]:
        """Newest first."""
        return self.store.all()

    def save_host_config(self, c: Container, host: dict[str, Any]) -> None:
        """Replace a container's HostConfig (docker update) and persist it."""
        with self.store.lock:
            c.host_config = host
            self.store.save(c)

    # --- the verbs -------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None) -> tuple[Container, list[str]]:
        return create.create(self, body, name)

    def start(self, ref: str) -> None:
        start.start(self, ref)

    def stop(self, ref: str, timeout: int | None, signal: int | None = None) -> None:
        stop.stop(self, ref, timeout, signal)

    def kill(self, ref: str, signal: int) -> None:
        stop.kill(self, ref, signal)

    def restart(self, ref: str, timeout: int | None) -> None:
        stop.restart(self, ref, timeout)

    def pause(self, ref: str) -> None:
        pause.pause(self, ref)

    def unpause(self, ref: str) -> None:
        pause.unpause(self, ref)

    def wait_condition(
        self, ref: str, condition: str
    ) -> tuple[Callable[[], bool], Callable[[], dict[str, Any]]]:
        return wait.wait_condition(self, ref, condition)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a container's state changes; returns the unwatch."""
        return self.store.watch(callback)

    def remove(self, ref: str, force: bool, volumes: bool) -> None:
        delete.remove(self, ref, force, volumes)

    def rename(self, ref: str, new_name: str) -> None:
        rename.rename(self, ref, new_name)

    def list_containers(
        self, show_all: bool, limit: int, filters: dict[str, Any], size: bool = False
    ) -> list[dict[str, Any]]:
        """GET /containers/json (list.py), with sizes (sizes.py) when SIZE."""
        container_list.check_filters(filters)
        chosen = container_list.select(self, show_all, limit, filters)
        rows = sizes.sized_summaries(self, chosen) if size else [inspect.summary(self, c) for c in chosen]
        return container_list.with_shown_images(self, chosen, rows)

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        info = inspect.inspect(self, c)
        return sizes.with_sizes(self, c, info) if size else info

    def top(self, ref: str, ps_args: str) -> dict[str, Any]:
        return top.top(self, ref, ps_args)

    def stats(self, ref: str, stream: bool, one_shot: bool) -> AsyncIterator[bytes]:
        return stats.stats(self, ref, stream, one_shot)

    def update(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        return update.update(self, ref, body)

    def prune(self, filters: Filters) -> dict[str, Any]:
        return prune.prune_containers(self, filters)

    def disk_usage(self) -> dict[str, Any]:
        """GET /system/df (the system backend's)."""
        return sizes.disk_usage(self)

    # --- the filesystem: cp (copy.py), export, changes -------------------------------------------

    def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        return copy.stat_path(self, ref, path)

    def archive(self, ref: str, path: str) -> tuple[dict[str, Any], IO[bytes]]:
        return copy.archive(self, ref, path)

    def extract(
        self, ref: str, path: str, body: IO[bytes], *, no_overwrite_dir_non_dir: bool, copy_uid_gid: bool
    ) -> None:
        copy.extract(
            self,
            ref,
            path,
            body,
            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
            copy_uid_gid=copy_uid_gid,
        )

    def export(self, ref: str) -> IO[bytes]:
        return export.export(self, ref)

    def changes(self, ref: str) -> list[dict[str, Any]] | None:
        return changes.changes(self, ref)

    # --- stdio (stdio.py) ------------------------------------------------------------------------

    def logs(self, ref: str, **opts: Any) -> Iterator[tuple[str, bytes, str]]:
        """Not a generator: a missing container or a driver that cannot be read fails at the call."""
        return self.stdio.logs(self.get(ref), **opts)

    def resize(self, ref: str, height: int, width: int) -> None:
        self.stdio.resize(self.get(ref), height, width)

    def attach_output(self, cid: str, q: Output | None = None) -> Output:
        return self.stdio.attach_output(cid, q)

    def detach_output(self, cid: str, q: Output) -> None:
        self.stdio.detach_output(cid, q)

    def stdin_fifo(self, c: Container) -> str | None:
        return self.stdio.stdin_fifo(c)

    def streams_of(self, c: Container) -> list[str]:
        return self.stdio.streams_of(c)

    def close_stdin(self, cid: str) -> None:
        self.stdio.close_stdin(cid)

    # --- what pycontainerd reports (monitor.py, restore.py) ------------------------------------

    def task_exited(
        self, cid: str, exit_status: int, oom: bool = False, finished_at: str | None = None
    ) -> None:
        monitor.task_exited(self, cid, exit_status, oom, finished_at)

    def mark_oom(self, cid: str) -> None:
        monitor.mark_oom(self, cid)

    def restore(self) -> None:
        """Live restore (moby's daemon.restore): the containers first (adopted, exits recorded,
        restarts scheduled), then their sandboxes (those of running containers kept, served again;
        every other one released), and only then may the scheduled restarts make new ones."""
        self.restored.clear()
        try:
            restore.restore(self)
            self.networking.restore({c.id for c in self.all() if c.running()})
        finally:
            self.restored.set()

    def reconcile(self) -> None:
        restore.reconcile(self)

    def close(self) -> None:
        """Daemon shutdown: the copiers stop (the shims keep what comes meanwhile for the next daemon)."""
        self.health.close()
        self.stdio.close()
