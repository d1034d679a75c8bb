"""pydockerd's process-wide pieces: its pycontainerd, the engine, events and metrics."""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from containerd.client import Client
from dockerd.engine.containers import NAMESPACE, ContainerEngine
from dockerd.engine.images import ImageService

VERSION = "20.10.99-pydocker"
log = logging.getLogger("pydockerd")


class DaemonError(Exception):
    pass


class EventBus:
    """Docker's /events: every engine action, kept for `since` and fanned out to listeners."""

    def __init__(self, history: int = 1000) -> None:
        self._lock = threading.Lock()
        self._history: list[dict[str, Any]] = []
        self._limit = history
        self._listeners: list[queue.Queue[dict[str, Any]]] = []

    def publish(self, kind: str, action: str, actor: str, attributes: dict[str, str]) -> None:
        t = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor, "Attributes": attributes},
            "scope": "local",
            "time": t // 1_000_000_000,
            "timeNano": t,
        }
        if kind == "container":
            event.update(status=action, id=actor, **({"from": attributes["image"]} if "image" in attributes else {}))
        with self._lock:
            self._history = (self._history + [event])[-self._limit :]
            for q in self._listeners:
                q.put(event)

    def listeners(self) -> int:
        with self._lock:
            return len(self._listeners)

    def stream(self, filters: dict[str, Any], since: float | None, until: float | None) -> Iterator[bytes]:
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            backlog = [e for e in self._history if since is not None and e["time"] >= since]
            self._listeners.append(q)
        try:
            for event in backlog:
                if until is not None and event["time"] > until:
                    return
                if _event_matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
            while True:
                if until is not None and time.time() > until:
                    return
                try:
                    event = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if until is not None and event["time"] > until:
                    return
                if _event_matches(event, filters):
                    yield json.dumps(event).encode() + b"\n"
        finally:
            with self._lock:
                self._listeners.remove(q)


def _event_matches(event: dict[str, Any], filters: dict[str, Any]) -> bool:
    for key, wanted in filters.items():
        values = list(wanted) if isinstance(wanted, (list, dict)) else [wanted]
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and event["Action"] not in values:
            return False
        if key == "container" and event["Type"] == "container":
            attrs = event["Actor"]["Attributes"]
            if not any(event["Actor"]["ID"].startswith(v) or attrs.get("name") == v for v in values):
                return False
        if key == "label":
            attrs = event["Actor"]["Attributes"]
            if not all(attrs.get(v.partition("=")[0]) == v.partition("=")[2] if "=" in v else v in attrs for v in values):
                return False
    return True


class Metrics:
    """Prometheus text for --metrics-addr: request latency and containers by state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def observe(self, method: str, seconds: float) -> None:
        with self._lock:
            self.count[method] = self.count.get(method, 0) + 1
            self.seconds[method] = self.seconds.get(method, 0.0) + seconds

    def render(self, states: dict[str, int]) -> str:
        lines = ["# TYPE pydockerd_containers gauge"]
        lines += [f'pydockerd_containers{{state="{s}"}} {n}' for s, n in sorted(states.items())]
        lines.append("# TYPE pydockerd_api_request_seconds summary")
        with self._lock:
            for method in sorted(self.count):
                lines.append(f'pydockerd_api_request_seconds_count{{method="{method}"}} {self.count[method]}')
                lines.append(f'pydockerd_api_request_seconds_sum{{method="{method}"}} {self.seconds[method]:.6f}')
        return "\n".join(lines) + "\n"


class Daemon:
    def __init__(self, data_root: str, exec_root: str, containerd: str | None, cgroup_parent: str = "/pydocker") -> None:
        self.data_root = os.path.abspath(data_root)
        self.exec_root = os.path.abspath(exec_root)
        self.version = VERSION
        for d in (self.data_root, self.exec_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        self.tmp_dir = os.path.join(self.data_root, "tmp")
        os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
        self.id = self._engine_id()
        self.containerd_address = containerd or self._own_containerd()
        self.client = Client(self.containerd_address, NAMESPACE)
        self.events = EventBus()
        self.metrics = Metrics()
        self.images = ImageService(self.client)
        self.containers = ContainerEngine(
            self.data_root, self.exec_root, self.client, self.images, self.events.publish, cgroup_parent=cgroup_parent
        )
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._containerd_events, daemon=True, name="containerd-events")

    def _engine_id(self) -> str:
        path = os.path.join(self.data_root, "engine-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = secrets.token_hex(16).upper()
            with open(path, "w") as f:
                f.write(value)
            return value

    def _own_containerd(self) -> str:
        """Start pycontainerd detached (its own session) so that it outlives pydockerd; reuse a live one."""
        address = os.path.join(self.exec_root, "containerd", "pycontainerd.sock")
        if len(address.encode()) > 90:  # within sun_path's limit as grpc counts it: a short path named by a hash
            import hashlib

            digest = hashlib.sha256(self.exec_root.encode()).hexdigest()[:32]
            os.makedirs("/run/pydocker-containerd", mode=0o711, exist_ok=True)
            address = f"/run/pydocker-containerd/{digest}.sock"
        if _accepting(address):
            return address
        os.makedirs(os.path.join(self.exec_root, "containerd"), mode=0o711, exist_ok=True)
        logfile = open(os.path.join(self.exec_root, "containerd", "pycontainerd.log"), "ab")  # noqa: SIM115 - handed to the child
        cmd = [
            sys.executable, "-m", "containerd.main",
            "--root", os.path.join(self.data_root, "containerd"),
            "--state", os.path.join(self.exec_root, "containerd", "state"),
            "--address", address,
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
        logfile.close()
        with open(os.path.join(self.exec_root, "containerd", "pycontainerd.pid"), "w") as f:
            f.write(str(proc.pid))
        deadline = time.monotonic() + 30
        while not _accepting(address):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DaemonError(f"pycontainerd did not start (see {self.exec_root}/containerd/pycontainerd.log)")
            time.sleep(0.05)
        return address

    def start(self) -> None:
        self._listener.start()
        self.containers.restore()

    def _containerd_events(self) -> None:
        import protos

        protos.load()
        from containerd_api.events import task_pb2
        from containerd_api.services.events.v1 import events_pb2, events_pb2_grpc

        stub = events_pb2_grpc.EventsStub(self.client.channel)
        while not self._stop.is_set():
            try:
                request = events_pb2.SubscribeRequest(filters=['topic=="/tasks/exit"', 'topic=="/tasks/oom"'])
                for envelope in stub.Subscribe(request):
                    if envelope.namespace != NAMESPACE:
                        continue
                    if envelope.topic == "/tasks/exit":
                        exit_event = task_pb2.TaskExit.FromString(envelope.event.value)
                        if exit_event.id == exit_event.container_id:
                            threading.Thread(
                                target=self.containers.task_exited,
                                args=(exit_event.container_id, exit_event.exit_status),
                                daemon=True,
                            ).start()
                    elif envelope.topic == "/tasks/oom":
                        oom = task_pb2.TaskOOM.FromString(envelope.event.value)
                        self.containers.mark_oom(oom.container_id)
            except Exception as exc:  # noqa: BLE001 - resubscribe after pycontainerd restarts
                if self._stop.is_set():
                    return
                log.warning("containerd event stream: %s; reconnecting", exc)
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self.containers.close()
        self.client.close()

    # --- system ----------------------------------------------------------------------------

    def version_info(self) -> dict[str, Any]:
        import platform

        return {
            "Platform": {"Name": "pydocker"},
            "Components": [{"Name": "Engine", "Version": self.version, "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.24"}}],
            "Version": self.version,
            "ApiVersion": "1.41",
            "MinAPIVersion": "1.24",
            "GitCommit": "pydocker",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": "amd64" if platform.machine() == "x86_64" else platform.machine(),
            "KernelVersion": platform.release(),
            "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        from dockerd.app import default_info

        return default_info(self, self.containers.all(), len(self.images.all()))

    def disk_usage(self) -> dict[str, Any]:
        images = [self.images.summary(i) for i in self.images.all()]
        containers = [self.containers.summary(c) for c in self.containers.all()]
        return {"LayersSize": sum(i["Size"] for i in images), "Images": images, "Containers": containers, "Volumes": [], "BuildCache": []}


def _accepting(address: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(address)
        return True
    except OSError:
        return False
    finally:
        probe.close()
