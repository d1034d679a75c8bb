"""The pycontainerd daemon: its stores, its event exchange and the gRPC server over them.

Each service in containerd/services/ is thin glue from protobuf to a store; this module
only owns their lifetimes and the socket.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import uuid
from concurrent import futures
from typing import Any

import grpc

from common import atomicfile
from common.unixsock import accepting
from containerd.config import Config
from containerd.errors import FailedPrecondition
from containerd.events import Exchange

VERSION = "0.1.0"
REVISION = "pydocker"

log = logging.getLogger("pycontainerd")

# The gRPC server's threads. A blocking call holds one for as long as it blocks: Tasks.Wait for the
# task's whole life, an Events.Subscribe stream until its client leaves. With 32 (the old figure),
# 32 `ctr run` waiting on their tasks or 32 event subscribers left no thread for anything else, and
# every other request queued behind them. Threads are started only as requests need them.
GRPC_WORKERS = 1024


class DaemonError(Exception):
    pass


class Daemon:
    def __init__(self, cfg: Config) -> None:
        from containerd.content.store import ContentStore
        from containerd.metadata.db import MetadataDB

        self.cfg = cfg
        for directory, mode in ((cfg.root, 0o711), (cfg.state, 0o711), (os.path.dirname(cfg.address), 0o711)):
            try:
                os.makedirs(directory, mode=mode, exist_ok=True)
            except OSError as exc:
                raise DaemonError(f"cannot create {directory}: {exc.strerror}") from None
        self.uuid = self._load_uuid()
        self.db = MetadataDB(os.path.join(cfg.root, "metadata.db"))
        self.content = ContentStore(os.path.join(cfg.root, "content"))
        self.exchange = Exchange()
        from containerd.snapshots.overlay import OverlaySnapshotter

        # One snapshotter, namespaced itself; GC sees all namespaces through AllNamespaces.
        self.snapshotters_by_name: dict[str, Any] = {
            "overlayfs": OverlaySnapshotter(os.path.join(cfg.root, "snapshots", "overlayfs"))
        }
        self._server: grpc.Server | None = None
        self._cri_server: grpc.Server | None = None
        self._gc_lock = threading.Lock()
        self.cri: Any = None
        if cfg.cri.enabled:
            from containerd.cri.plugin import Plugin

            self.cri = Plugin(cfg, cfg.cri)

    def _load_uuid(self) -> str:
        path = os.path.join(self.cfg.root, "uuid")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            value = str(uuid.uuid4())
            atomicfile.write_text(path, value, 0o644)
            return value

    def scratch_dir(self) -> str:
        """Temporary mounts and files of the daemon's own (layer apply/compare), under its state dir."""
        path = os.path.join(self.cfg.state, "tmp")
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    # --- events ------------------------------------------------------------------------------

    def publish(self, namespace: str, topic: str, message: Any) -> None:
        import protos

        self.exchange.publish(namespace, topic, protos.type_url(message), message.SerializeToString())

    # --- cross-service rules ---------------------------------------------------------------------

    def check_no_task(self, namespace: str, container_id: str) -> None:
        """A container whose task still exists cannot be deleted (its rootfs and shim are in use)."""
        tasks = getattr(self, "tasks", None)
        if tasks is not None and tasks.exists(namespace, container_id):
            raise FailedPrecondition(
                f"container {container_id}: cannot delete a container with a task; delete the task first"
            )

    def collect_garbage(self) -> None:
        """Run after deletes, as containerd's scheduler does; serialized, and never fatal to the request."""
        from containerd import gc
        from containerd.snapshots.views import AllNamespaces

        snapshotters = {name: AllNamespaces(sn) for name, sn in self.snapshotters_by_name.items()}
        with self._gc_lock:
            try:
                result = gc.collect(
                    self.db,
                    self.content,
                    snapshotters,
                    snapshot_name=gc.prefix_namer,
                    snapshot_owner=gc.prefix_owner,
                )
            except Exception:  # a failed collection is retried after the next delete
                log.exception("garbage collection failed")
                return
        if result.removed_anything:
            log.info("garbage collection: %s", result)

    # --- introspection -----------------------------------------------------------------------

    def plugins(self) -> list[tuple[str, str, list[str], dict[str, str]]]:
        root = self.cfg.root
        return [
            ("io.containerd.content.v1", "content", [], {"root": os.path.join(root, "content")}),
            ("io.containerd.snapshotter.v1", "overlayfs", [], {"root": os.path.join(root, "snapshots")}),
            (
                "io.containerd.metadata.v1",
                "sqlite",
                ["io.containerd.content.v1", "io.containerd.snapshotter.v1"],
                {},
            ),
            ("io.containerd.differ.v1", "walking", ["io.containerd.metadata.v1"], {}),
            ("io.containerd.event.v1", "exchange", [], {}),
            ("io.containerd.lease.v1", "manager", ["io.containerd.metadata.v1"], {}),
            ("io.containerd.gc.v1", "scheduler", ["io.containerd.metadata.v1"], {}),
            (
                "io.containerd.runtime.v2",
                "task",
                ["io.containerd.event.v1"],
                {"root": os.path.join(root, "tasks"), "state": self.cfg.state},
            ),
            *[
                ("io.containerd.grpc.v1", name, ["io.containerd.metadata.v1"], {})
                for name in (
                    "containers",
                    "content",
                    "diff",
                    "events",
                    "images",
                    "introspection",
                    "leases",
                    "namespaces",
                    "snapshots",
                    "tasks",
                    "version",
                )
            ],
            *(
                [("io.containerd.grpc.v1", "cri", ["io.containerd.event.v1", "io.containerd.service.v1"], {})]
                if self.cri is not None
                else []
            ),
        ]

    # --- serving -----------------------------------------------------------------------------

    def _services(self) -> list[tuple[Any, Any]]:
        from containerd.services import basic, content, layers, metadata, tasks
        from protos.gen.containerd_api.services.containers.v1 import containers_pb2_grpc
        from protos.gen.containerd_api.services.content.v1 import content_pb2_grpc
        from protos.gen.containerd_api.services.diff.v1 import diff_pb2_grpc
        from protos.gen.containerd_api.services.events.v1 import events_pb2_grpc
        from protos.gen.containerd_api.services.images.v1 import images_pb2_grpc
        from protos.gen.containerd_api.services.introspection.v1 import introspection_pb2_grpc
        from protos.gen.containerd_api.services.leases.v1 import leases_pb2_grpc
        from protos.gen.containerd_api.services.namespaces.v1 import namespace_pb2_grpc
        from protos.gen.containerd_api.services.snapshots.v1 import snapshots_pb2_grpc
        from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2_grpc
        from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc

        return [
            (version_pb2_grpc.add_VersionServicer_to_server, basic.VersionService(self)),
            (introspection_pb2_grpc.add_IntrospectionServicer_to_server, basic.IntrospectionService(self)),
            (namespace_pb2_grpc.add_NamespacesServicer_to_server, basic.NamespacesService(self)),
            (events_pb2_grpc.add_EventsServicer_to_server, basic.EventsService(self)),
            (containers_pb2_grpc.add_ContainersServicer_to_server, metadata.ContainersService(self)),
            (images_pb2_grpc.add_ImagesServicer_to_server, metadata.ImagesService(self)),
            (leases_pb2_grpc.add_LeasesServicer_to_server, metadata.LeasesService(self)),
            (content_pb2_grpc.add_ContentServicer_to_server, content.ContentService(self)),
            (snapshots_pb2_grpc.add_SnapshotsServicer_to_server, layers.SnapshotsService(self)),
            (diff_pb2_grpc.add_DiffServicer_to_server, layers.DiffService(self)),
            (tasks_pb2_grpc.add_TasksServicer_to_server, tasks.TasksService(self)),
        ]

    def _cri_services(self) -> list[tuple[Any, Any]]:
        if self.cri is None:
            return []
        from containerd.cri.service import ImageService, RuntimeService
        from protos.gen.cri_api.runtime.v1 import api_pb2_grpc

        return [
            (api_pb2_grpc.add_RuntimeServiceServicer_to_server, RuntimeService(self.cri)),
            (api_pb2_grpc.add_ImageServiceServicer_to_server, ImageService(self.cri)),
        ]

    def start(self) -> None:
        from containerd.tasks import TaskManager

        self.tasks = TaskManager(self)
        self.tasks.recover()
        address = self.cfg.address
        _claim_socket_path(address)
        if self.cri is not None:
            self._serve_cri_client()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="grpc"),
            options=[
                ("grpc.max_receive_message_length", 16 << 20),
                ("grpc.max_send_message_length", 16 << 20),
            ],
        )
        for add, service in self._services():
            add(service, server)
        if self.cri is not None and not self.cfg.cri.address:
            for add, service in self._cri_services():
                add(service, server)
        # The socket is born 0660 (umask while grpc binds it): a chmod after start left a moment in
        # which a client that saw the path saw it 0755.
        previous_umask = os.umask(0o117)
        try:
            bound = server.add_insecure_port(f"unix://{address}")
        except RuntimeError:
            bound = 0
        finally:
            os.umask(previous_umask)
        if bound == 0:
            raise DaemonError(f"cannot listen on {address} (is the path longer than a unix socket allows?)")
        server.start()
        os.chmod(address, 0o660)
        self._server = server
        if self.cri is not None:
            if self.cfg.cri.address:
                self._cri_server = self._serve_cri(self.cfg.cri.address)
            self.cri.start()

    def _serve_cri_client(self) -> None:
        """The CRI plugin's client makes its unary calls in-process (cri/local.py), set before
        any CRI call can come; its streaming ones go over the daemon's socket."""
        from containerd.cri.local import unary_handlers

        self.cri.local_handlers = unary_handlers(self._services())

    def _serve_cri(self, address: str) -> grpc.Server:
        """The CRI on a socket of its own (`--cri-address`), as a second listener of this daemon."""
        _claim_socket_path(address)
        os.makedirs(os.path.dirname(address), mode=0o711, exist_ok=True)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS, thread_name_prefix="cri-grpc"),
            options=[
                ("grpc.max_receive_message_length", 16 << 20),
                ("grpc.max_send_message_length", 16 << 20),
            ],
        )
        for add, service in self._cri_services():
            add(service, server)
        previous_umask = os.umask(0o117)
        try:
            bound = server.add_insecure_port(f"unix://{address}")
        except RuntimeError:
            bound = 0
        finally:
            os.umask(previous_umask)
        if bound == 0:
            raise DaemonError(f"cannot listen on {address}")
        server.start()
        return server

    def stop(self) -> None:
        if self.cri is not None:
            self.cri.close()
        if self._cri_server is not None:
            self._cri_server.stop(grace=2).wait()
            self._cri_server = None
            try:
                os.unlink(self.cfg.cri.address)
            except FileNotFoundError:
                pass
        if self._server is not None:
            self._server.stop(grace=2).wait()
            self._server = None
        if getattr(self, "tasks", None) is not None:
            self.tasks.close()
        try:
            os.unlink(self.cfg.address)
        except FileNotFoundError:
            pass
        self.db.close()
        for snapshotter in self.snapshotters_by_name.values():
            snapshotter.close()


def _claim_socket_path(address: str) -> None:
    """Refuse to start over a live daemon; remove a stale socket left by a killed one."""
    try:
        st = os.stat(address)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise DaemonError(f"{address} exists and is not a socket")
    if not accepting(address):
        os.unlink(address)
        return
    raise DaemonError(f"another daemon is serving on {address}")
