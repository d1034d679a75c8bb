"""Version, introspection, namespaces and events: the services that need no image or task store."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.errors import InvalidArgument
from containerd.events import Event
from containerd.rpc import handler, namespace_of, timestamp

if TYPE_CHECKING:
    from containerd.server import Daemon

from protos.gen.containerd_api.events import namespace_pb2 as ns_events
from protos.gen.containerd_api.services.events.v1 import events_pb2, events_pb2_grpc
from protos.gen.containerd_api.services.introspection.v1 import introspection_pb2, introspection_pb2_grpc
from protos.gen.containerd_api.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
from protos.gen.containerd_api.services.version.v1 import version_pb2, version_pb2_grpc
from protos.gen.containerd_api.types import platform_pb2


class VersionService(version_pb2_grpc.VersionServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Version(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> Any:
        from containerd.server import REVISION, VERSION

        return version_pb2.VersionResponse(version=VERSION, revision=REVISION)


class IntrospectionService(introspection_pb2_grpc.IntrospectionServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Plugins(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.filters import parse_all

        matcher = parse_all(list(request.filters))
        platform = platform_pb2.Platform(os="linux", architecture="amd64")
        plugins = []
        for kind, plugin_id, requires, exports in self.daemon.plugins():
            fields = {"type": kind, "id": plugin_id}
            if not matcher.match(lambda path, f=fields: f.get(".".join(path))):  # type: ignore[misc]
                continue
            plugins.append(
                introspection_pb2.Plugin(
                    type=kind,
                    id=plugin_id,
                    requires=requires,
                    platforms=[platform]
                    if kind.startswith("io.containerd.runtime") or kind.endswith("snapshotter.v1")
                    else [],
                    exports=exports,
                )
            )
        return introspection_pb2.PluginsResponse(plugins=plugins)

    @handler
    def Server(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            pidns = os.stat("/proc/self/ns/pid").st_ino
        except OSError:
            pidns = 0
        return introspection_pb2.ServerResponse(uuid=self.daemon.uuid, pid=os.getpid(), pidns=pidns)


class NamespacesService(namespace_pb2_grpc.NamespacesServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @staticmethod
    def _to_proto(ns: Any) -> Any:
        return namespace_pb2.Namespace(name=ns.name, labels=dict(ns.labels))

    @handler
    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.daemon.db.transaction() as tx:
            return namespace_pb2.GetNamespaceResponse(
                namespace=self._to_proto(tx.namespaces.get(request.name))
            )

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.filters import parse_all

        matcher = parse_all([request.filter] if request.filter else [])
        with self.daemon.db.transaction() as tx:
            found = tx.namespaces.list()
        listed = [ns for ns in found if matcher.match(functools.partial(_namespace_field, ns))]
        return namespace_pb2.ListNamespacesResponse(namespaces=[self._to_proto(ns) for ns in listed])

    @handler
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.daemon.db.transaction() as tx:
            ns = tx.namespaces.create(request.namespace.name, dict(request.namespace.labels))
        self.daemon.publish(
            ns.name, "/namespaces/create", ns_events.NamespaceCreate(name=ns.name, labels=ns.labels)
        )
        return namespace_pb2.CreateNamespaceResponse(namespace=self._to_proto(ns))

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.metadata.records import Namespace

        with self.daemon.db.transaction() as tx:
            ns = tx.namespaces.update(
                Namespace(request.namespace.name, dict(request.namespace.labels)),
                list(request.update_mask.paths),
            )
        self.daemon.publish(
            ns.name, "/namespaces/update", ns_events.NamespaceUpdate(name=ns.name, labels=ns.labels)
        )
        return namespace_pb2.UpdateNamespaceResponse(namespace=self._to_proto(ns))

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self.daemon.db.transaction() as tx:
            tx.namespaces.get(request.name)  # a missing namespace is NotFound, as in containerd
            tx.namespaces.delete(request.name)
        self.daemon.publish(request.name, "/namespaces/delete", ns_events.NamespaceDelete(name=request.name))
        return empty_pb2.Empty()


def _namespace_field(ns: Any, path: Any) -> str | None:
    from containerd.filters import map_field

    if tuple(path) == ("name",):
        return str(ns.name)
    if path and path[0] == "labels":
        return map_field(ns.labels, path[1:])
    return None


class EventsService(events_pb2_grpc.EventsServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Publish(self, request: Any, context: grpc.ServicerContext) -> Any:
        namespace = namespace_of(context)
        _check_topic(request.topic)
        self.daemon.exchange.publish(namespace, request.topic, request.event.type_url, request.event.value)
        return empty_pb2.Empty()

    @handler
    def Forward(self, request: Any, context: grpc.ServicerContext) -> Any:
        env = request.envelope
        _check_topic(env.topic)
        self.daemon.exchange.publish(
            env.namespace,
            env.topic,
            env.event.type_url,
            env.event.value,
            env.timestamp.ToNanoseconds() or None,
        )
        return empty_pb2.Empty()

    @handler
    def Subscribe(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        from containerd.filters import parse_all

        matcher = parse_all(list(request.filters))

        def matches(event: Event) -> bool:
            return matcher.match(lambda path: _event_field(event, path))

        for event in self.daemon.exchange.subscribe(matches, context.is_active):
            envelope = events_pb2.Envelope(
                timestamp=timestamp(event.timestamp), namespace=event.namespace, topic=event.topic
            )
            envelope.event.type_url = event.type_url
            envelope.event.value = event.payload
            yield envelope


_TOPIC = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


def _check_topic(topic: str) -> None:
    if not _TOPIC.match(topic or ""):
        raise InvalidArgument(f"invalid topic {topic!r}: want /component/action")


def _event_field(event: Event, path: Any) -> str | None:
    key = ".".join(path)
    if key == "topic":
        return event.topic
    if key == "namespace":
        return event.namespace
    return None
