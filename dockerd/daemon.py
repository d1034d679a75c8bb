"""pydockerd's process-wide pieces: its pycontainerd, the backends the API serves from, the
containerd event listener, metrics."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import atomicfile
from common.unixsock import accepting
from containerd.client import Client, Envelope, Payload
from containerd.client.events import TaskExit, TaskOOM
from dockerd.backends import Backends
from dockerd.builder.backend import BuildBackend
from dockerd.builder.recovery import empty_tmp_dir
from dockerd.buildinfo import read_build_info
from dockerd.engine.container.backend import NAMESPACE, Containers
from dockerd.engine.container.task import timestamp_text
from dockerd.engine.distribution.backend import Distribution
from dockerd.engine.distribution.registry_client import RegistryConfig
from dockerd.engine.events import EventBus
from dockerd.engine.execs import ExecEngine
from dockerd.engine.image.backend import Images
from dockerd.engine.image.service import ImageService
from dockerd.engine.runtimes import Runtimes
from dockerd.engine.security import SecurityDefaults
from dockerd.engine.system import Identity, System
from dockerd.metrics import Metrics, container_states
from dockerd.network.backend import NetworkBackend
from dockerd.network.model import DNSConfig
from dockerd.network.options import NetworkOptions
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.service import VolumeService

VERSION = "20.10.99-pydocker"
log = logging.getLogger("pydockerd")


class DaemonError(Exception):
    pass


def _plugin_dirs(dirs: list[str] | None) -> PluginDirs:
    """--volume-plugin-dir: each directory holds both sockets and spec files; dockerd's by default."""
    return PluginDirs(sockets=tuple(dirs), specs=tuple(dirs)) if dirs else PluginDirs()


# Published to pycontainerd by pydockerd itself, to learn when its event subscription is live.
SUBSCRIBED_TOPIC = "/pydockerd/subscribed"


class Daemon:
    def __init__(
        self,
        data_root: str,
        exec_root: str,
        containerd: str | None,
        cgroup_parent: str = "/pydocker",
        log_driver: str = "json-file",
        log_opts: dict[str, str] | None = None,
        debug: bool = False,
        security: SecurityDefaults | None = None,
        runtimes: Runtimes | None = None,
        cpu_rt: tuple[int, int] = (0, 0),
        registry: RegistryConfig | None = None,
        network: NetworkOptions | None = None,
        dns: DNSConfig | None = None,
        volume_plugin_dirs: list[str] | None = None,
    ) -> None:
        self.debug = debug  # -D / daemon.json "debug": info's Debug
        self.data_root = os.path.abspath(data_root)
        self.exec_root = os.path.abspath(exec_root)
        self.version = VERSION
        self.build = read_build_info()  # now: an upgrade may replace the checkout under the running daemon
        for d in (self.data_root, self.exec_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self.tmp_dir = os.path.join(self.data_root, "tmp")
        os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
        # What a previous run left there (a build's context or mounts, after a crash): nothing
        # in it outlives the request that made it, so it starts empty, as dockerd's tmp dir.
        if removed := empty_tmp_dir(self.tmp_dir):
            log.info("emptied %s: %s", self.tmp_dir, ", ".join(removed))
        self.id = self._engine_id()
        self.owns_containerd = containerd is None
        self._containerd_proc: subprocess.Popen[bytes] | None = None
        self.containerd_address = self._wait_for(containerd) if containerd else self._own_containerd()
        self.client = Client(self.containerd_address, NAMESPACE)
        self.events = EventBus()
        self.metrics = Metrics()
        self.images = ImageService(self.client)
        self.network = NetworkBackend(
            network or NetworkOptions(Path(self.data_root) / "network", Path(self.exec_root) / "netns"),
            lambda action, nid, attrs: self.events.publish("network", action, nid, attrs),
        )
        self.network.start()  # records, built-in networks, bridges and rules, before any container starts
        mapping = security.userns if security is not None else None
        self.volumes = VolumeService(
            self.data_root,
            _plugin_dirs(volume_plugin_dirs),
            publish=self.events.publish,
            root_owner=mapping.root_pair() if mapping is not None else None,
        )
        self.containers = Containers(
            self.data_root, self.exec_root, self.client, self.images, self.events.publish, self.network, cgroup_parent=cgroup_parent,
            log_driver=log_driver, log_opts=log_opts, security_defaults=security, runtimes=runtimes, cpu_rt=cpu_rt,
            tmp_dir=self.tmp_dir, volumes=self.volumes,
        )  # fmt: skip
        self.containers.networking.dns_defaults = dns or DNSConfig()
        self.execs = ExecEngine(self.containers, self.containers.publish)
        self.backends = self._backends(registry or RegistryConfig())
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._listener = threading.Thread(
            target=self._containerd_events, daemon=True, name="containerd-events"
        )

    def _backends(self, registry: RegistryConfig) -> Backends:
        """The objects the API's routers serve from, one per resource."""
        identity = Identity(self.id, self.version, self.data_root, self.debug, self.build)
        distribution = Distribution(self.client, registry, self.events.publish)
        builder = BuildBackend(
            self.client,
            self.images,
            self.containers,
            distribution,
            self.events.publish,
            self.tmp_dir,
            self.version,
            network_hook=self.containers.networking.build_hook(),
        )
        return Backends(
            system=System(
                identity,
                self.client,
                self.containers,
                self.images,
                self.events,
                registry=registry.service_config(),
                build_cache=builder.usage,
            ),
            containers=self.containers,
            execs=self.execs,
            images=Images(
                self.images, self.client, self.containers.all, self.events.publish, self.tmp_dir, self.version
            ),
            distribution=distribution,
            networks=self.containers.networking,
            builder=builder,
            volumes=self.volumes,
        )

    def _engine_id(self) -> str:
        path = os.path.join(self.data_root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = secrets.token_hex(16).upper()
            atomicfile.write_text(path, value, 0o644)
            return value

    def _wait_for(self, address: str, timeout: float = 60.0) -> str:
        """A given pycontainerd (its own service) may still be starting: wait, as dockerd does."""
        address = address.removeprefix("unix://")
        deadline = time.monotonic() + timeout
        while not accepting(address):
            if time.monotonic() > deadline:
                raise DaemonError(f"pycontainerd is not serving {address} (waited {timeout:.0f}s)")
            time.sleep(0.1)
        return address

    def _own_containerd(self) -> str:
        """Start pycontainerd detached (its own session) so that it outlives pydockerd; reuse a live one."""
        address = os.path.join(self.exec_root, "containerd", "pycontainerd.sock")
        if (
            len(address.encode()) > 90
        ):  # within sun_path's limit as grpc counts it: a short path named by a hash
            import hashlib

            digest = hashlib.sha256(self.exec_root.encode()).hexdigest()[:32]
            os.makedirs("/run/pydocker-containerd", mode=0o711, exist_ok=True)
            address = f"/run/pydocker-containerd/{digest}.sock"
        if accepting(address):
            return address
        os.makedirs(os.path.join(self.exec_root, "containerd"), mode=0o711, exist_ok=True)
        logfile = open(
            os.path.join(self.exec_root, "containerd", "pycontainerd.log"), "ab"
        )  # handed to the child
        # -P: `-m` would otherwise put pydockerd's working directory first on pycontainerd's path,
        # so a `containerd` directory there would run instead of the installed one. --no-cri: as
        # dockerd writes disabled_plugins = ["cri"] for the containerd it starts; the plugin
        # would cost this pycontainerd 9 MiB and follow every task event for nothing. -OO: no
        # docstrings (nor asserts, which only narrow types there) held in memory, 1.2 MiB less.
        cmd = [
            sys.executable, "-P", "-OO", "-m", "containerd.main",
            "--root", os.path.join(self.data_root, "containerd"),
            "--state", os.path.join(self.exec_root, "containerd", "state"),
            "--address", address,
            "--no-cri",
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        logfile.close()
        self._containerd_proc = proc
        with open(os.path.join(self.exec_root, "containerd", "pycontainerd.pid"), "w") as f:
            f.write(str(proc.pid))
        deadline = time.monotonic() + 30
        while not accepting(address):
            if proc.poll() is not None or time.monotonic() > deadline:
                log_path = os.path.join(self.exec_root, "containerd", "pycontainerd.log")
                raise DaemonError(f"pycontainerd did not start{_last_words(log_path)} (see {log_path})")
            time.sleep(0.05)
        return address

    def start(self) -> None:
        """Listen to pycontainerd's events, then restore: an exit is either in the task listing
        restore reads or arrives as an event afterwards, never lost in between."""
        self._listener.start()
        if not self._subscribed.wait(30):
            log.warning("no event subscription to pycontainerd yet; restoring anyway")
        self.containers.restore()  # sandboxes too: those of running containers kept, others released
        self.backends.builder.recover()

    def _containerd_events(self) -> None:
        filters = ['topic=="/tasks/exit"', 'topic=="/tasks/oom"', f'topic=="{SUBSCRIBED_TOPIC}"']
        while not self._stop.is_set():
            token = secrets.token_hex(8).encode()
            confirmed = threading.Event()
            try:
                with self.client.events.subscribe(*filters) as subscription:
                    threading.Thread(
                        target=self._confirm_subscription, args=(token, confirmed), daemon=True
                    ).start()
                    for envelope in subscription:
                        self._on_event(envelope, token, confirmed)
            except Exception as exc:  # noqa: BLE001 - resubscribe after pycontainerd restarts
                confirmed.set()
                if self._stop.is_set():
                    return
                log.warning("containerd event stream: %s; reconnecting", exc)
                self._supervise_containerd()
                self._stop.wait(1.0)

    def _on_event(self, envelope: Envelope, token: bytes, confirmed: threading.Event) -> None:
        if envelope.namespace != NAMESPACE:
            return
        if envelope.topic == SUBSCRIBED_TOPIC:
            if envelope.event is not None and envelope.event.value == token and not confirmed.is_set():
                confirmed.set()
                self._on_subscribed()
        elif envelope.topic == "/tasks/exit":
            self._task_exited(envelope.unpack(TaskExit))
        elif envelope.topic == "/tasks/oom":
            self.containers.mark_oom(envelope.unpack(TaskOOM).container_id)

    def _task_exited(self, exit_event: TaskExit) -> None:
        """A process ended: the container's init, or one of its execs (handled in threads of
        their own, so the event stream keeps flowing)."""
        if self.containers.health.owns(exit_event.id):
            return  # a healthcheck probe: its runner waits for it and deletes it
        if exit_event.id == exit_event.container_id:
            threading.Thread(
                target=self.containers.task_exited,
                args=(exit_event.container_id, exit_event.exit_status),
                kwargs={"finished_at": timestamp_text(exit_event.exited_at.ToNanoseconds())},
                daemon=True,
            ).start()
            threading.Thread(
                target=self.execs.container_exited, args=(exit_event.container_id,), daemon=True
            ).start()
        else:  # an exec's process
            threading.Thread(
                target=self.execs.process_exited,
                args=(exit_event.container_id, exit_event.id, exit_event.exit_status),
                daemon=True,
            ).start()

    def _confirm_subscription(self, token: bytes, confirmed: threading.Event) -> None:
        """Publish a marker until it comes back through the new subscription: from then on no
        event can slip past unseen (the Subscribe call gives no other sign that it is live)."""
        marker = Payload("pydockerd/subscribed", token)
        while not confirmed.is_set() and not self._stop.is_set():
            try:
                self.client.events.publish(SUBSCRIBED_TOPIC, marker, timeout=5)
            except Exception as exc:  # noqa: BLE001 - the subscription loop handles a lost pycontainerd
                log.debug("publishing the subscription marker: %s", exc)
            confirmed.wait(0.2)

    def _on_subscribed(self) -> None:
        if not self._subscribed.is_set():
            self._subscribed.set()  # the first time: start() restores now
            return
        log.info("event subscription to pycontainerd restored; reconciling container states")
        threading.Thread(target=self.containers.reconcile, daemon=True, name="reconcile").start()

    def _supervise_containerd(self) -> None:
        """As dockerd does for the containerd it manages: start it again if it died."""
        if not self.owns_containerd or accepting(self.containerd_address):
            return
        proc = self._containerd_proc
        if proc is not None:
            if proc.poll() is None:
                return  # alive, perhaps still starting
        else:  # started by an earlier pydockerd
            try:
                with open(os.path.join(self.exec_root, "containerd", "pycontainerd.pid")) as f:
                    os.kill(int(f.read().strip()), 0)
                return
            except (OSError, ValueError):
                pass
        log.warning("pycontainerd is gone; starting it again")
        try:
            self._own_containerd()
        except DaemonError as exc:
            log.error("%s", exc)

    def stop(self) -> None:
        self._stop.set()
        self.containers.close()
        self.containers.networking.shutdown()  # with no container running: no bridge, rule or mount left
        self.volumes.close()
        self.backends.builder.close()
        self.client.close()

    def render_metrics(self) -> str:
        return self.metrics.render(
            container_states([c.status() for c in self.containers.all()]), self.version
        )


def _last_words(log_path: str) -> str:
    """The last line pycontainerd wrote (it names a store it refused, say), as ": LINE"."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""
