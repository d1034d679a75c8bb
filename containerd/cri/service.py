"""The CRI's gRPC services (runtime.v1 RuntimeService and ImageService): glue to the plugin.

Errors travel as containerd's CRI plugin sends them: its error kinds become the matching status
codes (NotFound for an unknown pod, container or image...), anything it reports as a plain
error is UNKNOWN with the message (containerd.rpc.handler does the mapping, as for the daemon's
other services).
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

import grpc

from containerd.cri import stats
from containerd.cri.filters import selects
from containerd.cri.images import fs_usage
from containerd.errors import InvalidArgument, NotFound, Unavailable, Unimplemented
from containerd.rpc import handler
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri
from protos.gen.cri_api.runtime.v1 import api_pb2_grpc

if TYPE_CHECKING:
    from containerd.cri.plugin import Plugin

RUNTIME_NAME = "pycontainerd"
API_VERSION = "v1"


def _wait(p: Plugin) -> None:
    if not p.recovered.wait(60):
        raise Unavailable("cri plugin is still recovering its pods")


class RuntimeService(api_pb2_grpc.RuntimeServiceServicer):
    def __init__(self, plugin: Plugin) -> None:
        self.p = plugin

    @handler
    def Version(self, request: Any, context: grpc.ServicerContext) -> Any:
        from containerd.server import VERSION

        return cri.VersionResponse(
            version="0.1.0",
            runtime_name=RUNTIME_NAME,
            runtime_version=VERSION,
            runtime_api_version=API_VERSION,
        )

    @handler
    def Status(self, request: Any, context: grpc.ServicerContext) -> Any:
        problem = self.p.cni.status()
        network = cri.RuntimeCondition(type="NetworkReady", status=not problem)
        if problem:
            network.reason = "NetworkPluginNotReady"
            network.message = f"Network plugin returns error: {problem}"
        resp = cri.StatusResponse(
            status=cri.RuntimeStatus(
                conditions=[cri.RuntimeCondition(type="RuntimeReady", status=True), network]
            )
        )
        if request.verbose:
            cfg = self.p.cfg
            resp.info["config"] = json.dumps(
                {
                    "sandboxImage": cfg.sandbox_image,
                    "restrictOOMScoreAdj": cfg.restrict_oom_score_adj,
                    "cni": {
                        "binDir": cfg.cni_bin_dir,
                        "confDir": cfg.cni_conf_dir,
                        "maxConfNum": cfg.cni_max_conf_num,
                    },
                    "containerd": {"snapshotter": cfg.snapshotter, "defaultRuntimeName": "runc"},
                    "streamServerAddress": cfg.stream_server_address,
                    "streamServerPort": str(cfg.stream_server_port),
                    "maxContainerLogSize": cfg.max_container_log_line_size,
                    "registry": {"mirrors": {h: {"endpoint": e} for h, e in cfg.mirrors.items()}},
                    "containerdRootDir": self.p.daemon_cfg.root,
                    "containerdEndpoint": self.p.daemon_cfg.address,
                    "rootDir": self.p.root,
                    "stateDir": self.p.state,
                }
            )
            from containerd.cri.cni import CNIError, config_info

            try:
                resp.info["cniconfig"] = json.dumps(
                    config_info(cfg.cni_conf_dir, cfg.cni_bin_dir, cfg.cni_max_conf_num)
                )
            except CNIError as exc:
                load_status = str(exc)
            else:
                load_status = "OK"
            # containerd 1.6 reports the default network's load and, under the same key, the last one
            resp.info["lastCNILoadStatus"] = load_status
            resp.info["lastCNILoadStatus.default"] = load_status
        return resp

    @handler
    def UpdateRuntimeConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.p.pod_cidr = request.runtime_config.network_config.pod_cidr
        return cri.UpdateRuntimeConfigResponse()

    @handler
    def RuntimeConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        """The cgroup driver kubelet is to use (KubeletCgroupDriverFromCRI): the runc options'
        SystemdCgroup, as containerd 1.7 answers it."""
        driver = cri.SYSTEMD if self.p.cfg.systemd_cgroup else cri.CGROUPFS
        return cri.RuntimeConfigResponse(linux=cri.LinuxRuntimeConfiguration(cgroup_driver=driver))

    # --- sandboxes ---------------------------------------------------------------------------

    @handler
    def RunPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.RunPodSandboxResponse(
            pod_sandbox_id=self.p.pods.run(request.config, request.runtime_handler)
        )

    @handler
    def StopPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.pods.stop(_required(request.pod_sandbox_id, "sandbox id"))
        return cri.StopPodSandboxResponse()

    @handler
    def RemovePodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.pods.remove(_required(request.pod_sandbox_id, "sandbox id"))
        return cri.RemovePodSandboxResponse()

    @handler
    def PodSandboxStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        resp = self.p.pods.status(_required(request.pod_sandbox_id, "sandbox id"), request.verbose)
        resp.timestamp = time.time_ns()
        return resp

    @handler
    def ListPodSandbox(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.ListPodSandboxResponse(
            items=self.p.pods.list(request.filter if request.HasField("filter") else None)
        )

    # --- containers --------------------------------------------------------------------------

    @handler
    def CreateContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        sandbox_config = request.sandbox_config if request.HasField("sandbox_config") else None
        id_ = self.p.ctrs.create(
            _required(request.pod_sandbox_id, "sandbox id"), request.config, sandbox_config
        )
        return cri.CreateContainerResponse(container_id=id_)

    @handler
    def StartContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.ctrs.start(_required(request.container_id, "container id"))
        return cri.StartContainerResponse()

    @handler
    def StopContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.ctrs.stop(_required(request.container_id, "container id"), int(request.timeout))
        return cri.StopContainerResponse()

    @handler
    def RemoveContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.ctrs.remove(_required(request.container_id, "container id"))
        return cri.RemoveContainerResponse()

    @handler
    def ListContainers(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.ListContainersResponse(
            containers=self.p.ctrs.list(request.filter if request.HasField("filter") else None)
        )

    @handler
    def ContainerStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return self.p.ctrs.status(_required(request.container_id, "container id"), request.verbose)

    @handler
    def UpdateContainerResources(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.ctrs.update(_required(request.container_id, "container id"), request.linux)
        return cri.UpdateContainerResourcesResponse()

    @handler
    def ReopenContainerLog(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        self.p.ctrs.reopen_log(_required(request.container_id, "container id"))
        return cri.ReopenContainerLogResponse()

    @handler
    def ExecSync(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return self.p.ctrs.exec_sync(
            _required(request.container_id, "container id"), list(request.cmd), int(request.timeout)
        )

    @handler
    def Exec(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.ExecResponse(url=self.p.streaming().exec_url(request))

    @handler
    def Attach(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.AttachResponse(url=self.p.streaming().attach_url(request))

    @handler
    def PortForward(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        return cri.PortForwardResponse(url=self.p.streaming().port_forward_url(request))

    # --- stats -------------------------------------------------------------------------------

    @handler
    def ContainerStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        item = self.p.containers.get(_required(request.container_id, "container id"))
        return cri.ContainerStatsResponse(stats=stats.container_stats(self.p, [item])[0])

    @handler
    def ListContainerStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        f = request.filter
        items = []
        for item in self.p.containers.list():  # every state, as containerd 1.6
            labels = self.p.ctrs.config(item).labels
            if selects(f, item.meta.id, labels, sandbox_id=item.meta.sandbox_id):
                items.append(item)
        return cri.ListContainerStatsResponse(stats=stats.container_stats(self.p, items))

    @handler
    def PodSandboxStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        sandbox = self.p.sandboxes.get(_required(request.pod_sandbox_id, "sandbox id"))
        return cri.PodSandboxStatsResponse(stats=stats.sandbox_stats(self.p, sandbox))

    @handler
    def ListPodSandboxStats(self, request: Any, context: grpc.ServicerContext) -> Any:
        _wait(self.p)
        f = request.filter
        out = []
        for sandbox in self.p.sandboxes.list():
            if self.p.pods.state(sandbox) != cri.SANDBOX_READY:
                continue
            if selects(f, sandbox.meta.id, self.p.pods.config(sandbox).labels):
                out.append(stats.sandbox_stats(self.p, sandbox))
        return cri.ListPodSandboxStatsResponse(stats=out)

    # --- not in containerd 1.6 ----------------------------------------------------------------

    @handler
    def CheckpointContainer(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise Unimplemented("method CheckpointContainer not implemented")

    @handler
    def GetContainerEvents(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise Unimplemented("method GetContainerEvents not implemented")
        yield  # a server-streaming method

    @handler
    def ListMetricDescriptors(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise Unimplemented("method ListMetricDescriptors not implemented")

    @handler
    def ListPodSandboxMetrics(self, request: Any, context: grpc.ServicerContext) -> Any:
        raise Unimplemented("method ListPodSandboxMetrics not implemented")


class ImageService(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, plugin: Plugin) -> None:
        self.p = plugin

    def _image(self, item: Any) -> cri.Image:
        image = cri.Image(
            id=item.id, repo_tags=item.repo_tags, repo_digests=item.repo_digests, size=item.size
        )
        user = str((item.config.get("config") or {}).get("User") or "").split(":", 1)[0]
        if user.isdigit():
            image.uid.value = int(user)
        elif user:
            image.username = user
        elif "config" in item.config:
            image.uid.value = 0
        image.spec.image = item.id
        image.pinned = False
        return image

    @handler
    def ListImages(self, request: Any, context: grpc.ServicerContext) -> Any:
        items = self.p.images.all()
        want = request.filter.image.image if request.HasField("filter") else ""
        if want:
            found = self.p.images.find(want)
            items = [found] if found is not None else []
        return cri.ListImagesResponse(images=[self._image(i) for i in items])

    @handler
    def ImageStatus(self, request: Any, context: grpc.ServicerContext) -> Any:
        item = self.p.images.find(_required(request.image.image, "image"))
        if item is None:
            return cri.ImageStatusResponse()
        resp = cri.ImageStatusResponse(image=self._image(item))
        if request.verbose:
            resp.info["info"] = json.dumps({"chainID": item.top_chain, "imageSpec": item.config})
        return resp

    @handler
    def PullImage(self, request: Any, context: grpc.ServicerContext) -> Any:
        ref = _required(request.image.image, "image")
        return cri.PullImageResponse(
            image_ref=self.p.images.pull(ref, request.auth if request.HasField("auth") else None)
        )

    @handler
    def RemoveImage(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.p.images.remove(_required(request.image.image, "image"))
        return cri.RemoveImageResponse()

    @handler
    def ImageFsInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        path = os.path.join(self.p.daemon_cfg.root, "snapshots", self.p.cfg.snapshotter)
        used, inodes = fs_usage(path)
        usage = cri.FilesystemUsage(
            timestamp=time.time_ns(), fs_id=cri.FilesystemIdentifier(mountpoint=path),
            used_bytes=cri.UInt64Value(value=used), inodes_used=cri.UInt64Value(value=inodes),
        )  # fmt: skip
        return cri.ImageFsInfoResponse(image_filesystems=[usage])


def _required(value: str, what: str) -> str:
    if not value:
        raise InvalidArgument(f"{what} must not be empty")
    return value


__all__ = ["ImageService", "NotFound", "RuntimeService"]
