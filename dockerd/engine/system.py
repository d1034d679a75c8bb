"""The system backend: GET /version, /info, /events and /system/df (moby's daemon/info.go,
daemon/events.go, daemon/disk_usage.go), from what the other backends know."""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf import empty_pb2

from containerd.client import Client, ContainerdError
from dockerd.buildinfo import UNKNOWN, BuildInfo
from dockerd.engine.events import EventBus

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.image.service import ImageService

log = logging.getLogger("pydockerd")
API_VERSION = "1.41"
MIN_API_VERSION = "1.24"


@dataclass(frozen=True)
class Identity:
    """The daemon's own facts: engine id (`<data-root>/engine-id`), version, settings info shows."""

    id: str
    version: str
    data_root: str
    debug: bool
    build: BuildInfo = BuildInfo(UNKNOWN, UNKNOWN)  # the release and commit it runs, read at start


class System:
    def __init__(
        self,
        identity: Identity,
        client: Client,
        containers: Containers,
        images: ImageService,
        events: EventBus,
        registry: dict[str, Any] | None = None,
        build_cache: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.identity = identity
        self.registry = registry  # info's RegistryConfig (the distribution backend's settings)
        self.client = client
        self.containers = containers
        self.images = images
        self.events_bus = events
        self.build_cache = build_cache  # the builder backend's rows for /system/df

    def version(self) -> dict[str, Any]:
        """GET /version: the engine's details (which `docker version` prints under Server:
        Engine) repeated at the top level as dockerd does, and pycontainerd as a component."""
        engine = {
            "ApiVersion": API_VERSION,
            "Arch": "amd64" if platform.machine() == "x86_64" else platform.machine(),
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": self.identity.build.commit,
            "GoVersion": f"python{platform.python_version()}",
            "KernelVersion": platform.release(),
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        version = self.identity.version
        components: list[dict[str, Any]] = [{"Name": "Engine", "Version": version, "Details": engine}]
        containerd = self._containerd_version()
        if containerd is not None:
            components.append(
                {"Name": "containerd", "Version": containerd[0], "Details": {"GitCommit": containerd[1]}}
            )
        top = {k: v for k, v in engine.items() if k != "Experimental"}
        platform_name = f"pydocker {self.identity.build.release}"
        return {"Platform": {"Name": platform_name}, "Components": components, "Version": version, **top}

    def _containerd_version(self) -> tuple[str, str] | None:
        """(version, revision) of pycontainerd, None while it does not answer."""
        try:
            # A short deadline of its own: `docker version` must not wait for a busy or restarting pycontainerd.
            reply = self.client.call(self.client.api.version.Version, empty_pb2.Empty(), timeout=5)
        except ContainerdError as exc:
            log.debug("no containerd version: %s", exc)
            return None
        return str(reply.version), str(reply.revision)

    def info(self) -> dict[str, Any]:
        """GET /info."""
        containers = self.containers.all()
        running = sum(1 for c in containers if c.running() and not c.state.get("Paused"))
        paused = sum(1 for c in containers if c.state.get("Paused"))
        ident = self.identity
        return {
            "ID": ident.id,
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": len(self.images.all()),
            "Driver": "overlay2",
            "DriverStatus": _driver_status(ident.data_root),
            "Plugins": {
                "Volume": self.containers.volumes.driver_names(),
                "Network": [],
                "Authorization": None,
                "Log": ["json-file", "none"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": False,
            "Debug": ident.debug,
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": threading.active_count(),
            "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
            "LoggingDriver": self.containers.log_defaults.type,  # daemon.json log-driver
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "1" if not os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "2",
            "NEventsListener": self.events_bus.listeners(),
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "NCPU": os.cpu_count() or 1,
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "DockerRootDir": ident.data_root,
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": ident.version,
            "Runtimes": dict(sorted(self.containers.runtimes.info().items())),  # Go encodes maps sorted
            "DefaultRuntime": self.containers.runtimes.default,
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "docker-init",
            "SecurityOptions": self.containers.security.security_options(),
            "Warnings": [],
            "RegistryConfig": self.registry,
            **self._host_facts(),
        }

    def _host_facts(self) -> dict[str, Any]:
        """The rest of dockerd's info: kernel features, proxies, components' commits, swarm."""
        containerd = self._containerd_version()
        revision = containerd[1] if containerd is not None else ""
        v1 = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        return {
            "KernelMemory": v1,
            "KernelMemoryTCP": v1,
            "OomKillDisable": v1,
            "BridgeNfIptables": _sysctl_on("net/bridge/bridge-nf-call-iptables"),
            "BridgeNfIp6tables": _sysctl_on("net/bridge/bridge-nf-call-ip6tables"),
            "GenericResources": None,
            "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
            "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or "",
            "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or "",
            "ContainerdCommit": {"ID": revision, "Expected": revision},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            # Never part of a swarm (routers/swarm.py): dockerd's answer for an inactive node.
            "Swarm": {
                "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False, "Error": "",
                "RemoteManagers": None,
            },
        }  # fmt: skip

    def events(self, filters: dict[str, Any], since: float | None, until: float | None) -> Iterator[bytes]:
        """GET /events: the history since SINCE, then live events until UNTIL, as JSON lines."""
        return self.events_bus.stream(filters, since, until)

    def disk_usage(self) -> dict[str, Any]:
        """GET /system/df (the containers backend measures: container/sizes.py; the build
        cache is the builder backend's)."""
        usage = self.containers.disk_usage()
        if self.build_cache is not None:
            rows = self.build_cache()
            usage["BuildCache"] = rows or None  # dockerd's nil slice: null while there is no cache
            usage["BuilderSize"] = sum(int(row["Size"]) for row in rows)
        return usage


def _os_name(path: str = "/etc/os-release") -> str:
    """The host's PRETTY_NAME, as dockerd's operatingsystem package reads it."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _sysctl_on(name: str) -> bool:
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# moby's fsmagic names for the filesystems a data root is usually on
_BACKING_FS = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "overlay": "overlayfs"}


def _driver_status(data_root: str) -> list[list[str]]:
    """overlay2's status lines as dockerd shows them: the data root's filesystem, d_type (which
    overlayfs needs, so always true here), native diffs, no userxattr (not rootless)."""
    from common import mountinfo

    try:
        mount = mountinfo.mount_of(os.path.realpath(data_root))
    except OSError:
        mount = None
    backing = _BACKING_FS.get(mount.fstype, mount.fstype) if mount is not None else "<unknown>"
    return [
        ["Backing Filesystem", backing],
        ["Supports d_type", "true"],
        ["Native Overlay Diff", "true"],
        ["userxattr", "false"],
    ]
