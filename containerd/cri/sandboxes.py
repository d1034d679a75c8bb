"""Pod sandboxes: the infra (pause) container holding the pod's namespaces, and its network.

RunPodSandbox, in order, undoing what was done when a step fails (nothing half-created):
reserve the name; the sandbox image (imported from `sandbox_image_import` or pulled when
missing); the pod's files (hostname, hosts, resolv.conf) and /dev/shm; the network namespace
and CNI ADD (unless hostNetwork); the spec, container record, snapshot and task; start.
StopPodSandbox kills the pod's containers and the pause container and tears the network down;
RemovePodSandbox stops it if needed and removes everything, containers included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from common import libc
from containerd.client import IO, RUNC_V2, Container, Process, Runtime
from containerd.client.errors import NotFound as ClientNotFound
from containerd.client.typeurl import Payload
from containerd.cri import netns
from containerd.cri import spec as specs
from containerd.cri.cni import CNIError, NetworkResult, PodRef, PortMapping
from containerd.cri.filters import selects
from containerd.cri.store import KIND_LABEL, SANDBOX_EXTENSION, SANDBOX_TYPE, Item, SandboxMeta, now_ns
from containerd.cri.users import resolve_user
from containerd.errors import ContainerdError
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri

if TYPE_CHECKING:
    from containerd.cri.plugin import Plugin

log = logging.getLogger("pycontainerd.cri")
SHM_SIZE = 64 << 20


def sandbox_name(md: cri.PodSandboxMetadata) -> str:
    return f"{md.name}_{md.namespace}_{md.uid}_{md.attempt}"


class Sandboxes:
    def __init__(self, plugin: Plugin) -> None:
        self.p = plugin
        self._image_lock = threading.Lock()
        # CNI ADD/DEL and member stops of pods started or stopped at once, as many as the CRI
        # serves (a smaller pool queued the 9th pod's network behind the first eight)
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="cri-network")

    # --- run -----------------------------------------------------------------------------------

    def run(self, config: cri.PodSandboxConfig, handler: str) -> str:
        if not config.HasField("metadata"):
            raise ContainerdError("sandbox config must include metadata")  # UNKNOWN, as containerd
        if handler and handler != "runc":
            raise ContainerdError(f'failed to get sandbox runtime: no runtime for "{handler}" is configured')
        id_ = secrets.token_hex(32)
        name = sandbox_name(config.metadata)
        self.p.sandboxes.reserve(name, id_)
        undo: list[Callable[[], Any]] = [lambda: self.p.sandboxes.release(name)]
        try:
            item = self._run(id_, name, config, handler, undo)
        except BaseException:
            for step in reversed(undo):
                try:
                    step()
                except Exception:
                    log.exception("rolling back sandbox %s", id_)
            raise
        self.p.sandboxes.add(item)
        return id_

    def _run(
        self, id_: str, name: str, config: cri.PodSandboxConfig, handler: str, undo: list[Callable[[], Any]]
    ) -> Item[SandboxMeta]:
        p = self.p
        image = self.ensure_image()
        ns = config.linux.security_context.namespace_options
        host_net = ns.network == cri.NODE
        meta = SandboxMeta(
            id=id_, name=name, config=config.SerializeToString(), runtime_handler=handler, created_at=now_ns(),
            cgroup_parent=config.linux.cgroup_parent, root=os.path.join(p.root, "sandboxes", id_), host_network=host_net,
        )  # fmt: skip
        # the pod's files and /dev/shm
        os.makedirs(meta.root, mode=0o711)
        undo.append(lambda: shutil.rmtree(meta.root, ignore_errors=True))
        self._write_files(meta.root, config, host_net)
        if ns.ipc != cri.NODE:
            meta.shm = os.path.join(p.state, "sandboxes", id_, "shm")
            os.makedirs(meta.shm, mode=0o711)
            undo.append(lambda: shutil.rmtree(os.path.dirname(meta.shm), ignore_errors=True))
            _mount_tmpfs(meta.shm, SHM_SIZE)
            undo.append(lambda: _unmount(meta.shm))
        # network: the CNI plugins run while the pause container is created and started (both
        # only need the pinned namespace); the sandbox is returned once both are done
        network: Future[NetworkResult] | None = None
        if not host_net:
            meta.netns = netns.create(p.netns_dir)
            undo.append(lambda: netns.remove(meta.netns))
            pod = self.pod_ref(meta, config)
            undo.append(lambda: p.cni.teardown(pod))
            network = self._pool.submit(p.cni.setup, pod)
            undo.append(lambda: wait([network]))  # runs before the teardown above
        # the pause container
        sc = config.linux.security_context
        user = resolve_user(
            image.config, None, sc.run_as_user.value if sc.HasField("run_as_user") else None,
            sc.run_as_group.value if sc.HasField("run_as_group") else None, list(sc.supplemental_groups),
        )  # fmt: skip
        spec = specs.sandbox_spec(
            id_, config, image.config, meta.netns, shm=meta.shm or specs.HOST_SHM, resolv_file=os.path.join(meta.root, "resolv.conf"), user=user,
            restrict_oom=p.cfg.restrict_oom_score_adj,
        )  # fmt: skip
        client = p.client
        record = Container.with_oci_spec(
            id_, spec, image=image.repo_tags[0] if image.repo_tags else image.id, snapshotter=p.cfg.snapshotter,
            snapshot_key=id_, runtime=self.runtime(), labels={KIND_LABEL: "sandbox", **_filtered(config.labels)},
            extensions={SANDBOX_EXTENSION: Payload(SANDBOX_TYPE, meta.to_json())},
        )  # fmt: skip
        mounts = client.snapshots(p.cfg.snapshotter).prepare(id_, image.top_chain)
        undo.append(lambda: client.snapshots(p.cfg.snapshotter).remove(id_))
        client.containers.create(record)
        undo.append(lambda: client.containers.delete(id_))
        item: Item[SandboxMeta] = Item(meta, self.status_path(id_))
        p.waiter(id_)
        pid = client.tasks.create(id_, mounts, IO())
        undo.append(lambda: self._kill_and_delete(id_))
        client.tasks.start(id_)
        if network is not None:
            try:
                result = network.result()
            except CNIError as exc:
                raise ContainerdError(f"failed to setup network for sandbox {id_!r}: {exc}") from None
            meta.ip = result.primary
            meta.additional_ips = result.ips[1:]
            client.containers.update(
                Container(id_, extensions={SANDBOX_EXTENSION: Payload(SANDBOX_TYPE, meta.to_json())}),
                ["extensions"],
            )
        item.update(pid=pid, started_at=now_ns())
        return item

    def runtime(self) -> Runtime:
        binary, systemd = self.p.runtime_binary(), self.p.cfg.systemd_cgroup
        if not binary and not systemd:
            return Runtime(RUNC_V2)
        from containerd.client import RuncOptions

        # SystemdCgroup reaches the runtime as --systemd-cgroup (through the shim), as with containerd
        return Runtime(RUNC_V2, Payload.message(RuncOptions(binary_name=binary, systemd_cgroup=systemd)))

    def ensure_image(self) -> Any:
        p = self.p
        image = p.images.find(p.cfg.sandbox_image)
        if image is not None:  # pods started at once look it up side by side
            return image
        with self._image_lock:  # one import or pull when it is missing
            image = p.images.find(p.cfg.sandbox_image)
            if image is not None:
                return image
            if p.cfg.sandbox_image_import:
                p.images.import_layout(p.cfg.sandbox_image_import)
            else:
                p.images.pull(p.cfg.sandbox_image)
            image = p.images.find(p.cfg.sandbox_image)
            if image is None:
                raise ContainerdError(f"failed to get sandbox image {p.cfg.sandbox_image!r}: not found")
            return image

    def pod_ref(self, meta: SandboxMeta, config: cri.PodSandboxConfig) -> PodRef:
        proto = {cri.TCP: "tcp", cri.UDP: "udp", cri.SCTP: "sctp"}
        ports = [
            PortMapping(pm.host_port, pm.container_port, proto[pm.protocol], pm.host_ip)
            for pm in config.port_mappings
            if pm.host_port > 0
        ]
        md = config.metadata
        return PodRef(meta.id, meta.netns, md.name, md.namespace, md.uid, ports)

    def _write_files(self, root: str, config: cri.PodSandboxConfig, host_net: bool) -> None:
        hostname = config.hostname or os.uname().nodename
        with open(os.path.join(root, "hostname"), "w") as f:
            f.write(hostname + "\n")
        shutil.copyfile("/etc/hosts", os.path.join(root, "hosts"))
        dns = config.dns_config
        if dns.servers or dns.searches or dns.options:
            lines = []
            if dns.searches:
                lines.append("search " + " ".join(dns.searches))
            lines += [f"nameserver {s}" for s in dns.servers]
            if dns.options:
                lines.append("options " + " ".join(dns.options))
            with open(os.path.join(root, "resolv.conf"), "w") as f:
                f.write("\n".join(lines) + "\n")
        else:
            shutil.copyfile("/etc/resolv.conf", os.path.join(root, "resolv.conf"))

    def status_path(self, id_: str) -> str:
        return os.path.join(self.p.root, "sandboxes-status", f"{id_}.json")

    # --- stop and remove -------------------------------------------------------------------------

    def stop(self, id_: str) -> None:
        item = self.p.sandboxes.get(id_)
        id_ = item.meta.id
        with item.lock:
            members = [c.meta.id for c in self.p.containers.list() if c.meta.sandbox_id == id_]
            list(self._pool.map(lambda cid: self.p.ctrs.stop(cid, 0), members))
            # the network goes while the pause container is killed (CNI DEL needs only the pinned netns)
            network = (
                self._pool.submit(self.p.cni.teardown, self.pod_ref(item.meta, self.config(item)))
                if item.meta.netns
                else None
            )
            self._kill_and_delete(id_)
            if not item.status.finished_at:
                item.update(pid=0, finished_at=now_ns(), exit_code=137)
            if item.meta.shm:
                _unmount(item.meta.shm)
            if network is not None:
                try:
                    network.result()
                except CNIError as exc:
                    raise ContainerdError(f"failed to destroy network for sandbox {id_!r}: {exc}") from None
                netns.remove(item.meta.netns)

    def _kill_and_delete(self, id_: str) -> None:
        client = self.p.client
        waiter = self.p.waiter(id_)
        try:
            process = client.tasks.get(id_)
        except ClientNotFound:
            return
        if process.status.alive:
            with contextlib.suppress(ClientNotFound):
                client.tasks.kill(id_, 9, all=True)
            if not waiter.done.wait(10):
                log.warning("sandbox %s: no exit event after SIGKILL", id_)
        self.p.delete_task(id_)

    def remove(self, id_: str) -> None:
        item = self.p.sandboxes.find(id_)
        if item is None:
            return  # idempotent, as containerd's
        id_ = item.meta.id
        if self.state(item) == cri.SANDBOX_READY or item.meta.netns and netns.is_pinned(item.meta.netns):
            self.stop(id_)
        for c in self.p.containers.list():
            if c.meta.sandbox_id == id_:
                self.p.ctrs.remove(c.meta.id)
        client = self.p.client
        with contextlib.suppress(ClientNotFound):
            client.containers.delete(id_)
        with contextlib.suppress(ClientNotFound):
            client.snapshots(self.p.cfg.snapshotter).remove(id_)
        shutil.rmtree(item.meta.root, ignore_errors=True)
        if item.meta.shm:
            shutil.rmtree(os.path.dirname(item.meta.shm), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.status_path(id_))
        self.p.sandboxes.remove(id_)
        self.p.drop_waiter(id_)

    # --- status --------------------------------------------------------------------------------

    @staticmethod
    def config(item: Item[SandboxMeta]) -> cri.PodSandboxConfig:
        return cri.PodSandboxConfig.FromString(item.meta.config)

    @staticmethod
    def state(item: Item[SandboxMeta]) -> cri.PodSandboxState.ValueType:
        return cri.SANDBOX_READY if item.status.pid and not item.status.finished_at else cri.SANDBOX_NOTREADY

    def status(self, id_: str, verbose: bool) -> cri.PodSandboxStatusResponse:
        item = self.p.sandboxes.get(id_)
        config = self.config(item)
        ns = config.linux.security_context.namespace_options
        status = cri.PodSandboxStatus(
            id=item.meta.id, metadata=config.metadata, state=self.state(item), created_at=item.meta.created_at,
            labels=config.labels, annotations=config.annotations, runtime_handler=item.meta.runtime_handler,
        )  # fmt: skip
        status.network.SetInParent()  # present with no address for a host-network pod, as containerd's
        if not item.meta.host_network:
            status.network.ip = item.meta.ip
            status.network.additional_ips.extend(cri.PodIP(ip=ip) for ip in item.meta.additional_ips)
        status.linux.namespaces.options.CopyFrom(
            cri.NamespaceOption(network=ns.network, pid=ns.pid, ipc=ns.ipc)
        )
        resp = cri.PodSandboxStatusResponse(status=status)
        if verbose:
            import json

            resp.info["info"] = json.dumps(
                {
                    "pid": item.status.pid,
                    "processStatus": "running" if self.state(item) == cri.SANDBOX_READY else "deleted",
                    "netNamespaceClosed": not (item.meta.netns and netns.is_pinned(item.meta.netns)),
                    "image": self.p.cfg.sandbox_image,
                    "snapshotKey": item.meta.id,
                    "snapshotter": self.p.cfg.snapshotter,
                    "runtimeHandler": item.meta.runtime_handler,
                    "runtimeType": RUNC_V2,
                    **self.p.verbose_runtime(item.meta.id),
                    "config": json.loads(_to_json(config)),
                    **(
                        {"cniResult": cni_result}
                        if (cni_result := self.p.cni.result_info(item.meta.id))
                        else {}
                    ),
                }
            )
        return resp

    def list(self, flt: cri.PodSandboxFilter | None) -> list[cri.PodSandbox]:
        out = []
        for item in self.p.sandboxes.list():
            config = self.config(item)
            state = self.state(item)
            if flt is not None and not selects(flt, item.meta.id, config.labels, state=state):
                continue
            out.append(
                cri.PodSandbox(
                    id=item.meta.id,
                    metadata=config.metadata,
                    state=state,
                    created_at=item.meta.created_at,
                    labels=config.labels,
                    annotations=config.annotations,
                    runtime_handler=item.meta.runtime_handler,
                )  # fmt: skip
            )
        return out

    # --- restart -------------------------------------------------------------------------------

    def adopt(self, record: Container, task: Process | None) -> None:
        payload = record.extensions[SANDBOX_EXTENSION]
        meta = SandboxMeta.from_json(payload.value)
        status = Item.load_status(self.status_path(meta.id))
        item: Item[SandboxMeta] = Item(meta, self.status_path(meta.id), status)
        self.p.sandboxes.add(item)
        if task is not None and task.status.alive:
            if not item.status.pid:
                item.update(pid=task.pid, started_at=item.status.started_at or now_ns())
            return
        if task is not None:  # exited while the daemon was down
            self.p.handle_exit(meta.id, task.exit_status, task.exited_at or now_ns())
        elif not item.status.finished_at:
            item.update(pid=0, finished_at=now_ns(), exit_code=255, reason="Unknown")


def _filtered(labels: Any) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != KIND_LABEL}


def _to_json(message: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(message, preserving_proto_field_name=False)


def _mount_tmpfs(path: str, size: int) -> None:
    try:
        libc.mount(
            "shm", path, "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, f"mode=1777,size={size}"
        )
    except OSError as exc:
        raise ContainerdError(f"failed to mount sandbox shm: {os.strerror(exc.errno or 0)}") from None


def _unmount(path: str) -> None:
    """Detach; a path no longer mounted (a second removal) is fine."""
    try:
        libc.umount(path, libc.MNT_DETACH)
    except OSError:
        pass
