"""Docker containers on top of pycontainerd: records, lifecycle, logs, exits, restarts.

pydockerd keeps what Docker keeps in /var/lib/docker/containers/<id>: the container's
config and state (config.v2.json), its json-file log, and the files it bind-mounts
(hostname, hosts, resolv.conf). Everything about the running process is containerd's:
a containerd container record, a snapshot keyed by the container id, and a task whose
stdio goes through FIFOs under the exec root. Exits arrive as containerd events.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from common import atomicfile
from containerd.client import Client
from containerd.errors import AlreadyExists as ContainerdAlreadyExists
from containerd.errors import ContainerdError
from containerd.errors import NotFound as ContainerdNotFound
from dockerd.engine import (
    devices,
    filesystem,
    realtime,
    scoped,
    security,
    sharing,
    spec,
    users,
    validate,
)
from dockerd.engine.binds import parse_bind
from dockerd.engine.container import names
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotModified, no_such_container
from dockerd.engine.image.service import ImageService
from dockerd.engine.logs import (
    LogCopier,
    LogFiles,
    LogSettings,
    parse_time,
    read_log,
    reading_not_supported,
    resolve_log_config,
    rfc3339nano,
    stop_copiers,
)
from dockerd.engine.runtimes import OPTIONS_TYPE, SHIM, Runtimes

log = logging.getLogger("pydockerd.containers")

NAMESPACE = "moby"
SPEC_TYPE = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
ZERO_TIME = "0001-01-01T00:00:00Z"

# Config/HostConfig fields pydockerd acts on; any other field with a non-empty value is refused.
SUPPORTED_CONFIG = {
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
    "Env", "Cmd", "Image", "WorkingDir", "Entrypoint", "Labels", "StopSignal", "StopTimeout", "HostConfig",
    "NetworkingConfig", "ExposedPorts", "Volumes", "OnBuild", "ArgsEscaped", "NetworkDisabled", "MacAddress",
    "Healthcheck", "Shell",
}  # fmt: skip
SUPPORTED_HOST = {
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "CpusetCpus",
    "PidsLimit", "RestartPolicy", "AutoRemove", "Binds", "Tmpfs", "Privileged", "CapAdd", "CapDrop", "ReadonlyRootfs",
    "Init", "Ulimits", "SecurityOpt", "ShmSize", "Sysctls", "OomKillDisable", "NetworkMode", "LogConfig",
    "PortBindings", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "ConsoleSize", "Isolation", "CgroupnsMode",
    "IpcMode", "PidMode", "UTSMode", "UsernsMode", "Cgroup", "CgroupParent", "OomScoreAdj", "Runtime", "Devices",
    "DeviceCgroupRules", "BlkioWeight", "KernelMemory", "MemorySwappiness", "Mounts", "VolumesFrom", "Links",
    "GroupAdd", "ContainerIDFile", "PublishAllPorts", "MaskedPaths", "ReadonlyPaths", "Annotations",
    "CpuRealtimePeriod", "CpuRealtimeRuntime",
}  # fmt: skip
# Accepted only at their default values until their issue lands.
NOT_YET = {
    "PortBindings": "port publishing", "Dns": "DNS options", "DnsOptions": "DNS options", "DnsSearch": "DNS options",
    "ExtraHosts": "extra hosts", "Mounts": "the Mounts API (use Binds)", "VolumesFrom": "volumes-from",
    "Links": "links", "Annotations": "annotations", "PublishAllPorts": "port publishing", "Volumes": "volumes", "Healthcheck": "healthchecks",
}  # fmt: skip


now = rfc3339nano


@dataclass
class Container:
    id: str
    name: str
    created: str
    image_id: str
    image_ref: str
    config: dict[str, Any]
    host_config: dict[str, Any]
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    has_been_started: bool = False
    manually_stopped: bool = False
    removal_in_progress: bool = False

    def running(self) -> bool:
        return bool(self.state.get("Running"))

    def status(self) -> str:
        s = self.state
        if s.get("Paused"):
            return "paused"
        if s.get("Restarting"):
            return "restarting"
        if s.get("Running"):
            return "running"
        if self.removal_in_progress:
            return "removing"
        if s.get("Dead"):
            return "dead"
        return "exited" if self.has_been_started else "created"


@dataclass(frozen=True)
class Stop:
    """A container's stops so far (for Docker's wait) and the status of the last one."""

    count: int = 0
    exit_code: int = 0
    error: str = ""


def fresh_state() -> dict[str, Any]:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
        "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }  # fmt: skip


class ContainerEngine:
    def __init__(
        self,
        data_root: str,
        exec_root: str,
        client: Client,
        images: ImageService,
        publish: Callable[..., None],
        cgroup_parent: str = "/pydocker",
        log_driver: str = "json-file",
        log_opts: dict[str, str] | None = None,
        security_defaults: security.SecurityDefaults | None = None,
        runtimes: Runtimes | None = None,
        cpu_rt: tuple[int, int] = (0, 0),
    ) -> None:
        self.cgroup_parent = cgroup_parent
        # The daemon's seccomp-profile, no-new-privileges and default-ulimits.
        self.security = security_defaults or security.SecurityDefaults()
        self.runtimes = runtimes or Runtimes()
        self.cpu_rt_period, self.cpu_rt_runtime = cpu_rt  # daemon --cpu-rt-period/--cpu-rt-runtime
        self.sharing = sharing.Resolver(self.get, self._dir)
        # The daemon's default LogConfig (daemon.json log-driver/log-opts), checked as a container's is.
        self.log_defaults = resolve_log_config({"Type": log_driver, "Config": log_opts or {}}, log_driver, {})
        self.log_files = LogFiles()
        self.root = os.path.join(data_root, "containers")
        self.fifo_root = os.path.join(exec_root, "fifo")
        os.makedirs(self.root, mode=0o710, exist_ok=True)
        os.makedirs(self.fifo_root, mode=0o700, exist_ok=True)
        # Where container and image filesystems are mounted for cp, export, changes (private, ours).
        self.mount_root = os.path.join(data_root, "mnt")
        os.makedirs(self.mount_root, mode=0o700, exist_ok=True)
        filesystem.clean_mount_root(self.mount_root)
        self.rootfs_guard = filesystem.RootfsGuard()
        self.client = client
        self.images = images
        self.publish = publish
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # Waiters that must not hold a thread (the API's wait): told of every state change.
        self._watchers: set[Callable[[], None]] = set()
        self._containers: dict[str, Container] = {}
        self._copiers: dict[str, list[LogCopier]] = {}
        self._exiting: set[str] = set()  # containers whose exit is being recorded
        self._stops: dict[str, Stop] = {}  # the last stop of each container, for waiters
        self._restarting_now: set[str] = set()  # containers a restart policy is starting right now
        # Attached clients per container: queues of (stream, bytes) and (stream, None) at its end.
        self._attached: dict[str, list[queue.Queue[tuple[str, bytes | None]]]] = {}
        self._load()
        import protos

        protos.load()
        from containerd_api.services.containers.v1 import containers_pb2, containers_pb2_grpc
        from containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc

        self._cpb, self._tpb = containers_pb2, tasks_pb2
        self._containers_api = containers_pb2_grpc.ContainersStub(client.channel)
        self._tasks_api = tasks_pb2_grpc.TasksStub(client.channel)

    # --- records ---------------------------------------------------------------------------

    def _dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def _save(self, c: Container) -> None:
        atomicfile.write_text(os.path.join(self._dir(c.id), "config.v2.json"), json.dumps(asdict(c)))

    def _load(self) -> None:
        for cid in os.listdir(self.root):
            try:
                with open(os.path.join(self._dir(cid), "config.v2.json")) as f:
                    self._containers[cid] = Container(**json.load(f))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable container %s: %s", cid, exc)

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without its leading slash)."""
        with self._lock:
            if ref in self._containers:
                return self._containers[ref]
            name = ref.lstrip("/")
            for c in self._containers.values():
                if c.name == name:
                    return c
            matches = [c for c in self._containers.values() if ref and c.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise no_such_container(ref)

    def all(self) -> list[Container]:
        with self._lock:
            return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def log_path(self, c: Container) -> str:
        return os.path.join(self._dir(c.id), f"{c.id}-json.log")

    def save_host_config(self, c: Container, host: dict[str, Any]) -> None:
        """Replace a container's HostConfig (docker update) and persist it."""
        with self._lock:
            c.host_config = host
            self._save(c)

    # --- create ----------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None) -> tuple[Container, list[str]]:
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        host = body.get("HostConfig") or {}
        if not isinstance(host, dict):
            raise InvalidParameter("invalid JSON: HostConfig must be an object")
        validate.check_create(body)
        self._check_fields(body, host)
        self._check_options(body, host)
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("No image specified" if not image_ref else "")
        image = self.images.resolve(image_ref)
        image_config = image.config.get("config") or {}
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        for key in ("Cmd", "Entrypoint", "Shell"):
            if isinstance(config.get(key), str):  # Docker's strslice: a lone string is a one-element list
                config[key] = [config[key]]
        restart = (host.get("RestartPolicy") or {}).get("Name", "") or "no"
        if restart not in ("no", "always", "on-failure", "unless-stopped"):
            raise InvalidParameter(f"invalid restart policy {restart!r}")
        if host.get("AutoRemove") and restart not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        config = spec.merge_image_config(config, image_config)
        args = spec.command(config, image_config)
        if config.get("StopSignal"):
            signal_number(config["StopSignal"])  # as dockerd: a stop signal that does not parse is refused now
        host = dict(host)
        warnings = security.check_at_create(host, spec._capabilities(host), self.security)
        if not host.get("Privileged"):  # as dockerd: the defaults are recorded, inspect shows them
            if host.get("MaskedPaths") is None:
                host["MaskedPaths"] = list(spec.MASKED)
            if host.get("ReadonlyPaths") is None:
                host["ReadonlyPaths"] = list(spec.READONLY)
        if host.get("Memory") and not host.get("MemorySwap"):
            host["MemorySwap"] = host["Memory"] * 2  # dockerd's default: swap as much as memory
        if host.get("PidsLimit") is not None and host["PidsLimit"] <= 0:
            host["PidsLimit"] = None  # 0 and -1 both mean unlimited; dockerd shows null
        log_config = resolve_log_config(host.get("LogConfig"), self.log_defaults.type, self.log_defaults.config)
        host = {**host, "LogConfig": log_config.view()}  # inspect shows the resolved driver and options
        # Whatever the runtime spec refuses (capabilities, security options, binds, ulimits...)
        # is refused now, with nothing created, rather than when the container starts.
        spec.build("0" * 64, config, host, image_config, spec.private_inputs(host), self.root, self.cgroup_parent, self.security)
        host["Runtime"] = self.runtimes.resolve(host.get("Runtime"))  # inspect shows the one it got
        with self._lock:
            taken = {c.name for c in self._containers.values()}
            if name:
                name = names.validate_name(name)
                if name in taken:
                    owner = next(c.id for c in self._containers.values() if c.name == name)
                    raise Conflict(
                        f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                        "You have to remove (or rename) that container to be able to reuse that name."
                    )
            else:
                name = names.generate_name(taken)
            cid = names.new_id()
            c = Container(
                id=cid,
                name=name,
                created=now(),
                image_id=image.id,
                image_ref=image_ref,
                config={**config, "Image": image_ref, "Hostname": config.get("Hostname") or cid[:12]},
                host_config=host,
                path=args[0],
                args=args[1:],
                state=fresh_state(),
            )
            os.makedirs(self._dir(cid), mode=0o710)
            self._write_files(c)
            self._save(c)
            self._containers[cid] = c
        self.publish("container", "create", c.id, {"image": image_ref, "name": c.name})
        return c, warnings

    def _check_fields(self, body: dict[str, Any], host: dict[str, Any]) -> None:
        for key in body:
            if key not in SUPPORTED_CONFIG and body[key] not in (None, "", [], {}, False, 0):
                raise InvalidParameter(f"unsupported container setting {key!r}")
        for key, value in host.items():
            if key not in SUPPORTED_HOST:
                if value not in (None, "", [], {}, False, 0):
                    raise InvalidParameter(f"unsupported HostConfig setting {key!r}")
            elif key in NOT_YET and value not in (None, "", [], {}, False, 0):
                raise InvalidParameter(f"{NOT_YET[key]} ({key}) is not supported yet")
        for key in ("Volumes", "Healthcheck"):
            if body.get(key) not in (None, {}, ""):
                raise InvalidParameter(f"{NOT_YET[key]} ({key}) is not supported yet")
        mode = host.get("NetworkMode") or "default"
        if mode not in ("default", "bridge", "none", ""):
            raise InvalidParameter(f"network mode {mode!r} is not supported yet")
        if host.get("CgroupnsMode") not in (None, "", "private", "host"):
            raise InvalidParameter(f"CgroupnsMode {host.get('CgroupnsMode')!r} is not supported yet")

    def _check_options(self, body: dict[str, Any], host: dict[str, Any]) -> None:
        """What dockerd refuses at create in the options this engine acts on (400s)."""
        spec.normalize_capabilities(host.get("CapAdd") or [], "CapAdd")
        spec.normalize_capabilities(host.get("CapDrop") or [], "CapDrop")
        sharing.check(body, host, self.get)
        devices.mappings(host)
        devices.cgroup_rules(host)
        self.runtimes.resolve(host.get("Runtime"))
        _check_realtime(host)

    def _write_files(self, c: Container) -> None:
        d = self._dir(c.id)
        hostname = c.config["Hostname"]
        with open(os.path.join(d, "hostname"), "w") as f:
            f.write(hostname + "\n")
        with open(os.path.join(d, "hosts"), "w") as f:
            f.write(hosts_file(hostname, str(c.config.get("Domainname") or ""), c.host_config.get("NetworkMode") == "none"))
        resolv = ""
        try:
            with open("/etc/resolv.conf") as f:
                resolv = "".join(line for line in f if not line.startswith("nameserver 127."))
        except OSError:
            pass
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write(resolv)

    # --- start -----------------------------------------------------------------------------

    def start(self, ref: str) -> None:
        c = self.get(ref)
        with self._lock:
            if c.state.get("Paused"):
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.running():
                raise NotModified("container already started")
        self._start(c)

    def _start(self, c: Container) -> None:
        """Start the task; on any failure the container records the error and, with AutoRemove,
        is removed at once (as dockerd's start cleanup): the Docker CLI's `run --rm` waits for
        that removal after a failed start, so a failure that left the container would hang it."""
        try:
            with self.rootfs_guard.hold(c.id):  # a cp into the stopped container has it mounted: let it finish
                self._start_task(c)
        except Exception as exc:
            self._start_failed(c, exc)
            raise

    def _start_failed(self, c: Container, exc: Exception) -> None:
        sharing.unmount_shm(self._dir(c.id))  # a shareable /dev/shm nobody could have joined yet
        with self._lock:
            if c.id in self._containers:
                c.state["Error"] = str(exc)
                if not c.state.get("ExitCode"):
                    c.state["ExitCode"] = 128  # dockerd's default for a start that failed
                self._save(c)
            self._notify()
        if c.host_config.get("AutoRemove"):
            try:
                self.remove(c.id, force=True, volumes=False)
            except EngineError as err:  # removed meanwhile: nothing is left to wake anyone for
                log.warning("removing %s after its failed start: %s", c.id, err)

    def _start_task(self, c: Container) -> None:
        from google.protobuf import any_pb2

        from containerd.client import Snapshots, get_image

        image = self.images.resolve(c.image_id)
        top = self.images.ensure_unpacked(image)
        snaps = Snapshots(self.client, "overlayfs")
        try:
            mounts = snaps.mounts(c.id)
        except ContainerdNotFound:
            mounts = None  # first start: prepared below, once the record names it
        host = c.host_config
        cgroup_parent = host.get("CgroupParent") or self.cgroup_parent
        inputs = self._start_inputs(c, image, top, mounts)
        oci = spec.build(
            c.id, c.config, host, image.config.get("config") or {}, inputs, self._dir(c.id), cgroup_parent, self.security,
        )  # fmt: skip
        spec.make_bind_sources(c.host_config)
        self._tasks_delete_quietly(c.id)
        record = self._cpb.Container(id=c.id, image=get_image(self.client, image.names[0]).name, snapshotter="overlayfs", snapshot_key=c.id)
        record.runtime.name = SHIM
        binary = self.runtimes.binary(host.get("Runtime") or self.runtimes.default)
        if binary is not None:
            options = self._runc_options(binary_name=binary)
            record.runtime.options.CopyFrom(any_pb2.Any(type_url=OPTIONS_TYPE, value=options.SerializeToString()))
        record.spec.CopyFrom(any_pb2.Any(type_url=SPEC_TYPE, value=json.dumps(oci).encode()))
        # The containerd record is updated, never deleted and re-created, and it exists before
        # the snapshot it names: pycontainerd collects garbage on every delete (anyone's), and a
        # snapshot no record refers to (the container's writable layer) would be collected.
        self._put_record(record)
        if mounts is None:
            mounts = filesystem.prepare_writable(snaps, c.id, top, self.mount_root)
        if host.get("IpcMode") == "shareable":
            sharing.mount_shm(self._dir(c.id), spec.shm_size(host))
        if self.cpu_rt_period or self.cpu_rt_runtime:
            realtime.init_parents(cgroup_parent, self.cpu_rt_period, self.cpu_rt_runtime)
        fifos = self._make_fifos(c)
        request = self._tpb.CreateTaskRequest(
            container_id=c.id,
            rootfs=[self._mount_pb(m) for m in mounts],
            stdin=fifos.get("stdin", ""),
            stdout=fifos["stdout"],
            stderr=fifos.get("stderr", ""),
            terminal=bool(c.config.get("Tty")),
        )
        copiers = self._start_copiers(c, fifos)
        try:
            created = self.client.call(self._tasks_api.Create, request)
            self.client.call(self._tasks_api.Start, self._tpb.StartRequest(container_id=c.id))
        except Exception as exc:
            for copier in copiers:
                copier.stop()
            self._tasks_delete_quietly(c.id)
            if not isinstance(exc, ContainerdError):
                raise
            message = str(exc)
            with self._lock:
                c.state.update(Error=message, ExitCode=127 if "not found" in message or "no such file" in message else 126)
                self._save(c)
            raise InvalidParameter(f"failed to create task for container: {message}") from None
        with self._lock:
            self._copiers[c.id] = copiers
            c.state.update(
                Status="running", Running=True, Paused=False, Restarting=False, OOMKilled=False, Dead=False,
                Pid=created.pid, ExitCode=0, Error="", StartedAt=now(),
            )  # fmt: skip
            c.has_been_started = True
            c.manually_stopped = False
            self._save(c)
            self._notify()
        self.publish("container", "start", c.id, {"image": c.image_ref, "name": c.name})

    def log_settings(self, c: Container) -> LogSettings:
        cfg = c.host_config.get("LogConfig") or {}
        return LogSettings(cfg.get("Type") or "json-file", dict(cfg.get("Config") or {}))

    def _start_copiers(self, c: Container, fifos: dict[str, str], adopt: bool = False) -> list[LogCopier]:
        """ADOPT: the task exists already (a restarted daemon), its shim holds the FIFOs, if anyone."""
        settings = self.log_settings(c)
        sink = self.log_files.open(self.log_path(c), settings) if settings.readable else None
        if sink is not None:
            sink.create()
        copiers = [
            LogCopier(c.id, stream, path, sink, live=self._fan_out(c.id), adopt=adopt)
            for stream, path in fifos.items()
            if stream != "stdin"
        ]
        for copier in copiers:
            copier.start()
        return copiers

    def _put_record(self, record: Any) -> None:
        from google.protobuf import field_mask_pb2

        try:
            self.client.call(self._containers_api.Create, self._cpb.CreateContainerRequest(container=record))
        except ContainerdAlreadyExists:
            mask = field_mask_pb2.FieldMask(paths=["spec", "image"])
            self.client.call(self._containers_api.Update, self._cpb.UpdateContainerRequest(container=record, update_mask=mask))

    # --- attach ----------------------------------------------------------------------------

    def _fan_out(self, cid: str) -> Callable[[str, bytes | None], None]:
        def deliver(stream: str, data: bytes | None) -> None:
            with self._lock:
                queues = list(self._attached.get(cid, []))
            for q in queues:
                q.put((stream, data))

        return deliver

    def attach_output(
        self, cid: str, q: queue.Queue[tuple[str, bytes | None]] | None = None
    ) -> queue.Queue[tuple[str, bytes | None]]:
        """Subscribe Q (a fresh queue by default) to the container's output as it arrives."""
        q = q if q is not None else queue.Queue()
        with self._lock:
            self._attached.setdefault(cid, []).append(q)
        return q

    def detach_output(self, cid: str, q: queue.Queue[tuple[str, bytes | None]]) -> None:
        with self._lock:
            queues = self._attached.get(cid, [])
            if q in queues:
                queues.remove(q)

    def stdin_fifo(self, c: Container) -> str | None:
        path = os.path.join(self.fifo_root, c.id, "init-stdin")
        return path if os.path.exists(path) else None

    def streams_of(self, c: Container) -> list[str]:
        return ["stdout"] if c.config.get("Tty") else ["stdout", "stderr"]

    def close_stdin(self, cid: str) -> None:
        try:
            self.client.call(self._tasks_api.CloseIO, self._tpb.CloseIORequest(container_id=cid, stdin=True))
        except ContainerdError as exc:
            log.debug("closing stdin of %s: %s", cid, exc)

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.running():
            raise Conflict(f"Container {c.id} is not running")
        self.client.call(self._tasks_api.ResizePty, self._tpb.ResizePtyRequest(container_id=c.id, width=width, height=height))

    def _mount_pb(self, m: Any) -> Any:
        from containerd_api.types import mount_pb2

        return mount_pb2.Mount(type=m.type, source=m.source, target=getattr(m, "target", ""), options=list(m.options))

    def _make_fifos(self, c: Container) -> dict[str, str]:
        d = os.path.join(self.fifo_root, c.id)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        streams = ["stdout"] if c.config.get("Tty") else ["stdout", "stderr"]
        if c.config.get("OpenStdin"):
            streams.append("stdin")
        paths = {}
        for stream in streams:
            path = os.path.join(d, f"init-{stream}")
            os.mkfifo(path, 0o600)
            paths[stream] = path
        return paths

    def _start_inputs(self, c: Container, image: Any, top: str, mounts: list[Any] | None) -> spec.StartInputs:
        """What the spec needs from outside the container's record: its user (in its own files), the
        namespaces it joins, the host's devices. Refusals here are dockerd's start-time errors."""
        host = c.host_config
        shared = self.sharing.resolve(c, spec.shm_size(host))
        passwd, group = self._account_files(c, top, mounts)
        user = users.resolve(self._user_of(c, image), [str(g) for g in host.get("GroupAdd") or []], passwd, group)
        found, rules = devices.gather(devices.mappings(host))
        return spec.StartInputs(user, shared, found, [*rules, *devices.cgroup_rules(host)])

    @staticmethod
    def _user_of(c: Container, image: Any) -> str:
        return str(c.config.get("User") or (image.config.get("config") or {}).get("User") or "")

    def resolve_exec_user(self, c: Container, wanted: str) -> users.ExecUser:
        """An exec's --user, in the running container's own account files (its init's root)."""
        try:
            root = os.open(f"/proc/{int(c.state.get('Pid') or 0)}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise Conflict(f"Container {c.id} is not running: {exc.strerror}") from None
        try:
            passwd, group = _account_texts(root)
        finally:
            os.close(root)
        return users.resolve(wanted, [str(g) for g in c.host_config.get("GroupAdd") or []], passwd, group)

    def _account_files(self, c: Container, top: str, mounts: list[Any] | None) -> tuple[str | None, str | None]:
        """/etc/passwd and /etc/group as dockerd reads them: from the container's own filesystem
        (its snapshot, read-only), or the image's before its first start."""
        if mounts is None:
            with filesystem.image_root(self.client, f"{c.id}-accounts", top, self.mount_root) as root:
                return _account_texts(root)
        with filesystem.mounted(mounts, self.mount_root, readonly=True) as path:
            root = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return _account_texts(root)
            finally:
                os.close(root)

    @staticmethod
    def _runc_options(**fields: Any) -> Any:
        from protos.gen.containerd_api.types.runc.options import oci_pb2

        return oci_pb2.Options(**fields)

    # --- exits -----------------------------------------------------------------------------

    def task_exited(self, cid: str, exit_status: int, oom: bool = False, finished_at: str | None = None) -> None:
        """One exit, however many report it (the event stream and live restore's listing can both)."""
        with self._lock:
            c = self._containers.get(cid)
            if c is None or not c.running() or cid in self._exiting:
                return
            self._exiting.add(cid)
        try:
            copiers = self._copiers.pop(cid, None)
            if copiers is None:  # exited before a restarted daemon adopted it: what the shim kept goes to the log
                copiers = self._start_copiers(c, self._output_fifos(c), adopt=True)
            for copier in copiers:
                copier.finish()
            # Only now: deleting the task makes the shim drop the output it still holds (spooled
            # while the FIFO was full), and the copiers end once it has delivered everything.
            deleted_status = self._tasks_delete_quietly(cid)
            sharing.unmount_shm(self._dir(cid))
            status = deleted_status if deleted_status is not None else exit_status
            self.log_files.close(self.log_path(c))
            with self._lock:
                c.state.update(Status="exited", Running=False, Paused=False, Pid=0, ExitCode=status, FinishedAt=finished_at or now())
                if oom:
                    c.state["OOMKilled"] = True
                # Restarting is set with the exit, in one step: no one (prune, rm, wait) may see a
                # container its policy restarts as plainly stopped.
                restart = not c.host_config.get("AutoRemove") and self._mark_restarting(c)
                self._stops[cid] = Stop(self._stops.get(cid, Stop()).count + 1, status, str(c.state.get("Error") or ""))
                self._save(c)
                self._notify()
        finally:
            with self._lock:
                self._exiting.discard(cid)
        self.publish("container", "die", cid, {"exitCode": str(status), "image": c.image_ref, "name": c.name})
        if c.host_config.get("AutoRemove"):
            self.remove(cid, force=True, volumes=False)
            return
        if restart:
            self._schedule_restart(c)

    def mark_oom(self, cid: str) -> None:
        with self._lock:
            c = self._containers.get(cid)
            if c is not None:
                c.state["OOMKilled"] = True
                self._save(c)
        self.publish("container", "oom", cid, {})

    def _tasks_delete_quietly(self, cid: str) -> int | None:
        try:
            resp = self.client.call(self._tasks_api.Delete, self._tpb.DeleteTaskRequest(container_id=cid))
            return int(resp.exit_status)
        except ContainerdError:
            return None

    def _maybe_restart(self, c: Container) -> None:
        with self._lock:
            restart = self._mark_restarting(c)
            if restart:
                self._save(c)
        if restart:
            self._schedule_restart(c)

    def _mark_restarting(self, c: Container) -> bool:
        """Under the lock: whether the restart policy restarts `c` now; if so it is marked restarting."""
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        code = c.state.get("ExitCode", 0)
        if c.manually_stopped or name == "no":
            return False
        if name == "on-failure":
            if code == 0:
                return False
            limit = int(policy.get("MaximumRetryCount") or 0)
            if limit and c.restart_count >= limit:
                return False
        c.state["Restarting"] = True
        c.restart_count += 1
        return True

    def _schedule_restart(self, c: Container) -> None:
        delay = min(0.1 * (2 ** (c.restart_count - 1)), 60.0)  # Docker doubles from 100 ms, up to a minute

        def later() -> None:
            time.sleep(delay)
            with self._lock:
                if c.id not in self._containers or c.manually_stopped or c.removal_in_progress:
                    c.state["Restarting"] = False
                    if c.id in self._containers:
                        self._save(c)
                    self._notify()
                    return
                self._restarting_now.add(c.id)  # remove() waits for it: no task may outlive the container
            try:
                self._start(c)
            except Exception as exc:  # noqa: BLE001 - a failed restart is recorded, not fatal
                with self._lock:
                    c.state.update(Restarting=False, Error=str(exc))
                    if c.id in self._containers:
                        self._save(c)
            finally:
                with self._lock:
                    self._restarting_now.discard(c.id)
                    self._notify()

        threading.Thread(target=later, daemon=True, name=f"restart-{c.id[:12]}").start()

    # --- stop, kill, wait ------------------------------------------------------------------

    def kill(self, ref: str, signal: int) -> None:
        c = self.get(ref)
        check_signal(signal, ref)
        if not c.running():
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if signal in (9, 15):
            c.manually_stopped = True
        self.client.call(self._tasks_api.Kill, self._tpb.KillRequest(container_id=c.id, signal=signal, all=False))
        self.publish("container", "kill", c.id, {"signal": str(signal), "name": c.name})
        if signal == 9:
            # As dockerd's Kill: a SIGKILL returns once the exit is recorded (inspect right after shows it).
            self.wait_until(c, lambda: not c.running(), 30)

    def stop(self, ref: str, timeout: int | None, signal: int | None = None) -> None:
        c = self.get(ref)
        if signal is not None:
            check_signal(signal, ref)
        if not c.running():
            with self._lock:
                restarting = bool(c.state.get("Restarting"))
                if restarting:  # between two runs: stopping it cancels the pending restart, as dockerd
                    c.manually_stopped = True
                    c.state["Restarting"] = False
                    self._save(c)
                    self._notify()
            if not restarting:
                raise NotModified("container already stopped")
            self.wait_until(c, lambda: c.id not in self._restarting_now, 60)
            if not c.running():
                self.publish("container", "stop", c.id, {"name": c.name})
                return
        c.manually_stopped = True
        sig = signal or signal_number(c.config.get("StopSignal") or "SIGTERM")
        wait = timeout if timeout is not None else int(c.config.get("StopTimeout") or 10)
        if c.state.get("Paused"):
            self.unpause(c.id)
        try:
            self.client.call(self._tasks_api.Kill, self._tpb.KillRequest(container_id=c.id, signal=sig))
        except ContainerdError:
            pass
        if not self.wait_until(c, lambda: not c.running(), wait if wait >= 0 else None):
            try:
                self.client.call(self._tasks_api.Kill, self._tpb.KillRequest(container_id=c.id, signal=9, all=True))
            except ContainerdError:
                pass
            self.wait_until(c, lambda: not c.running(), 30)
        self.publish("container", "stop", c.id, {"name": c.name})

    def wait_until(self, c: Container, predicate: Callable[[], bool], timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(timeout=min(remaining, 1.0) if remaining is not None else 1.0)
        return True

    def wait_condition(self, ref: str, condition: str) -> tuple[Callable[[], bool], Callable[[], dict[str, Any]]]:
        """Docker's wait: a predicate that holds once `condition` is met, and the answer then.

        As dockerd's State.Wait: `not-running` holds at once for a container that is neither
        running nor restarting, else at its next stop; `next-exit` at its next stop (a restart
        policy starting it again does not matter: the first stop ends the wait); `removed` only
        at removal; and every condition holds once the container is removed.
        """
        c = self.get(ref)
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        with self._lock:
            stops = self._stops.get(c.id, Stop()).count
            already = condition in ("not-running", "") and not c.running() and not c.state.get("Restarting")

        def removed() -> bool:
            return c.id not in self._containers

        def stopped() -> bool:
            return self._stops.get(c.id, Stop()).count > stops

        def done() -> bool:
            if condition == "removed":
                return removed()
            return already or removed() or stopped()

        def result() -> dict[str, Any]:
            with self._lock:
                stop = self._stops.get(c.id)
                if stopped() and stop is not None:  # that stop's status, even if a restart followed
                    return _wait_answer(stop.exit_code, stop.error)
                # A removed container's last error is not reported (dockerd's removal clears it).
                error = "" if removed() else str(c.state.get("Error") or "")
                return _wait_answer(int(c.state.get("ExitCode", 0)), error)

        return done, result

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` (from any thread) whenever a container's state changes; returns the unwatch."""
        with self._lock:
            self._watchers.add(callback)

        def unwatch() -> None:
            with self._lock:
                self._watchers.discard(callback)

        return unwatch

    def _notify(self) -> None:
        with self._lock:
            self._changed.notify_all()
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

    def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.running():
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is already paused")
        self.client.call(self._tasks_api.Pause, self._tpb.PauseTaskRequest(container_id=c.id))
        with self._lock:
            c.state.update(Paused=True, Status="paused")
            self._save(c)
        self.publish("container", "pause", c.id, {"name": c.name})

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is not paused")
        self.client.call(self._tasks_api.Resume, self._tpb.ResumeTaskRequest(container_id=c.id))
        with self._lock:
            c.state.update(Paused=False, Status="running")
            self._save(c)
        self.publish("container", "unpause", c.id, {"name": c.name})

    def restart(self, ref: str, timeout: int | None) -> None:
        c = self.get(ref)
        if c.running():
            self.stop(c.id, timeout)
        self._start(c)

    # --- remove, rename --------------------------------------------------------------------

    def remove(self, ref: str, force: bool, volumes: bool) -> None:
        c = self.get(ref)
        if c.state.get("Restarting") and not c.running():
            if not force:
                raise Conflict(
                    f"You cannot remove a restarting container {c.id}. Stop the container before attempting removal or force remove"
                )
            with self._lock:
                c.manually_stopped = True  # cancels the pending restart
        self.wait_until(c, lambda: c.id not in self._restarting_now, 60)
        if c.running():
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container before attempting removal or force remove"
                )
            c.manually_stopped = True
            try:
                self.client.call(self._tasks_api.Kill, self._tpb.KillRequest(container_id=c.id, signal=9, all=True))
            except ContainerdError:
                pass
            self.wait_until(c, lambda: not c.running(), 30)
        with self._lock:
            if c.removal_in_progress:
                return
            c.removal_in_progress = True
        self._tasks_delete_quietly(c.id)
        for copier in self._copiers.pop(c.id, []):
            copier.stop()
        self.log_files.close(self.log_path(c))
        from containerd.client import Snapshots

        try:
            with self.rootfs_guard.hold(c.id):  # not under a cp that has it mounted
                Snapshots(self.client, "overlayfs").remove(c.id)
        except ContainerdError:
            pass
        try:
            self.client.call(self._containers_api.Delete, self._cpb.DeleteContainerRequest(id=c.id))
        except ContainerdError:
            pass
        shutil.rmtree(os.path.join(self.fifo_root, c.id), ignore_errors=True)
        sharing.unmount_shm(self._dir(c.id))
        shutil.rmtree(self._dir(c.id), ignore_errors=True)
        with self._lock:
            self._containers.pop(c.id, None)
            self._stops.pop(c.id, None)
            self._notify()
        self.publish("container", "destroy", c.id, {"name": c.name, "image": c.image_ref})

    def rename(self, ref: str, new_name: str) -> None:
        if not new_name.strip("/"):
            raise InvalidParameter("Neither old nor new names may be empty")
        c = self.get(ref)
        new_name = names.validate_name(new_name)
        with self._lock:
            if any(o.name == new_name for o in self._containers.values() if o.id != c.id):
                raise Conflict(f'Conflict. The container name "/{new_name}" is already in use')
            old = c.name
            c.name = new_name
            self._save(c)
        self.publish("container", "rename", c.id, {"oldName": f"/{old}", "name": new_name})

    # --- reading ---------------------------------------------------------------------------

    def logs(self, ref: str, **opts: Any) -> Iterator[tuple[str, bytes, str]]:
        """Not a generator: a missing container or a driver that cannot be read fails at the call."""
        c = self.get(ref)
        if not self.log_settings(c).readable:
            raise reading_not_supported()
        follow = opts.pop("follow", False)
        alive = lambda: c.running() and c.id in self._containers  # noqa: E731
        return read_log(self.log_path(c), self.log_files, follow=follow and c.running(), alive=alive, **opts)

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        state = dict(c.state)
        state["Status"] = c.status()
        return {
            "Id": c.id,
            "Created": c.created,
            "Path": c.path,
            "Args": c.args,
            "State": state,
            "Image": c.image_id,
            "ResolvConfPath": os.path.join(self._dir(c.id), "resolv.conf"),
            "HostnamePath": os.path.join(self._dir(c.id), "hostname"),
            "HostsPath": os.path.join(self._dir(c.id), "hosts"),
            # As dockerd: the json-file log once the container has started (its logger made the file).
            "LogPath": self.log_path(c) if c.has_been_started and self.log_settings(c).readable else "",
            "Name": f"/{c.name}",
            "RestartCount": c.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            # As dockerd's inspect: the daemon's default-ulimits merged in (not stored).
            "HostConfig": _host_config_view({**c.host_config, "Ulimits": self.security.merged_ulimits(c.host_config.get("Ulimits")) or None}),
            "GraphDriver": {"Data": None, "Name": "overlay2"},
            "Mounts": _mounts_view(c.host_config),
            "Config": _config_view(c),
            "NetworkSettings": _network_settings(c.host_config),
        }

    def summary(self, c: Container) -> dict[str, Any]:
        return {
            "Id": c.id,
            "Names": [f"/{c.name}"],
            "Image": c.image_ref,
            "ImageID": c.image_id,
            "Command": _summary_command(c.path, c.args),
            "Created": _unix(c.created),
            "Ports": [],
            "Labels": c.config.get("Labels") or {},
            "State": c.status(),
            "Status": _human_status(c),
            "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
            "NetworkSettings": {"Networks": _networks_view(c.host_config)},
            "Mounts": _mounts_view(c.host_config),
        }

    # --- live restore ----------------------------------------------------------------------

    def restore(self) -> None:
        """At daemon start (live restore): adopt the tasks that kept running, record the exits
        that happened while the daemon was down, and resume restart policies."""
        from containerd_api.types.task import task_pb2

        known = self._running_pids()
        tasks = self._list_tasks()
        if tasks is None:
            return
        for c in self.all():
            task = tasks.get(c.id)
            live = task is not None and task.status in (task_pb2.RUNNING, task_pb2.PAUSED)
            if c.id in known:
                if not live:
                    self._exited_meanwhile(c, task, known[c.id])
                else:
                    self._adopt(c, task)
            elif live and not c.running() and c.id not in self._exiting:
                # Started, but the daemon died before it recorded so.
                self._adopt(c, task)
            elif not c.running() and self._restarts_at_boot(c):
                c.state["Restarting"] = False  # the back-off it was in died with the daemon
                c.manually_stopped = False  # (an `always` container stopped by hand starts again too)
                self._maybe_restart(c)

    def reconcile(self) -> None:
        """pycontainerd (re)connected: exits its event stream delivered while nobody listened
        are lost, so compare the running containers with its tasks."""
        from containerd_api.types.task import task_pb2

        known = self._running_pids()
        tasks = self._list_tasks()
        if tasks is None:
            return
        for cid, pid in known.items():
            task = tasks.get(cid)
            c = self._containers.get(cid)
            if c is not None and (task is None or task.status == task_pb2.STOPPED):
                self._exited_meanwhile(c, task, pid)

    def _running_pids(self) -> dict[str, int]:
        # Taken before the task listing: a container started after it is not mistaken for one
        # whose task vanished (its pid differs from the one noted here).
        with self._lock:
            return {c.id: int(c.state.get("Pid") or 0) for c in self._containers.values() if c.running()}

    def _list_tasks(self) -> dict[str, Any] | None:
        try:
            return {t.id: t for t in self.client.call(self._tasks_api.List, self._tpb.ListTasksRequest()).tasks}
        except ContainerdError as exc:
            log.warning("cannot list tasks for live restore: %s", exc)
            return None

    def _exited_meanwhile(self, c: Container, task: Any, pid: int) -> None:
        with self._lock:
            if not c.running() or int(c.state.get("Pid") or 0) != pid:
                return  # already recorded, or started again since the listing
        if task is None:
            # The task is gone with its exit status (its shim died): dockerd reports 255.
            self.task_exited(c.id, 255)
        else:
            self.task_exited(c.id, int(task.exit_status), finished_at=timestamp_text(task.exited_at))

    def _adopt(self, c: Container, task: Any) -> None:
        from containerd_api.types.task import task_pb2

        paused = task.status == task_pb2.PAUSED
        with self._lock:
            if not c.running():
                c.state.update(Status="running", Running=True, Restarting=False, Pid=task.pid, StartedAt=c.state.get("StartedAt") or now())
                c.has_been_started = True
            c.state.update(Paused=paused, Pid=task.pid)
            self._save(c)
            if c.id in self._copiers:
                return
            self._copiers[c.id] = self._start_copiers(c, self._output_fifos(c), adopt=True)
            self._notify()

    def _output_fifos(self, c: Container) -> dict[str, str]:
        fifo_dir = os.path.join(self.fifo_root, c.id)
        paths = {s: os.path.join(fifo_dir, f"init-{s}") for s in ("stdout", "stderr")}
        return {s: p for s, p in paths.items() if os.path.exists(p)}

    def _restarts_at_boot(self, c: Container) -> bool:
        """dockerd's restore: a container started before restarts at daemon start when its policy
        says so with a fresh restart manager (`docker stop` cancelled only the old one): always
        (even if stopped by hand), unless-stopped if not stopped by hand, on-failure after a
        failure (within its retry count); and the back-off the daemon died in is finished."""
        if c.removal_in_progress or not c.has_been_started:
            return False
        name = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
        if name == "always":
            return True
        if c.manually_stopped:
            return False
        if name == "on-failure":
            return int(c.state.get("ExitCode") or 0) != 0
        return name == "unless-stopped" or bool(c.state.get("Restarting"))

    def close(self) -> None:
        """Daemon shutdown: the copiers stop (the shims keep what comes meanwhile for the next daemon)."""
        stop_copiers([copier for copiers in list(self._copiers.values()) for copier in copiers])
        self.log_files.close_all()


HOSTS_DEFAULTS = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)
# The container's own address until pydockerd gives it a network (a later issue): Debian's
# convention for a host name without an address of its own.
OWN_ADDRESS = "127.0.1.1"


def hosts_file(hostname: str, domainname: str, no_network: bool) -> str:
    """/etc/hosts as libnetwork writes it: the defaults, then the container's address with its
    fully qualified name and its short name (none without a network)."""
    if no_network:
        return HOSTS_DEFAULTS
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short = fqdn.split(".", 1)[0]
    names = f"{fqdn} {short}" if fqdn != short else fqdn
    return f"{HOSTS_DEFAULTS}{OWN_ADDRESS}\t{names}\n"


def _account_texts(root: int) -> tuple[str | None, str | None]:
    """The container's /etc/passwd and /etc/group below ROOT (None: missing), resolved inside it."""
    texts = [scoped.read_file(root, p, 8 << 20) for p in ("/etc/passwd", "/etc/group")]
    return tuple(t.decode(errors="replace") if t is not None else None for t in texts)  # type: ignore[return-value]


def _check_realtime(host: dict[str, Any]) -> None:
    period = int(host.get("CpuRealtimePeriod") or 0)
    runtime = int(host.get("CpuRealtimeRuntime") or 0)
    if period > 0 and not realtime.supported():
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time period")
    if runtime > 0 and not realtime.supported():
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time runtime")
    if period and runtime and runtime > period:
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")


def _wait_answer(code: int, error: str) -> dict[str, Any]:
    return {"Error": {"Message": error} if error else None, "StatusCode": code}


def timestamp_text(ts: Any) -> str | None:
    """A protobuf Timestamp as Docker's RFC 3339 text; None when unset."""
    if not ts.seconds and not ts.nanos:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts.seconds)) + f".{ts.nanos:09d}Z"


def signal_number(name: str) -> int:
    """dockerd's ParseSignal: a number (not 0), or a name with or without SIG (RTMIN+n, RTMAX-n too)."""
    import signal

    text = str(name).upper()
    if re.fullmatch(r"[+-]?[0-9]+", text):
        number = int(text)
        if number == 0 or not -(2**63) <= number < 2**63:
            raise InvalidParameter(f"Invalid signal: {name}")
        return number
    text = text.removeprefix("SIG")
    realtime = re.fullmatch(r"RT(MIN|MAX)([+-][0-9]{1,2})?", text)
    if realtime:
        base = int(signal.SIGRTMIN if realtime.group(1) == "MIN" else signal.SIGRTMAX)
        number = base + int(realtime.group(2) or 0)
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return number
    try:
        return int(signal.Signals["SIG" + text])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {name}") from None


def check_signal(number: int, ref: str) -> None:
    """A signal the kernel has (1-31, 34-64); dockerd's wording for one it does not."""
    import signal

    if number not in {int(s) for s in signal.valid_signals()}:
        raise InvalidParameter(f"Cannot kill container: {ref}: The linux daemon does not support signal {number}")


def _summary_command(path: str, args: list[str]) -> str:
    """As dockerd's container list: arguments with a space are single-quoted."""
    return " ".join([path, *(f"'{a}'" if " " in a else a for a in args)])


def _unix(stamp: str) -> int:
    return int(parse_time(stamp))


def _human_status(c: Container) -> str:
    status = c.status()
    if status == "running" or status == "paused":
        since = time.time() - _unix(c.state.get("StartedAt") or c.created)
        text = f"Up {_human_duration(since)}"
        return text + " (Paused)" if status == "paused" else text
    if status == "exited":
        ago = time.time() - _unix(c.state.get("FinishedAt") or c.created)
        return f"Exited ({c.state.get('ExitCode', 0)}) {_human_duration(ago)} ago"
    if status == "restarting":
        return f"Restarting ({c.state.get('ExitCode', 0)}) Less than a second ago"
    return "Created"


def _human_duration(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds" if int(seconds) != 1 else "1 second"
    minutes = seconds / 60
    if minutes < 60:
        return f"{int(minutes)} minutes" if int(minutes) != 1 else "About a minute"
    hours = minutes / 60
    return f"{int(hours)} hours" if int(hours) != 1 else "About an hour"


def _config_view(c: Container) -> dict[str, Any]:
    cfg = dict(c.config)
    defaults = {
        "Hostname": c.id[:12], "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
        "Image": c.image_ref, "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
    }  # fmt: skip
    for key, value in defaults.items():
        cfg.setdefault(key, value)
    if cfg.get("Entrypoint") == [""]:
        cfg["Entrypoint"] = None  # `--entrypoint ""`: dockerd shows no entrypoint at all
    return cfg


def _host_config_view(host: dict[str, Any]) -> dict[str, Any]:
    view = {
        "Binds": None, "NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "AutoRemove": False, "CapAdd": None, "CapDrop": None, "Privileged": False, "ReadonlyRootfs": False,
        "Memory": 0, "MemorySwap": 0, "NanoCpus": 0, "CpuShares": 0, "CpusetCpus": "", "PidsLimit": None,
        "LogConfig": {"Type": "json-file", "Config": {}}, "ShmSize": 67108864, "Init": None, "Tmpfs": None,
        "SecurityOpt": None, "Sysctls": None, "Ulimits": None, "OomKillDisable": False, "MaskedPaths": None,
        "ReadonlyPaths": None,
    }  # fmt: skip
    view.update({k: v for k, v in host.items() if v is not None})
    return view


def _networks_view(host: dict[str, Any]) -> dict[str, Any]:
    """The container's network as dockerd shows it: `none`, or `bridge` for the default mode.
    Containers get no interface but loopback yet (networks have their own issue), so the
    endpoint is dockerd's unconnected one: no IDs, no addresses."""
    mode = host.get("NetworkMode") or "default"
    endpoint = {
        "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "MacAddress": "", "DriverOpts": None,
    }  # fmt: skip
    return {"bridge" if mode == "default" else mode: endpoint}


def _network_settings(host: dict[str, Any]) -> dict[str, Any]:
    """Inspect's NetworkSettings in dockerd's shape, the default endpoint's flat fields included."""
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": _networks_view(host),
    }  # fmt: skip


def _mounts_view(host: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for raw in host.get("Binds") or []:
        try:
            bind = parse_bind(raw)
        except InvalidParameter:
            continue  # (a record from before binds were checked at create)
        out.append({"Type": "bind", "Source": bind.source, "Destination": bind.target, "Mode": bind.mode, "RW": not bind.read_only, "Propagation": bind.propagation})
    return out
