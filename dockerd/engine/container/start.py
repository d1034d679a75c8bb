"""POST /containers/{id}/start: the containerd record, the writable snapshot, the task.

The OCI spec is built from the record with what only start can look up (the user in the
container's own files, the namespaces it joins, the host's devices: `StartInputs`). The
containerd record is updated, never deleted and re-created, and it exists before the
snapshot it names: pycontainerd collects garbage on every delete (anyone's), and a snapshot
no record refers to (the container's writable layer) would be collected.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from containerd.client import (
    IO,
    SPEC_TYPE,
    AlreadyExists,
    ContainerdError,
    NotFound,
    Payload,
    RuncOptions,
    Runtime,
)
from containerd.client import (
    Container as ContainerRecord,
)
from dockerd.engine import devices, realtime, security, sharing, spec, users
from dockerd.engine.container import accounts, rootfs, task
from dockerd.engine.container.state import Container
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotModified
from dockerd.engine.image.service import ResolvedImage
from dockerd.engine.logs import rfc3339nano
from dockerd.engine.runtimes import SHIM
from dockerd.network.netns import UserNamespace, user_pin
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from containerd.client import Mount
    from dockerd.engine.container.backend import Containers

log = logging.getLogger("pydockerd.containers")
SNAPSHOTTER = "overlayfs"


def start(d: Containers, ref: str) -> None:
    c = d.get(ref)
    with d.store.lock:
        if c.state.get("Paused"):
            raise Conflict("cannot start a paused container, try unpause instead")
        if c.running():
            raise NotModified("container already started")
    run(d, c)


def run(d: Containers, c: Container) -> None:
    """Start the task; on any failure the container records the error and, with AutoRemove,
    is removed at once (as dockerd's start cleanup): the Docker CLI's `run --rm` waits for
    that removal after a failed start, so a failure that left the container would hang it."""
    released(d, c)
    with d.store.lock:
        d.store.starting[c.id] += 1
    try:
        with d.rootfs_guard.hold(c.id):  # a cp into the stopped container has it mounted: let it finish
            _start_task(d, c)
    except Exception as exc:
        _start_failed(d, c, exc)
        raise
    finally:
        with d.store.lock:
            d.store.starting[c.id] -= 1
            if d.store.starting[c.id] <= 0:
                del d.store.starting[c.id]
            d.store.notify()


def released(d: Containers, c: Container) -> None:
    """Wait until the container's last exit has released its resources (network, mounts): its
    stop is recorded first (engine/container/monitor.py)."""
    d.store.wait_until(lambda: c.id not in d.store.exiting, 60)


def _start_failed(d: Containers, c: Container, exc: Exception) -> None:
    sharing.unmount_shm(d.store.dir(c.id))  # a shareable /dev/shm nobody could have joined yet
    d.networking.release(c.id)
    lifecycle.teardown(d, c)
    with d.store.lock:
        if c.id in d.store:
            c.state["Error"] = str(exc)
            if not c.state.get("ExitCode"):
                c.state["ExitCode"] = 128  # dockerd's default for a start that failed
            d.store.save(c)
        d.store.notify()
    if c.host_config.get("AutoRemove"):
        try:
            d.remove(c.id, force=True, volumes=True)  # --rm takes its anonymous volumes, as dockerd
        except EngineError as err:  # removed meanwhile: nothing is left to wake anyone for
            log.warning("removing %s after its failed start: %s", c.id, err)


def _start_task(d: Containers, c: Container) -> None:
    image = d.images.resolve(c.image_id)
    top = d.images.ensure_unpacked(image)
    snaps = d.client.snapshots(SNAPSHOTTER)
    mounts: list[Mount] | None
    try:
        mounts = snaps.mounts(c.id)
    except NotFound:
        mounts = None  # first start: prepared below, once the record names it
    host = c.host_config
    cgroup_parent = host.get("CgroupParent") or d.cgroup_parent
    inputs = _start_inputs(d, c, image, top, mounts)
    inputs.mounts = lifecycle.setup(d, c)  # volume mounts taken: _start_failed releases them
    # the sandbox (engine/network.py), released by _start_failed: its namespace now, its endpoints,
    # ports and files by a thread while containerd makes the task (runc's create only joins the
    # namespace by path), done before the process starts, as dockerd's are
    netns, wire = d.networking.prepare(c, _netns_owner(d, c, inputs.shared.namespaces))
    wiring = _Wiring(wire)
    try:
        copiers, pid = _create_task(d, c, image, top, mounts, inputs, netns, cgroup_parent)
    except BaseException as exc:
        failed = wiring.join()
        if failed is not None:  # it would have come first, the task never made: the start's error
            raise failed from None
        if isinstance(exc, ContainerdError):
            raise _task_error(d, c, exc) from None
        raise
    failed = wiring.join()
    if failed is not None:
        _undo_task(d, c, copiers)
        raise failed
    try:
        d.client.tasks.start(c.id)
    except Exception as exc:
        _undo_task(d, c, copiers)
        if isinstance(exc, ContainerdError):
            raise _task_error(d, c, exc) from None
        raise
    with d.store.lock:
        d.stdio.set_copiers(c.id, copiers)
        c.state.update(
            Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
            Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339nano(),
        )  # fmt: skip
        c.has_been_started = True
        c.manually_stopped = False
        d.store.save(c)
        d.store.notify()
    d.health.started(c)
    d.publish("container", "start", c.id, {"image": c.image_ref, "name": c.name})


def _create_task(
    d: Containers, c: Container, image: ResolvedImage, top: str, mounts: list[Mount] | None,
    inputs: spec.StartInputs, netns: str, cgroup_parent: str,
) -> tuple[list[Any], int]:  # fmt: skip
    """The spec, the containerd record, the writable snapshot, the FIFOs and log copiers, then
    Tasks.Create: the copiers and the init's pid."""
    host = c.host_config
    inputs.link_env = d.networking.link_env(c)
    oci = spec.build(
        c.id, c.config, host, image.config.get("config") or {}, inputs, d.store.dir(c.id), cgroup_parent, d.security,
    )  # fmt: skip
    _join_network(oci, netns)
    _remapped_spec(d, c, oci, netns)
    _give_files_to_root(d, c)
    d.client.containers.create_or_update(_record(d, c, image, oci), ("spec", "image"))
    with d.store.lock:
        d.store.process_specs[c.id] = copy.deepcopy(oci["process"])
    if mounts is None:
        mounts = rootfs.prepare_writable(
            d.client.snapshots(SNAPSHOTTER), c.id, rootfs.layer_parent(d, c, image.id, top), d.mount_root,
            owner=rootfs.root_owner(d, c),
        )  # fmt: skip
    if host.get("IpcMode") == "shareable":
        sharing.mount_shm(d.store.dir(c.id), spec.shm_size(host))
    if d.cpu_rt_period or d.cpu_rt_runtime:
        realtime.init_parents(cgroup_parent, d.cpu_rt_period, d.cpu_rt_runtime)
    fifos = d.stdio.make_fifos(c)
    stdio = IO(
        fifos.get("stdin", ""), fifos["stdout"], fifos.get("stderr", ""), terminal=bool(c.config.get("Tty"))
    )
    copiers = d.stdio.start_copiers(c, fifos)
    with d.store.lock:
        d.store.tasks_deleted.discard(c.id)
    try:
        try:
            pid = d.client.tasks.create(c.id, mounts, stdio)
        except AlreadyExists:  # a task left from a run pydockerd never saw end: gone, then again (dockerd's)
            task.delete_quietly(d.client, c.id)
            pid = d.client.tasks.create(c.id, mounts, stdio)
    except BaseException:
        _undo_task(d, c, copiers)
        raise
    return copiers, pid


def _undo_task(d: Containers, c: Container, copiers: list[Any]) -> None:
    for copier in copiers:
        copier.stop()
    task.delete_quietly(d.client, c.id)


def _task_error(d: Containers, c: Container, exc: ContainerdError) -> InvalidParameter:
    """Tasks.Create or Start failed: containerd's error recorded, and a 400 for the client."""
    # pycontainerd's, shim's and runtime's words: "failed to create shim task: OCI runtime create
    # failed: runc create failed: unable to start container process: ...", as containerd 1.6 and runc 1.1
    message = task.go_message(exc)
    with d.store.lock:
        c.state.update(
            Error=message, ExitCode=127 if "not found" in message or "no such file" in message else 126
        )
        d.store.save(c)
    return InvalidParameter(message)


class _Wiring:
    """WIRE (the sandbox's endpoints, ports and files) run by a thread of its own; `join` waits
    for it and returns its error, if any."""

    def __init__(self, wire: Callable[[], None] | None) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if wire is not None:
            self._thread = threading.Thread(target=self._run, args=(wire,), name="net-wire", daemon=True)
            self._thread.start()

    def _run(self, wire: Callable[[], None]) -> None:
        try:
            wire()
        except BaseException as exc:  # noqa: BLE001 - handed to the start by join()
            self._error = exc

    def join(self) -> BaseException | None:
        if self._thread is not None:
            self._thread.join()
        return self._error


def _netns_owner(d: Containers, c: Container, shared: list[dict[str, str]]) -> UserNamespace | None:
    """Who is to own the container's network namespace with userns-remap: the user namespace of
    the container whose pid or ipc namespace it joins, else a new one with the daemon's mapping
    (pinned next to the network namespace, for the spec to join). runc creates the network
    namespace inside the container's user namespace; the daemon makes it here, so it does."""
    mapping = d.security.userns
    if mapping is None or not security.remapped(c.host_config, d.security):
        return None
    donor = next((ns["path"] for ns in shared if ns.get("path", "").startswith("/proc/")), "")
    if donor:
        return UserNamespace(join=donor.rsplit("/", 1)[0] + "/user")
    uids, gids = mapping.oci()
    return UserNamespace(uid_map=_map_text(uids), gid_map=_map_text(gids))


def _map_text(maps: list[dict[str, int]]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)


def _remapped_spec(d: Containers, c: Container, oci: dict[str, Any], netns: str) -> None:
    """A remapped container's user namespace: the one owning its network namespace (joined by
    path); the ping sysctl, whose gid range the mapping does not cover, left out as dockerd does."""
    if not security.remapped(c.host_config, d.security):
        return
    if "net.ipv4.ping_group_range" not in (c.host_config.get("Sysctls") or {}):
        (oci["linux"].get("sysctl") or {}).pop("net.ipv4.ping_group_range", None)
    user = next(ns for ns in oci["linux"]["namespaces"] if ns["type"] == "user")
    mode = str(c.host_config.get("NetworkMode") or "")
    if mode.startswith("container:"):  # to share a namespace, they share the user namespace (dockerd)
        pid = d.get(mode.split(":", 1)[1]).state.get("Pid")
        user["path"] = f"/proc/{pid}/ns/user"
    elif netns and not user.get("path") and user_pin(Path(netns)).exists():
        user["path"] = str(user_pin(Path(netns)))


def _give_files_to_root(d: Containers, c: Container) -> None:
    """The container's hostname, hosts and resolv.conf belong to the remapped root (dockerd's)."""
    mapping = d.security.userns
    if mapping is None:
        return
    for name in ("hostname", "hosts", "resolv.conf"):
        path = os.path.join(d.store.dir(c.id), name)
        if os.path.exists(path):
            os.chown(path, *mapping.root_pair())


def _join_network(oci: dict[str, Any], netns: str) -> None:
    """The spec's network namespace: the sandbox's (made and wired by the daemon), or the host's ("")."""
    namespaces = oci["linux"]["namespaces"]
    namespaces[:] = [ns for ns in namespaces if ns.get("type") != "network"]
    if netns:
        namespaces.append({"type": "network", "path": netns})
    else:  # as dockerd: the unprivileged-port and ping sysctls are not the host's namespace's to change
        sysctl = oci["linux"].get("sysctl") or {}
        for key in ("net.ipv4.ip_unprivileged_port_start", "net.ipv4.ping_group_range"):
            sysctl.pop(key, None)


def _record(d: Containers, c: Container, image: ResolvedImage, oci: dict[str, object]) -> ContainerRecord:
    """The containerd record: the runtime (its OCI binary as containerd.runc.v1.Options, as
    dockerd hands containerd a configured runtime), the spec, the image, the snapshot."""
    binary = d.runtimes.binary(c.host_config.get("Runtime") or d.runtimes.default)
    options = Payload.message(RuncOptions(binary_name=binary)) if binary is not None else None
    return ContainerRecord(
        id=c.id,
        runtime=Runtime(SHIM, options),
        spec=Payload.json(SPEC_TYPE, oci),
        image=image.names[0],  # from the listing resolve() just read
        snapshotter=SNAPSHOTTER,
        snapshot_key=c.id,
    )


def _start_inputs(
    d: Containers, c: Container, image: ResolvedImage, top: str, mounts: list[Mount] | None
) -> spec.StartInputs:
    """What the spec needs from outside the container's record: its user (in its own files), the
    namespaces it joins, the host's devices. Refusals here are dockerd's start-time errors."""
    host = c.host_config
    shared = d.sharing.resolve(c, spec.shm_size(host))
    passwd, group = accounts.account_files(d.images, c, top, mounts, d.mount_root)
    user = users.resolve(
        accounts.user_of(c, image), [str(g) for g in host.get("GroupAdd") or []], passwd, group
    )
    found, rules = devices.gather(devices.mappings(host))
    return spec.StartInputs(user, shared, found, [*rules, *devices.cgroup_rules(host)])
