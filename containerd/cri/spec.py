"""OCI runtime specs for a pod's infra (pause) container and for its containers.

containerd's CRI defaults: runc's default mounts, masked and read-only paths; containerd's
default capability set; the pod's namespaces joined by path (network by the pinned netns, IPC,
UTS and, when the pod shares it, PID by /proc/<pause pid>/ns/*); /etc/hosts, /etc/resolv.conf,
/etc/hostname and the pod's /dev/shm from the sandbox's directory; cgroups under the pod's
cgroup parent (cgroupfs paths). Everything the CRI request can get wrong is refused here, before
anything exists (InvalidArgument).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from containerd.cri import ocidefaults, seccomp
from containerd.errors import ContainerdError, InvalidArgument
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip
SANDBOX_OOM_SCORE_ADJ = -998
SANDBOX_CPU_SHARES = 2
HOST_SHM = "/dev/shm"  # a hostIPC pod's /dev/shm is the host's
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]  # fmt: skip


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


def bounding_caps() -> list[str]:
    """The daemon's own bounding set: what `privileged` can give (as containerd's WithAllKnownCapabilities
    is cut to what the runtime may grant)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return [f"CAP_{name}" for i, name in enumerate(_CAP_NAMES) if mask & (1 << i)]
    return list(DEFAULT_CAPS)


def _base(hostname: str) -> dict[str, Any]:
    spec = ocidefaults.linux_spec(hostname, DEFAULT_PATH)
    spec["root"] = {"path": "rootfs", "readonly": False}
    process = spec["process"]
    process["terminal"] = False
    process["env"] = [DEFAULT_PATH]
    process["cwd"] = "/"
    process["noNewPrivileges"] = False
    process["capabilities"] = {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")}
    process["rlimits"] = []
    spec["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]
    spec["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return spec


def _set_namespace(spec: dict[str, Any], kind: str, path: str | None) -> None:
    """path None: drop the namespace (share the host's); "" a new one; else join that one."""
    namespaces = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != kind]
    if path is not None:
        namespaces.append({"type": kind, **({"path": path} if path else {})})
    spec["linux"]["namespaces"] = namespaces


def _image_env(image_config: Mapping[str, Any]) -> list[str]:
    return list((image_config.get("config") or {}).get("Env") or [DEFAULT_PATH])


def _merge_env(base: Sequence[str], extra: Sequence[tuple[str, str]]) -> list[str]:
    out: dict[str, str] = {}
    for item in base:
        key, _, value = item.partition("=")
        out[key] = value
    for key, value in extra:
        out[key] = value
    return [f"{k}={v}" for k, v in out.items()]


def _cap_name(name: str) -> str:
    return name if name.startswith("CAP_") else f"CAP_{name}"


def _capabilities(caps: cri.Capability | None, privileged: bool) -> list[str]:
    if privileged:
        return bounding_caps()
    current = list(DEFAULT_CAPS)
    if caps is None:
        return current
    add = [c.upper() for c in caps.add_capabilities]
    drop = [c.upper() for c in caps.drop_capabilities]
    norm = _cap_name
    known = set(bounding_caps()) | set(DEFAULT_CAPS) | {f"CAP_{n}" for n in _CAP_NAMES}
    for c in add + drop:
        if c != "ALL" and norm(c) not in known:
            raise InvalidArgument(f"unknown capability {c!r}")
    if "ALL" in add:
        current = bounding_caps()
    else:
        current += [norm(c) for c in add if norm(c) not in current]
    if "ALL" in drop:
        current = [norm(c) for c in add if c != "ALL"]
    else:
        current = [c for c in current if c not in {norm(d) for d in drop}]
    return current


def _set_caps(spec: dict[str, Any], caps: list[str], ambient: Sequence[str] = ()) -> None:
    process = spec["process"]
    process["capabilities"] = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    if ambient:
        process["capabilities"]["ambient"] = list(ambient)
        process["capabilities"]["inheritable"] = list(ambient)


def _host_devices() -> list[dict[str, Any]]:
    """Every device node of the host's /dev, for a privileged container (as WithHostDevices)."""
    out = []
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [
            d
            for d in dirnames
            if os.path.join(dirpath, d) not in ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/.lxc")
        ]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                if path == "/dev/console":
                    continue
                out.append(
                    {
                        "path": path,
                        "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                        "major": os.major(st.st_rdev),
                        "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode),
                        "uid": st.st_uid,
                        "gid": st.st_gid,
                    }
                )
    return out


def _privileged(spec: dict[str, Any]) -> None:
    linux = spec["linux"]
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux.pop("seccomp", None)
    linux["devices"] = _host_devices()
    linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    for m in spec["mounts"]:
        if m["destination"] in ("/sys", "/sys/fs/cgroup"):
            m["options"] = [o for o in m.get("options", []) if o != "ro"] + ["rw"]


def _resources(spec: dict[str, Any], res: cri.LinuxContainerResources | None) -> None:
    if res is None:
        return
    r = spec["linux"]["resources"]
    cpu: dict[str, Any] = {}
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        r["cpu"] = cpu
    if res.memory_limit_in_bytes:
        r["memory"] = {"limit": res.memory_limit_in_bytes}
        if res.memory_swap_limit_in_bytes:
            r["memory"]["swap"] = res.memory_swap_limit_in_bytes
    if res.hugepage_limits:
        r["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits]
    if res.unified:
        r["unified"] = dict(res.unified)


def resources_json(res: cri.LinuxContainerResources) -> dict[str, Any]:
    """The OCI LinuxResources of an UpdateContainerResources request."""
    spec: dict[str, Any] = {"linux": {"resources": {}}}
    _resources(spec, res)
    return dict(spec["linux"]["resources"])


def oom_score_adj(preferred: int, restrict: bool) -> int:
    """containerd's restrict_oom_score_adj: never below the daemon's own (lowering needs CAP_SYS_RESOURCE)."""
    if not restrict:
        return preferred
    with open("/proc/self/oom_score_adj") as f:
        current = int(f.read().strip() or 0)
    return max(preferred, current)


def cgroups_path(parent: str, id_: str) -> str:
    """As containerd 1.6 names them: under a systemd slice (the parent's last element ends in
    ".slice", as kubelet's systemd driver sends "/kubepods.slice/.../kubepods-besteffort-pod<uid>.slice")
    in the systemd driver's "slice:prefix:name" form, else a path below the parent (/k8s.io without
    one). The form follows the parent, not SystemdCgroup: the runtime refuses a mismatch."""
    base = posixpath.basename(parent)
    if base.endswith(".slice"):
        return f"{base}:cri-containerd:{id_}"
    return posixpath.join(parent, id_) if parent else f"/k8s.io/{id_}"


# --- sandbox -----------------------------------------------------------------------------------


def sandbox_spec(
    id_: str,
    config: cri.PodSandboxConfig,
    image_config: Mapping[str, Any],
    netns: str,
    *,
    shm: str,
    resolv_file: str,
    user: User,
    restrict_oom: bool,
) -> dict[str, Any]:
    linux = config.linux
    sc = linux.security_context
    ns = sc.namespace_options
    host_net = ns.network == cri.NODE
    spec = _base(config.hostname if not host_net or config.hostname else os.uname().nodename)
    image = image_config.get("config") or {}
    args = list(image.get("Entrypoint") or []) + list(image.get("Cmd") or [])
    if not args:
        raise InvalidArgument("sandbox image has no entrypoint or command")
    process = spec["process"]
    process["args"] = args
    process["env"] = _image_env(image_config)
    process["cwd"] = image.get("WorkingDir") or "/"
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    process["noNewPrivileges"] = True
    process["oomScoreAdj"] = oom_score_adj(SANDBOX_OOM_SCORE_ADJ, restrict_oom)
    _set_namespace(spec, "network", None if host_net else netns)
    _set_namespace(spec, "ipc", None if ns.ipc == cri.NODE else "")
    _set_namespace(spec, "uts", None if host_net else "")
    _set_namespace(spec, "pid", None if ns.pid == cri.NODE else "")
    if host_net:
        spec.pop("hostname", None)
    # containerd 1.6: the pause container's root is always read-only; it gets no cgroup tree, and
    # the pod's /dev/shm (the host's with hostIPC) and resolv.conf bound read-only
    spec["root"]["readonly"] = True
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    for dest, source in (("/dev/shm", shm), ("/etc/resolv.conf", resolv_file)):
        spec["mounts"].append(
            {"destination": dest, "type": "bind", "source": source, "options": ["rbind", "ro"]}
        )
    spec["linux"]["cgroupsPath"] = cgroups_path(linux.cgroup_parent, id_)
    spec["linux"]["resources"]["cpu"] = {"shares": SANDBOX_CPU_SHARES}
    if linux.sysctls:
        spec["linux"]["sysctl"] = dict(linux.sysctls)
    caps = _capabilities(None, sc.privileged)
    _set_caps(spec, caps)
    if sc.privileged:
        _privileged(spec)
    elif sc.HasField("seccomp") or sc.seccomp_profile_path:
        profile = seccomp.for_profile(
            sc.seccomp.profile_type, sc.seccomp.localhost_ref, sc.seccomp_profile_path, caps, False
        )
        if profile is not None:
            spec["linux"]["seccomp"] = profile
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": id_,
        "io.kubernetes.cri.sandbox-name": config.metadata.name,
        "io.kubernetes.cri.sandbox-namespace": config.metadata.namespace,
        "io.kubernetes.cri.sandbox-uid": config.metadata.uid,
        "io.kubernetes.cri.sandbox-log-directory": config.log_directory,
    }
    return spec


# --- containers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxPaths:
    id: str
    pid: int  # the pause process, whose namespaces the containers join
    netns: str
    hostname_file: str
    hosts_file: str
    resolv_file: str
    shm: str
    cgroup_parent: str
    host_network: bool
    host_ipc: bool
    pid_mode: int  # the pod's NamespaceOption.pid
    hostname: str
    privileged: bool = False  # the pod's security context
    name: str = ""  # the pod's metadata
    namespace: str = ""
    uid: str = ""


def command_of(config: cri.ContainerConfig, image_config: Mapping[str, Any]) -> list[str]:
    """Kubernetes' rule: command replaces the entrypoint, args the image's cmd."""
    image = image_config.get("config") or {}
    command, args = list(config.command), list(config.args)
    if not command:
        command = list(image.get("Entrypoint") or [])
        if not args:
            args = list(image.get("Cmd") or [])
    full = command + args
    if not full:
        raise InvalidArgument("no command specified")
    return full


def container_spec(
    id_: str,
    config: cri.ContainerConfig,
    sandbox: SandboxPaths,
    image_config: Mapping[str, Any],
    *,
    user: User,
    restrict_oom: bool,
) -> dict[str, Any]:
    linux = config.linux
    sc = linux.security_context
    if sc.privileged and not sandbox.privileged:
        raise ContainerdError(
            "no privileged container allowed in sandbox"
        )  # containerd: a plain error, Unknown
    spec = _base(sandbox.hostname)
    image = image_config.get("config") or {}
    process = spec["process"]
    process["args"] = command_of(config, image_config)
    # as containerd: HOSTNAME after the default PATH, then the image's variables, then the request's
    base_env = [DEFAULT_PATH, f"HOSTNAME={sandbox.hostname}", *_image_env(image_config)]
    process["env"] = _merge_env(base_env, [(kv.key, kv.value) for kv in config.envs])
    process["cwd"] = config.working_dir or image.get("WorkingDir") or "/"
    process["terminal"] = config.tty
    if config.tty and not any(e.startswith("TERM=") for e in process["env"]):
        process["env"].append("TERM=xterm")
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    process["noNewPrivileges"] = sc.no_new_privs
    if linux.resources.oom_score_adj:
        process["oomScoreAdj"] = oom_score_adj(int(linux.resources.oom_score_adj), restrict_oom)
    # the pod's namespaces
    _set_namespace(spec, "network", None if sandbox.host_network else sandbox.netns)
    _set_namespace(spec, "ipc", None if sandbox.host_ipc else f"/proc/{sandbox.pid}/ns/ipc")
    _set_namespace(spec, "uts", None if sandbox.host_network else f"/proc/{sandbox.pid}/ns/uts")
    pid_mode = sc.namespace_options.pid
    if pid_mode == cri.NODE:
        _set_namespace(spec, "pid", None)
    elif pid_mode == cri.POD:
        _set_namespace(spec, "pid", f"/proc/{sandbox.pid}/ns/pid")
    elif pid_mode == cri.TARGET:
        raise InvalidArgument("pid namespace mode TARGET is not supported")
    if sandbox.host_network:
        spec.pop("hostname", None)
    # mounts: the pod's files, /dev/shm, then the request's
    extra: list[dict[str, Any]] = []
    wanted = {m.container_path for m in config.mounts}
    for dest, source in (
        ("/etc/hostname", sandbox.hostname_file),
        ("/etc/hosts", sandbox.hosts_file),
        ("/etc/resolv.conf", sandbox.resolv_file),
    ):
        if dest not in wanted and source:
            extra.append(
                {
                    "destination": dest,
                    "type": "bind",
                    "source": source,
                    "options": ["rbind", "rprivate", "ro" if sc.readonly_rootfs else "rw"],
                }
            )
    if sandbox.shm and "/dev/shm" not in wanted:
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/dev/shm"]
        extra.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": sandbox.shm,
                "options": ["rbind", "rprivate", "rw"],
            }
        )
    for m in config.mounts:
        if not m.container_path.startswith("/"):
            raise InvalidArgument(f"mount destination {m.container_path!r} must be an absolute path")
        source = os.path.realpath(m.host_path)
        if not os.path.exists(source):
            raise InvalidArgument(f'failed to mkdir "{m.host_path}": host path does not exist')
        propagation = {
            cri.PROPAGATION_PRIVATE: "rprivate",
            cri.PROPAGATION_HOST_TO_CONTAINER: "rslave",
            cri.PROPAGATION_BIDIRECTIONAL: "rshared",
        }[m.propagation]
        spec["mounts"] = [x for x in spec["mounts"] if x["destination"] != m.container_path]
        extra.append(
            {
                "destination": m.container_path,
                "type": "bind",
                "source": source,
                "options": ["rbind", propagation, "ro" if m.readonly else "rw"],
            }
        )
    spec["mounts"].extend(extra)
    devices = []
    for d in config.devices:
        try:
            st = os.stat(d.host_path)
        except OSError:
            raise InvalidArgument(f"failed to add device {d.host_path!r}: no such device") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f"{d.host_path!r} is not a device node")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        devices.append({"path": d.container_path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                        "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid})  # fmt: skip
        spec["linux"]["resources"]["devices"].append(
            {
                "allow": True,
                "type": kind,
                "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev),
                "access": d.permissions or "rwm",
            }
        )
    if devices:
        spec["linux"]["devices"] = devices
    spec["root"]["readonly"] = sc.readonly_rootfs
    spec["linux"]["cgroupsPath"] = cgroups_path(sandbox.cgroup_parent, id_)
    _resources(spec, linux.resources if linux.HasField("resources") else None)
    caps = _capabilities(sc.capabilities if sc.HasField("capabilities") else None, sc.privileged)
    ambient = [
        c if c.startswith("CAP_") else f"CAP_{c}"
        for c in (x.upper() for x in sc.capabilities.add_ambient_capabilities)
    ]
    _set_caps(spec, caps, ambient)
    # containerd 1.6 masks only what the request lists (kubelet always sends its defaults)
    spec["linux"]["maskedPaths"] = list(sc.masked_paths)
    spec["linux"]["readonlyPaths"] = list(sc.readonly_paths)
    if sc.privileged:
        _privileged(spec)
    elif sc.HasField("seccomp") or sc.seccomp_profile_path:
        profile = seccomp.for_profile(
            sc.seccomp.profile_type, sc.seccomp.localhost_ref, sc.seccomp_profile_path, caps, False
        )
        if profile is not None:
            spec["linux"]["seccomp"] = profile
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": config.metadata.name,
        "io.kubernetes.cri.sandbox-id": sandbox.id,
        "io.kubernetes.cri.sandbox-name": sandbox.name,
        "io.kubernetes.cri.sandbox-namespace": sandbox.namespace,
        "io.kubernetes.cri.sandbox-uid": sandbox.uid,
        "io.kubernetes.cri.image-name": config.image.image,
    }
    return spec


def exec_process(spec: Mapping[str, Any], cmd: Sequence[str], tty: bool) -> dict[str, Any]:
    """An exec's process: the container's own (user, env, cwd, capabilities) with CMD."""
    process = dict(spec["process"])
    process["args"] = list(cmd)
    process["terminal"] = tty
    process.pop("oomScoreAdj", None)
    return process
