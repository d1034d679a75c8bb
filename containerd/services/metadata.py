"""Containers, images and leases: gRPC glue over the metadata DB, with containerd's events."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2

from containerd.metadata import records
from containerd.rpc import handler, namespace_of, timestamp

if TYPE_CHECKING:
    from containerd.server import Daemon

from protos.gen.containerd_api.events import container_pb2 as container_events
from protos.gen.containerd_api.events import image_pb2 as image_events
from protos.gen.containerd_api.services.containers.v1 import containers_pb2, containers_pb2_grpc
from protos.gen.containerd_api.services.images.v1 import images_pb2, images_pb2_grpc
from protos.gen.containerd_api.services.leases.v1 import leases_pb2, leases_pb2_grpc
from protos.gen.containerd_api.types import descriptor_pb2

# --- conversions ---------------------------------------------------------------------------------


def any_from(msg: Any) -> records.AnyProto | None:
    if not msg.type_url and not msg.value:
        return None
    return records.AnyProto(msg.type_url, bytes(msg.value))


def any_into(target: Any, value: records.AnyProto | None) -> None:
    if value is not None:
        target.type_url = value.type_url
        target.value = value.value


def descriptor_from(msg: Any) -> records.Descriptor:
    return records.Descriptor(msg.media_type, msg.digest, msg.size, dict(msg.annotations))


def descriptor_to(d: records.Descriptor) -> Any:
    return descriptor_pb2.Descriptor(
        media_type=d.media_type, digest=d.digest, size=d.size, annotations=d.annotations
    )


def container_from(msg: Any) -> records.Container:
    return records.Container(
        id=msg.id,
        runtime=records.Runtime(msg.runtime.name, any_from(msg.runtime.options)),
        spec=any_from(msg.spec),
        labels=dict(msg.labels),
        image=msg.image,
        snapshotter=msg.snapshotter,
        snapshot_key=msg.snapshot_key,
        extensions={k: records.AnyProto(v.type_url, bytes(v.value)) for k, v in msg.extensions.items()},
        sandbox=msg.sandbox,
    )


def container_to(c: records.Container) -> Any:
    msg = containers_pb2.Container(
        id=c.id,
        labels=c.labels,
        image=c.image,
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        created_at=timestamp(c.created_at),
        updated_at=timestamp(c.updated_at),
        sandbox=c.sandbox,
    )
    msg.runtime.name = c.runtime.name
    any_into(msg.runtime.options, c.runtime.options)
    any_into(msg.spec, c.spec)
    for key, value in c.extensions.items():
        any_into(msg.extensions[key], value)
    return msg


def image_from(msg: Any) -> records.Image:
    return records.Image(name=msg.name, target=descriptor_from(msg.target), labels=dict(msg.labels))


def image_to(img: records.Image) -> Any:
    return images_pb2.Image(
        name=img.name,
        labels=img.labels,
        target=descriptor_to(img.target),
        created_at=timestamp(img.created_at),
        updated_at=timestamp(img.updated_at),
    )


def lease_to(lease: records.Lease) -> Any:
    return leases_pb2.Lease(id=lease.id, labels=lease.labels, created_at=timestamp(lease.created_at))


# --- services ------------------------------------------------------------------------------------


class ContainersService(containers_pb2_grpc.ContainersServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            return containers_pb2.GetContainerResponse(
                container=container_to(tx.containers(ns).get(request.id))
            )

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.containers(ns).list(list(request.filters))
        return containers_pb2.ListContainersResponse(containers=[container_to(c) for c in found])

    @handler
    def ListStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.containers(ns).list(list(request.filters))
        for c in found:
            yield containers_pb2.ListContainerMessage(container=container_to(c))

    @handler
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            created = tx.containers(ns).create(container_from(request.container))
        event = container_events.ContainerCreate(id=created.id, image=created.image)
        event.runtime.name = created.runtime.name
        any_into(event.runtime.options, created.runtime.options)
        self.daemon.publish(ns, "/containers/create", event)
        return containers_pb2.CreateContainerResponse(container=container_to(created))

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            updated = tx.containers(ns).update(
                container_from(request.container), list(request.update_mask.paths)
            )
        self.daemon.publish(
            ns,
            "/containers/update",
            container_events.ContainerUpdate(
                id=updated.id, image=updated.image, labels=updated.labels, snapshot_key=updated.snapshot_key
            ),
        )
        return containers_pb2.UpdateContainerResponse(container=container_to(updated))

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        self.daemon.check_no_task(ns, request.id)
        with self.daemon.db.transaction() as tx:
            tx.containers(ns).delete(request.id)
        self.daemon.publish(ns, "/containers/delete", container_events.ContainerDelete(id=request.id))
        self.daemon.collect_garbage()
        return empty_pb2.Empty()


class ImagesService(images_pb2_grpc.ImagesServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Get(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            return images_pb2.GetImageResponse(image=image_to(tx.images(ns).get(request.name)))

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.images(ns).list(list(request.filters))
        return images_pb2.ListImagesResponse(images=[image_to(i) for i in found])

    @handler
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            created = tx.images(ns).create(image_from(request.image))
        self.daemon.publish(
            ns, "/images/create", image_events.ImageCreate(name=created.name, labels=created.labels)
        )
        return images_pb2.CreateImageResponse(image=image_to(created))

    @handler
    def Update(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            updated = tx.images(ns).update(image_from(request.image), list(request.update_mask.paths))
        self.daemon.publish(
            ns, "/images/update", image_events.ImageUpdate(name=updated.name, labels=updated.labels)
        )
        return images_pb2.UpdateImageResponse(image=image_to(updated))

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            tx.images(ns).delete(request.name)
        self.daemon.publish(ns, "/images/delete", image_events.ImageDelete(name=request.name))
        self.daemon.collect_garbage()
        return empty_pb2.Empty()


class LeasesService(leases_pb2_grpc.LeasesServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    @handler
    def Create(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        lease_id = request.id or f"pycontainerd-{secrets.token_hex(8)}"
        with self.daemon.db.transaction() as tx:
            lease = tx.leases(ns).create(lease_id, dict(request.labels))
        return leases_pb2.CreateResponse(lease=lease_to(lease))

    @handler
    def Delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            tx.leases(ns).delete(request.id)
        self.daemon.collect_garbage()
        return empty_pb2.Empty()

    @handler
    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.leases(ns).list(list(request.filters))
        return leases_pb2.ListResponse(leases=[lease_to(lease) for lease in found])

    @handler
    def AddResource(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            tx.leases(ns).add_resource(
                request.id, records.LeaseResource(request.resource.id, request.resource.type)
            )
        return empty_pb2.Empty()

    @handler
    def DeleteResource(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            tx.leases(ns).delete_resource(
                request.id, records.LeaseResource(request.resource.id, request.resource.type)
            )
        return empty_pb2.Empty()

    @handler
    def ListResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        ns = namespace_of(context)
        with self.daemon.db.transaction() as tx:
            found = tx.leases(ns).list_resources(request.id)
        return leases_pb2.ListResourcesResponse(
            resources=[leases_pb2.Resource(id=r.id, type=r.type) for r in found]
        )
