"""The generated stubs carry containerd's v1 wire contract.

The expected tables below were transcribed from containerd 1.6.20's api/ (the
version Debian's ctr speaks), independently of protos/*.proto, so a renamed
field, a renumbered field or a lost streaming flag fails here. The last test
goes further: containerd's own `ctr` talks to a server built from our stubs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent import futures
from types import ModuleType
from typing import Any

import pytest

import protos

protos.load()

from google.protobuf import descriptor as pb_descriptor  # noqa: E402

FieldDescriptor = pb_descriptor.FieldDescriptor

CTR = "/usr/bin/ctr"

# module (under containerd_api) -> proto package, as containerd declares it
FILES: dict[str, str] = {
    "types.mount_pb2": "containerd.types",
    "types.descriptor_pb2": "containerd.types",
    "types.platform_pb2": "containerd.types",
    "types.metrics_pb2": "containerd.types",
    "types.task.task_pb2": "containerd.v1.types",
    "types.runc.options.oci_pb2": "containerd.runc.v1",
    "events.container_pb2": "containerd.events",
    "events.content_pb2": "containerd.events",
    # containerd really declares the image events in the images service's package
    "events.image_pb2": "containerd.services.images.v1",
    "events.namespace_pb2": "containerd.events",
    "events.snapshot_pb2": "containerd.events",
    "events.task_pb2": "containerd.events",
    "services.version.v1.version_pb2": "containerd.services.version.v1",
    "services.namespaces.v1.namespace_pb2": "containerd.services.namespaces.v1",
    "services.containers.v1.containers_pb2": "containerd.services.containers.v1",
    "services.content.v1.content_pb2": "containerd.services.content.v1",
    "services.images.v1.images_pb2": "containerd.services.images.v1",
    "services.snapshots.v1.snapshots_pb2": "containerd.services.snapshots.v1",
    "services.diff.v1.diff_pb2": "containerd.services.diff.v1",
    "services.leases.v1.leases_pb2": "containerd.services.leases.v1",
    "services.tasks.v1.tasks_pb2": "containerd.services.tasks.v1",
    "services.events.v1.events_pb2": "containerd.services.events.v1",
    "services.introspection.v1.introspection_pb2": "containerd.services.introspection.v1",
}

E = "google.protobuf.Empty"
U, S, C, B = "unary", "server-stream", "client-stream", "bidi"

# service -> rpc -> (request, response, streaming); short names live in the service's package
SERVICES: dict[str, dict[str, tuple[str, str, str]]] = {
    "containerd.services.version.v1.Version": {
        "Version": (E, "VersionResponse", U),
    },
    "containerd.services.namespaces.v1.Namespaces": {
        "Get": ("GetNamespaceRequest", "GetNamespaceResponse", U),
        "List": ("ListNamespacesRequest", "ListNamespacesResponse", U),
        "Create": ("CreateNamespaceRequest", "CreateNamespaceResponse", U),
        "Update": ("UpdateNamespaceRequest", "UpdateNamespaceResponse", U),
        "Delete": ("DeleteNamespaceRequest", E, U),
    },
    "containerd.services.containers.v1.Containers": {
        "Get": ("GetContainerRequest", "GetContainerResponse", U),
        "List": ("ListContainersRequest", "ListContainersResponse", U),
        "ListStream": ("ListContainersRequest", "ListContainerMessage", S),
        "Create": ("CreateContainerRequest", "CreateContainerResponse", U),
        "Update": ("UpdateContainerRequest", "UpdateContainerResponse", U),
        "Delete": ("DeleteContainerRequest", E, U),
    },
    "containerd.services.content.v1.Content": {
        "Info": ("InfoRequest", "InfoResponse", U),
        "Update": ("UpdateRequest", "UpdateResponse", U),
        "List": ("ListContentRequest", "ListContentResponse", S),
        "Delete": ("DeleteContentRequest", E, U),
        "Read": ("ReadContentRequest", "ReadContentResponse", S),
        "Status": ("StatusRequest", "StatusResponse", U),
        "ListStatuses": ("ListStatusesRequest", "ListStatusesResponse", U),
        "Write": ("WriteContentRequest", "WriteContentResponse", B),
        "Abort": ("AbortRequest", E, U),
    },
    "containerd.services.images.v1.Images": {
        "Get": ("GetImageRequest", "GetImageResponse", U),
        "List": ("ListImagesRequest", "ListImagesResponse", U),
        "Create": ("CreateImageRequest", "CreateImageResponse", U),
        "Update": ("UpdateImageRequest", "UpdateImageResponse", U),
        "Delete": ("DeleteImageRequest", E, U),
    },
    "containerd.services.snapshots.v1.Snapshots": {
        "Prepare": ("PrepareSnapshotRequest", "PrepareSnapshotResponse", U),
        "View": ("ViewSnapshotRequest", "ViewSnapshotResponse", U),
        "Mounts": ("MountsRequest", "MountsResponse", U),
        "Commit": ("CommitSnapshotRequest", E, U),
        "Remove": ("RemoveSnapshotRequest", E, U),
        "Stat": ("StatSnapshotRequest", "StatSnapshotResponse", U),
        "Update": ("UpdateSnapshotRequest", "UpdateSnapshotResponse", U),
        "List": ("ListSnapshotsRequest", "ListSnapshotsResponse", S),
        "Usage": ("UsageRequest", "UsageResponse", U),
        "Cleanup": ("CleanupRequest", E, U),
    },
    "containerd.services.diff.v1.Diff": {
        "Apply": ("ApplyRequest", "ApplyResponse", U),
        "Diff": ("DiffRequest", "DiffResponse", U),
    },
    "containerd.services.leases.v1.Leases": {
        "Create": ("CreateRequest", "CreateResponse", U),
        "Delete": ("DeleteRequest", E, U),
        "List": ("ListRequest", "ListResponse", U),
        "AddResource": ("AddResourceRequest", E, U),
        "DeleteResource": ("DeleteResourceRequest", E, U),
        "ListResources": ("ListResourcesRequest", "ListResourcesResponse", U),
    },
    "containerd.services.tasks.v1.Tasks": {
        "Create": ("CreateTaskRequest", "CreateTaskResponse", U),
        "Start": ("StartRequest", "StartResponse", U),
        "Delete": ("DeleteTaskRequest", "DeleteResponse", U),
        "DeleteProcess": ("DeleteProcessRequest", "DeleteResponse", U),
        "Get": ("GetRequest", "GetResponse", U),
        "List": ("ListTasksRequest", "ListTasksResponse", U),
        "Kill": ("KillRequest", E, U),
        "Exec": ("ExecProcessRequest", E, U),
        "ResizePty": ("ResizePtyRequest", E, U),
        "CloseIO": ("CloseIORequest", E, U),
        "Pause": ("PauseTaskRequest", E, U),
        "Resume": ("ResumeTaskRequest", E, U),
        "ListPids": ("ListPidsRequest", "ListPidsResponse", U),
        "Checkpoint": ("CheckpointTaskRequest", "CheckpointTaskResponse", U),
        "Update": ("UpdateTaskRequest", E, U),
        "Metrics": ("MetricsRequest", "MetricsResponse", U),
        "Wait": ("WaitRequest", "WaitResponse", U),
    },
    "containerd.services.events.v1.Events": {
        "Publish": ("PublishRequest", E, U),
        "Forward": ("ForwardRequest", E, U),
        "Subscribe": ("SubscribeRequest", "Envelope", S),
    },
    "containerd.services.introspection.v1.Introspection": {
        "Plugins": ("PluginsRequest", "PluginsResponse", U),
        "Server": (E, "ServerResponse", U),
    },
}

TS = "google.protobuf.Timestamp"
ANY = "google.protobuf.Any"
MASK = "google.protobuf.FieldMask"
MOUNT = "containerd.types.Mount"
DESC = "containerd.types.Descriptor"
SMAP = "map<string,string>"

# message -> {field: (number, type)}; "repeated " marks lists. The complete field
# set is compared, so an extra or missing field fails too.
MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "containerd.runc.v1.Options": {
        "no_pivot_root": (1, "bool"),
        "no_new_keyring": (2, "bool"),
        "shim_cgroup": (3, "string"),
        "io_uid": (4, "uint32"),
        "io_gid": (5, "uint32"),
        "binary_name": (6, "string"),
        "root": (7, "string"),
        "criu_path": (8, "string"),
        "systemd_cgroup": (9, "bool"),
        "criu_image_path": (10, "string"),
        "criu_work_path": (11, "string"),
    },
    "containerd.runc.v1.ProcessDetails": {"exec_id": (1, "string")},
    "containerd.types.Mount": {
        "type": (1, "string"),
        "source": (2, "string"),
        "target": (3, "string"),
        "options": (4, "repeated string"),
    },
    "containerd.types.Descriptor": {
        "media_type": (1, "string"),
        "digest": (2, "string"),
        "size": (3, "int64"),
        "annotations": (5, SMAP),
    },
    "containerd.types.Platform": {
        "os": (1, "string"),
        "architecture": (2, "string"),
        "variant": (3, "string"),
    },
    "containerd.types.Metric": {"timestamp": (1, TS), "id": (2, "string"), "data": (3, ANY)},
    "containerd.v1.types.Process": {
        "container_id": (1, "string"),
        "id": (2, "string"),
        "pid": (3, "uint32"),
        "status": (4, "enum containerd.v1.types.Status"),
        "stdin": (5, "string"),
        "stdout": (6, "string"),
        "stderr": (7, "string"),
        "terminal": (8, "bool"),
        "exit_status": (9, "uint32"),
        "exited_at": (10, TS),
    },
    "containerd.v1.types.ProcessInfo": {"pid": (1, "uint32"), "info": (2, ANY)},
    "containerd.services.version.v1.VersionResponse": {"version": (1, "string"), "revision": (2, "string")},
    "containerd.services.namespaces.v1.Namespace": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.services.namespaces.v1.UpdateNamespaceRequest": {
        "namespace": (1, "containerd.services.namespaces.v1.Namespace"),
        "update_mask": (2, MASK),
    },
    "containerd.services.containers.v1.Container": {
        "id": (1, "string"),
        "labels": (2, SMAP),
        "image": (3, "string"),
        "runtime": (4, "containerd.services.containers.v1.Container.Runtime"),
        "spec": (5, ANY),
        "snapshotter": (6, "string"),
        "snapshot_key": (7, "string"),
        "created_at": (8, TS),
        "updated_at": (9, TS),
        "extensions": (10, "map<string,google.protobuf.Any>"),
        "sandbox": (11, "string"),  # containerd 1.7
    },
    "containerd.services.containers.v1.Container.Runtime": {"name": (1, "string"), "options": (2, ANY)},
    "containerd.services.containers.v1.UpdateContainerRequest": {
        "container": (1, "containerd.services.containers.v1.Container"),
        "update_mask": (2, MASK),
    },
    "containerd.services.content.v1.Info": {
        "digest": (1, "string"),
        "size": (2, "int64"),
        "created_at": (3, TS),
        "updated_at": (4, TS),
        "labels": (5, SMAP),
    },
    "containerd.services.content.v1.ReadContentRequest": {
        "digest": (1, "string"),
        "offset": (2, "int64"),
        "size": (3, "int64"),
    },
    "containerd.services.content.v1.ReadContentResponse": {"offset": (1, "int64"), "data": (2, "bytes")},
    "containerd.services.content.v1.Status": {
        "started_at": (1, TS),
        "updated_at": (2, TS),
        "ref": (3, "string"),
        "offset": (4, "int64"),
        "total": (5, "int64"),
        "expected": (6, "string"),
    },
    "containerd.services.content.v1.WriteContentRequest": {
        "action": (1, "enum containerd.services.content.v1.WriteAction"),
        "ref": (2, "string"),
        "total": (3, "int64"),
        "expected": (4, "string"),
        "offset": (5, "int64"),
        "data": (6, "bytes"),
        "labels": (7, SMAP),
    },
    "containerd.services.content.v1.WriteContentResponse": {
        "action": (1, "enum containerd.services.content.v1.WriteAction"),
        "started_at": (2, TS),
        "updated_at": (3, TS),
        "offset": (4, "int64"),
        "total": (5, "int64"),
        "digest": (6, "string"),
    },
    "containerd.services.images.v1.Image": {
        "name": (1, "string"),
        "labels": (2, SMAP),
        "target": (3, DESC),
        "created_at": (7, TS),
        "updated_at": (8, TS),
    },
    "containerd.services.images.v1.DeleteImageRequest": {"name": (1, "string"), "sync": (2, "bool")},
    "containerd.services.snapshots.v1.Info": {
        "name": (1, "string"),
        "parent": (2, "string"),
        "kind": (3, "enum containerd.services.snapshots.v1.Kind"),
        "created_at": (4, TS),
        "updated_at": (5, TS),
        "labels": (6, SMAP),
    },
    "containerd.services.snapshots.v1.CommitSnapshotRequest": {
        "snapshotter": (1, "string"),
        "name": (2, "string"),
        "key": (3, "string"),
        "labels": (4, SMAP),
    },
    "containerd.services.snapshots.v1.PrepareSnapshotRequest": {
        "snapshotter": (1, "string"),
        "key": (2, "string"),
        "parent": (3, "string"),
        "labels": (4, SMAP),
    },
    "containerd.services.snapshots.v1.ListSnapshotsRequest": {
        "snapshotter": (1, "string"),
        "filters": (2, "repeated string"),
    },
    "containerd.services.snapshots.v1.UpdateSnapshotRequest": {
        "snapshotter": (1, "string"),
        "info": (2, "containerd.services.snapshots.v1.Info"),
        "update_mask": (3, MASK),
    },
    "containerd.services.snapshots.v1.UsageResponse": {"size": (1, "int64"), "inodes": (2, "int64")},
    "containerd.services.diff.v1.ApplyRequest": {
        "diff": (1, DESC),
        "mounts": (2, f"repeated {MOUNT}"),
        "payloads": (3, "map<string,google.protobuf.Any>"),
    },
    "containerd.services.diff.v1.DiffRequest": {
        "left": (1, f"repeated {MOUNT}"),
        "right": (2, f"repeated {MOUNT}"),
        "media_type": (3, "string"),
        "ref": (4, "string"),
        "labels": (5, SMAP),
        "source_date_epoch": (6, TS),  # containerd 2.0's field (the builder's reproducible layers)
    },
    "containerd.services.diff.v1.DiffResponse": {"diff": (3, DESC)},
    "containerd.services.leases.v1.Lease": {"id": (1, "string"), "created_at": (2, TS), "labels": (3, SMAP)},
    "containerd.services.leases.v1.CreateRequest": {"id": (1, "string"), "labels": (3, SMAP)},
    "containerd.services.leases.v1.AddResourceRequest": {
        "id": (1, "string"),
        "resource": (2, "containerd.services.leases.v1.Resource"),
    },
    "containerd.services.leases.v1.Resource": {"id": (1, "string"), "type": (2, "string")},
    "containerd.services.tasks.v1.CreateTaskRequest": {
        "container_id": (1, "string"),
        "rootfs": (3, f"repeated {MOUNT}"),
        "stdin": (4, "string"),
        "stdout": (5, "string"),
        "stderr": (6, "string"),
        "terminal": (7, "bool"),
        "checkpoint": (8, DESC),
        "options": (9, ANY),
        "runtime_path": (10, "string"),
    },
    "containerd.services.tasks.v1.DeleteResponse": {
        "id": (1, "string"),
        "pid": (2, "uint32"),
        "exit_status": (3, "uint32"),
        "exited_at": (4, TS),
    },
    "containerd.services.tasks.v1.KillRequest": {
        "container_id": (1, "string"),
        "exec_id": (2, "string"),
        "signal": (3, "uint32"),
        "all": (4, "bool"),
    },
    "containerd.services.tasks.v1.ExecProcessRequest": {
        "container_id": (1, "string"),
        "stdin": (2, "string"),
        "stdout": (3, "string"),
        "stderr": (4, "string"),
        "terminal": (5, "bool"),
        "spec": (6, ANY),
        "exec_id": (7, "string"),
    },
    "containerd.services.tasks.v1.ListTasksResponse": {"tasks": (1, "repeated containerd.v1.types.Process")},
    "containerd.services.tasks.v1.ListPidsResponse": {
        "processes": (1, "repeated containerd.v1.types.ProcessInfo"),
    },
    "containerd.services.tasks.v1.MetricsResponse": {"metrics": (1, "repeated containerd.types.Metric")},
    "containerd.services.tasks.v1.WaitResponse": {"exit_status": (1, "uint32"), "exited_at": (2, TS)},
    "containerd.services.tasks.v1.UpdateTaskRequest": {
        "container_id": (1, "string"),
        "resources": (2, ANY),
        "annotations": (3, SMAP),
    },
    "containerd.services.events.v1.Envelope": {
        "timestamp": (1, TS),
        "namespace": (2, "string"),
        "topic": (3, "string"),
        "event": (4, ANY),
    },
    "containerd.services.events.v1.PublishRequest": {"topic": (1, "string"), "event": (2, ANY)},
    "containerd.services.events.v1.ForwardRequest": {
        "envelope": (1, "containerd.services.events.v1.Envelope")
    },
    "containerd.services.introspection.v1.Plugin": {
        "type": (1, "string"),
        "id": (2, "string"),
        "requires": (3, "repeated string"),
        "platforms": (4, "repeated containerd.types.Platform"),
        "exports": (5, SMAP),
        "capabilities": (6, "repeated string"),
        "init_err": (7, "google.rpc.Status"),
    },
    "containerd.services.introspection.v1.ServerResponse": {
        "uuid": (1, "string"),
        # containerd 1.7 additions
        "pid": (2, "uint64"),
        "pidns": (3, "uint64"),
        "deprecations": (4, "repeated containerd.services.introspection.v1.DeprecationWarning"),
    },
    "google.rpc.Status": {"code": (1, "int32"), "message": (2, "string"), "details": (3, f"repeated {ANY}")},
    # events
    "containerd.events.ContainerCreate": {
        "id": (1, "string"),
        "image": (2, "string"),
        "runtime": (3, "containerd.events.ContainerCreate.Runtime"),
    },
    "containerd.events.ContainerCreate.Runtime": {"name": (1, "string"), "options": (2, ANY)},
    "containerd.events.ContainerUpdate": {
        "id": (1, "string"),
        "image": (2, "string"),
        "labels": (3, SMAP),
        "snapshot_key": (4, "string"),
    },
    "containerd.events.ContainerDelete": {"id": (1, "string")},
    "containerd.events.ContentDelete": {"digest": (1, "string")},
    "containerd.services.images.v1.ImageCreate": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.services.images.v1.ImageUpdate": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.services.images.v1.ImageDelete": {"name": (1, "string")},
    "containerd.events.NamespaceCreate": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.events.NamespaceUpdate": {"name": (1, "string"), "labels": (2, SMAP)},
    "containerd.events.NamespaceDelete": {"name": (1, "string")},
    "containerd.events.SnapshotPrepare": {"key": (1, "string"), "parent": (2, "string")},
    "containerd.events.SnapshotCommit": {"key": (1, "string"), "name": (2, "string")},
    "containerd.events.SnapshotRemove": {"key": (1, "string")},
    "containerd.events.TaskCreate": {
        "container_id": (1, "string"),
        "bundle": (2, "string"),
        "rootfs": (3, f"repeated {MOUNT}"),
        "io": (4, "containerd.events.TaskIO"),
        "checkpoint": (5, "string"),
        "pid": (6, "uint32"),
    },
    "containerd.events.TaskStart": {"container_id": (1, "string"), "pid": (2, "uint32")},
    "containerd.events.TaskDelete": {
        "container_id": (1, "string"),
        "pid": (2, "uint32"),
        "exit_status": (3, "uint32"),
        "exited_at": (4, TS),
        "id": (5, "string"),
    },
    "containerd.events.TaskIO": {
        "stdin": (1, "string"),
        "stdout": (2, "string"),
        "stderr": (3, "string"),
        "terminal": (4, "bool"),
    },
    "containerd.events.TaskExit": {
        "container_id": (1, "string"),
        "id": (2, "string"),
        "pid": (3, "uint32"),
        "exit_status": (4, "uint32"),
        "exited_at": (5, TS),
    },
    "containerd.events.TaskOOM": {"container_id": (1, "string")},
    "containerd.events.TaskExecAdded": {"container_id": (1, "string"), "exec_id": (2, "string")},
    "containerd.events.TaskExecStarted": {
        "container_id": (1, "string"),
        "exec_id": (2, "string"),
        "pid": (3, "uint32"),
    },
    "containerd.events.TaskPaused": {"container_id": (1, "string")},
    "containerd.events.TaskResumed": {"container_id": (1, "string")},
    "containerd.events.TaskCheckpointed": {"container_id": (1, "string"), "checkpoint": (2, "string")},
}

ENUMS: dict[str, dict[str, int]] = {
    "containerd.v1.types.Status": {
        "UNKNOWN": 0,
        "CREATED": 1,
        "RUNNING": 2,
        "STOPPED": 3,
        "PAUSED": 4,
        "PAUSING": 5,
    },
    "containerd.services.content.v1.WriteAction": {"STAT": 0, "WRITE": 1, "COMMIT": 2},
    "containerd.services.snapshots.v1.Kind": {"UNKNOWN": 0, "VIEW": 1, "ACTIVE": 2, "COMMITTED": 3},
}

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"containerd_api.{name}")


def _pool() -> Any:
    for name in FILES:  # importing registers every file in the default pool
        _module(name)
    importlib.import_module("google.rpc.status_pb2")
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default()


def _type_of(field: Any) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return f"map<{_type_of(key)},{_type_of(value)}>"
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        base = field.message_type.full_name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        base = f"enum {field.enum_type.full_name}"
    else:
        base = _SCALARS[field.type]
    # protobuf 5+ spells it is_repeated; older releases only had label
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
    return f"repeated {base}" if repeated else base


def _service_module(service: str) -> str:
    for module, package in FILES.items():
        if module.startswith("services.") and service.startswith(package + "."):
            return module
    raise AssertionError(f"no module for {service}")


@pytest.mark.parametrize("module", sorted(FILES))
def test_files_use_containerds_packages(module: str) -> None:
    assert _module(module).DESCRIPTOR.package == FILES[module]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_has_containerds_rpcs(service: str) -> None:
    pool = _pool()
    desc = pool.FindServiceByName(service)
    package = service.rsplit(".", 1)[0]

    def full(name: str) -> str:
        return name if name.startswith("google.") else f"{package}.{name}"

    got = {
        m.name: (
            m.input_type.full_name,
            m.output_type.full_name,
            {(False, False): U, (False, True): S, (True, False): C, (True, True): B}[
                (m.client_streaming, m.server_streaming)
            ],
        )
        for m in desc.methods
    }
    want = {rpc: (full(req), full(resp), kind) for rpc, (req, resp, kind) in SERVICES[service].items()}
    assert got == want


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_grpc_stubs_exist_for_every_rpc(service: str) -> None:
    grpc_mod = _module(_service_module(service).removesuffix("_pb2") + "_pb2_grpc")
    short = service.rsplit(".", 1)[1]
    servicer = getattr(grpc_mod, f"{short}Servicer")
    assert hasattr(grpc_mod, f"{short}Stub")
    assert hasattr(grpc_mod, f"add_{short}Servicer_to_server")
    for rpc in SERVICES[service]:
        assert callable(getattr(servicer, rpc)), rpc


@pytest.mark.parametrize("message", sorted(MESSAGES))
def test_message_fields_match_containerd(message: str) -> None:
    desc = _pool().FindMessageTypeByName(message)
    got = {f.name: (f.number, _type_of(f)) for f in desc.fields}
    assert got == MESSAGES[message]


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_enum_values_match_containerd(enum: str) -> None:
    desc = _pool().FindEnumTypeByName(enum)
    assert {v.name: v.number for v in desc.values} == ENUMS[enum]


def test_every_event_payload_is_covered() -> None:
    """Each message in events/*.proto is in the field table above."""
    for module in (m for m in FILES if m.startswith("events.")):
        for desc in _module(module).DESCRIPTOR.message_types_by_name.values():
            assert desc.full_name in MESSAGES, desc.full_name


def test_wire_bytes_are_containerds() -> None:
    """A hand-assembled encoding (tags from containerd's numbers) decodes into our message."""
    mount_pb2 = _module("types.mount_pb2")

    def field(number: int, text: str) -> bytes:  # length-delimited: tag = number << 3 | 2
        return bytes([number << 3 | 2, len(text)]) + text.encode()

    raw = field(1, "overlay") + field(2, "overlay") + field(4, "ro") + field(4, "lowerdir=/a:/b")
    mount = mount_pb2.Mount.FromString(raw)
    assert (mount.type, mount.source, mount.target, list(mount.options)) == (
        "overlay",
        "overlay",
        "",
        ["ro", "lowerdir=/a:/b"],
    )
    assert mount.SerializeToString() == raw


@pytest.fixture
def socket_dir() -> Iterator[str]:
    # a short path: unix socket names are limited to 108 bytes
    path = tempfile.mkdtemp(prefix=f"pd-protos-{os.getpid()}-", dir="/tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_containerds_ctr_speaks_our_wire(socket_dir: str) -> None:
    """`ctr version` asks Version.Version, then Introspection.Server for the daemon's UUID."""
    import grpc
    from google.protobuf import empty_pb2

    from protos.gen.containerd_api.services.introspection.v1 import introspection_pb2 as intro_pb2
    from protos.gen.containerd_api.services.introspection.v1 import introspection_pb2_grpc as intro_grpc
    from protos.gen.containerd_api.services.version.v1 import version_pb2
    from protos.gen.containerd_api.services.version.v1 import version_pb2_grpc as version_grpc

    release, revision, server_uuid = (
        f"9.8.7-pydocker-{uuid.uuid4().hex[:8]}",
        uuid.uuid4().hex,
        str(uuid.uuid4()),
    )

    class Version(version_grpc.VersionServicer):
        def Version(
            self, request: empty_pb2.Empty, context: grpc.ServicerContext
        ) -> version_pb2.VersionResponse:
            return version_pb2.VersionResponse(version=release, revision=revision)

    class Introspection(intro_grpc.IntrospectionServicer):
        def Server(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> intro_pb2.ServerResponse:
            return intro_pb2.ServerResponse(uuid=server_uuid, pid=os.getpid())

    sock = os.path.join(socket_dir, "c.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    version_grpc.add_VersionServicer_to_server(Version(), server)
    # mypy-protobuf declares every RPC of a servicer abstract; grpc's generated base class
    # answers UNIMPLEMENTED for those not overridden, and ctr calls only these two.
    intro_grpc.add_IntrospectionServicer_to_server(Introspection(), server)  # type: ignore[abstract]
    assert server.add_insecure_port(f"unix:{sock}") == 1
    server.start()
    try:
        assert os.path.exists(CTR), f"{CTR} missing: scripts/setup-test installs Debian's containerd package"
        proc = subprocess.run(
            [CTR, "--address", sock, "--connect-timeout", "10s", "version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop(grace=None).wait(5)
    assert proc.returncode == 0, proc.stderr
    server_part = proc.stdout.split("Server:", 1)[1]
    assert f"Version:  {release}" in server_part
    assert f"Revision: {revision}" in server_part
    assert f"UUID: {server_uuid}" in server_part


def test_containerds_ctr_decodes_our_events(socket_dir: str) -> None:
    """`ctr events` unpacks our Envelopes and their Any payloads by type URL.

    The payloads cover both event packages, including the image events that
    containerd declares in containerd.services.images.v1.
    """
    import grpc

    from protos.gen.containerd_api.events import image_pb2 as image_events
    from protos.gen.containerd_api.events import task_pb2 as task_events
    from protos.gen.containerd_api.services.events.v1 import events_pb2
    from protos.gen.containerd_api.services.events.v1 import events_pb2_grpc as events_grpc

    tag = uuid.uuid4().hex[:12]
    payloads = [
        (
            "/tasks/exit",
            task_events.TaskExit(container_id=f"c-{tag}", id=f"c-{tag}", pid=4242, exit_status=7),
        ),
        ("/images/create", image_events.ImageCreate(name=f"docker.io/library/x-{tag}:1", labels={"k": tag})),
    ]
    subscribed: list[list[str]] = []

    class Events(events_grpc.EventsServicer):
        def Subscribe(
            self, request: events_pb2.SubscribeRequest, context: grpc.ServicerContext
        ) -> Iterator[events_pb2.Envelope]:
            subscribed.append(list(request.filters))
            for topic, event in payloads:
                envelope = events_pb2.Envelope(
                    namespace=f"ns-{tag}", topic=topic, event=protos.marshal_any(event)
                )
                envelope.timestamp.FromNanoseconds(1_700_000_000_123_456_789)
                yield envelope
            # returning ends the stream; ctr then exits after printing what it got

    sock = os.path.join(socket_dir, "e.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    events_grpc.add_EventsServicer_to_server(Events(), server)  # type: ignore[abstract]  # (only Subscribe)
    assert server.add_insecure_port(f"unix:{sock}") == 1
    server.start()
    try:
        proc = subprocess.run(
            [CTR, "--address", sock, "--connect-timeout", "10s", "events", "topic==/tasks/exit"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.stop(grace=None).wait(5)
    assert subscribed == [["topic==/tasks/exit"]]
    assert "cannot unmarshal" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout + proc.stderr
    exit_line, image_line = lines
    assert f"ns-{tag} /tasks/exit" in exit_line
    assert (
        f'"container_id":"c-{tag}"' in exit_line
        and '"pid":4242' in exit_line
        and '"exit_status":7' in exit_line
    )
    assert f"ns-{tag} /images/create" in image_line
    assert f'"name":"docker.io/library/x-{tag}:1"' in image_line and f'"labels":{{"k":"{tag}"}}' in image_line


def test_marshal_any_uses_containerds_type_urls() -> None:
    task_events = _module("events.task_pb2")
    packed = protos.marshal_any(task_events.TaskOOM(container_id="c"))
    assert packed.type_url == "containerd.events.TaskOOM"
    assert task_events.TaskOOM.FromString(packed.value).container_id == "c"
