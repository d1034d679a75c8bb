"""The OCI runtime spec for a Docker container: Docker's defaults, the image config, and the
container's Config/HostConfig on top."""

from __future__ import annotations

import copy
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine import security as sec
from dockerd.engine.errors import InvalidParameter
from dockerd.engine.sharing import Shared
from dockerd.engine.users import ExecUser

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip
MASKED = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]  # fmt: skip
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ALL_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip
_RLIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}  # fmt: skip


def command(config: dict[str, Any], image_config: dict[str, Any]) -> list[str]:
    """Docker's rule: the container's Entrypoint replaces the image's (and then the image's Cmd is
    dropped); `--entrypoint ""` (an Entrypoint of one empty string) is an empty entrypoint."""
    entrypoint = config.get("Entrypoint")
    cmd = config.get("Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint") or []
        if not cmd:
            cmd = image_config.get("Cmd") or []
    elif not cmd:
        cmd = []
    if isinstance(entrypoint, str):
        entrypoint = shlex.split(entrypoint)
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    if list(entrypoint) == [""]:
        entrypoint = []
    args = list(entrypoint) + list(cmd)
    if not args:
        raise InvalidParameter("No command specified")
    return args


def merge_image_config(config: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's Config completed from its image's, as dockerd stores it at create (what
    inspect shows): User, WorkingDir, StopSignal when unset; Env, Labels and ExposedPorts with
    the image's entries the container does not override; the image's Cmd (and Entrypoint) when
    the container names no entrypoint; Volumes with the image's (each gets an anonymous volume).
    Not the image's Healthcheck (merged by dockerd/health/containers.py)."""
    out = dict(config)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key) and image_config.get(key):
            out[key] = image_config[key]
    env = list(out.get("Env") or [])
    keys = {item.partition("=")[0] for item in env}
    env += [item for item in image_config.get("Env") or [] if item.partition("=")[0] not in keys]
    out["Env"] = env or None
    out["Labels"] = {**(image_config.get("Labels") or {}), **(out.get("Labels") or {})}
    ports = {**(image_config.get("ExposedPorts") or {}), **(out.get("ExposedPorts") or {})}
    out["ExposedPorts"] = ports
    if not ports:
        del out["ExposedPorts"]  # dockerd omits an empty set
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image_config.get("Cmd")
            if image_config.get("ArgsEscaped"):
                out["ArgsEscaped"] = True
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image_config.get("Entrypoint")
    out["Volumes"] = {**(image_config.get("Volumes") or {}), **(out.get("Volumes") or {})} or None
    return out


def merged_env(config: dict[str, Any], image_config: dict[str, Any], hostname: str, tty: bool,
               linked: Sequence[str] = ()) -> list[str]:  # fmt: skip
    """The process's environment as dockerd's CreateDaemonEnvironment: PATH, HOSTNAME, TERM,
    the legacy links' variables (LINKED, engine/links.py), then the container's own."""
    env: dict[str, str] = {}
    for item in image_config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env["HOSTNAME"] = hostname
    if tty:
        env["TERM"] = "xterm"
    for item in linked:
        key, _, value = item.partition("=")
        env.setdefault(key, value)  # a repeated key keeps its first place and value, as Go's merge
    for item in config.get("Env") or []:
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        else:
            env.pop(key, None)
    return [f"{k}={v}" for k, v in env.items()]


def normalize_capabilities(names: list[str], field: str) -> list[str]:
    """CapAdd/CapDrop entries as CAP_ names ("ALL" kept); an unknown one is refused, as dockerd does at create."""
    out = []
    for name in names:
        cap = str(name).upper()
        if cap != "ALL" and not cap.startswith("CAP_"):
            cap = f"CAP_{cap}"
        if cap != "ALL" and cap not in ALL_CAPS:
            raise InvalidParameter(f'invalid {field}: unknown capability: "{cap}"')
        out.append(cap)
    return out


def _capabilities(host: dict[str, Any]) -> list[str]:
    """dockerd's rule, whatever the order of the flags: an added ALL gives every capability but
    the dropped ones; a dropped ALL leaves only the added ones; otherwise the defaults without
    the dropped ones, plus the added ones."""
    if host.get("Privileged"):
        return sec.grantable(ALL_CAPS)
    adds = normalize_capabilities(host.get("CapAdd") or [], "CapAdd")
    drops = normalize_capabilities(host.get("CapDrop") or [], "CapDrop")
    if "ALL" in adds:
        caps = {c for c in sec.grantable(ALL_CAPS) if c not in drops}  # what the daemon may grant
    elif "ALL" in drops:
        caps = set(adds)
    else:
        caps = {c for c in DEFAULT_CAPS if c not in drops} | set(adds)
    return [c for c in ALL_CAPS if c in caps]


@dataclass
class StartInputs:
    """What start looked up for the spec: the user in the container's account files, the
    namespaces it shares, the host's device nodes it gets."""

    user: ExecUser
    shared: Shared
    devices: list[dict[str, Any]] = field(default_factory=list)  # linux.devices
    device_rules: list[dict[str, Any]] = field(
        default_factory=list
    )  # their allow rules, then DeviceCgroupRules
    # the container's volumes, binds and --mount tmpfs as OCI mounts (dockerd/volumes/lifecycle.py)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    link_env: list[str] = field(
        default_factory=list
    )  # legacy --link variables (DB_PORT...), set after the network


def private_inputs(host: dict[str, Any], user: ExecUser | None = None) -> StartInputs:
    """Inputs of a container that shares nothing: private namespaces, a tmpfs /dev/shm, no
    devices. For a build's RUN, and at create, to refuse then what the spec would refuse at
    start (donors and devices are start's to look up)."""
    kinds = ("mount", "network", "uts", "pid", "ipc")
    shm = {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size(host)}"]}  # fmt: skip
    return StartInputs(user or ExecUser(), Shared([{"type": k} for k in kinds], shm))


def build(
    container_id: str,
    config: dict[str, Any],
    host: dict[str, Any],
    image_config: dict[str, Any],
    inputs: StartInputs,
    files_dir: str,
    cgroup_parent: str,
    security: sec.SecurityDefaults | None = None,
) -> dict[str, Any]:
    security = security or sec.SecurityDefaults()
    tty = bool(config.get("Tty"))
    hostname = config.get("Hostname") or container_id[:12]
    caps = _capabilities(host)
    user = inputs.user
    nonroot = user.uid != 0
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.groups)},
            "args": command(config, image_config),
            "env": merged_env(config, image_config, hostname, tty, inputs.link_env),
            "cwd": config.get("WorkingDir") or image_config.get("WorkingDir") or "/",
            "capabilities": {
                "bounding": caps,
                "effective": [] if nonroot else caps,
                "permitted": [] if nonroot else caps,
            },
            "oomScoreAdj": 0,
        },
        "root": {"path": "rootfs", "readonly": bool(host.get("ReadonlyRootfs"))},
        "mounts": _mounts(host, files_dir, inputs.shared.shm, inputs.mounts),
        "linux": {
            "resources": _resources(host, inputs.device_rules),
            "cgroupsPath": f"{cgroup_parent}/{container_id}",
            "namespaces": list(inputs.shared.namespaces),
            # HostConfig's lists (the CLI's --security-opt systempaths=unconfined empties them).
            "maskedPaths": list(MASKED if host.get("MaskedPaths") is None else host["MaskedPaths"]),
            "readonlyPaths": list(READONLY if host.get("ReadonlyPaths") is None else host["ReadonlyPaths"]),
            "sysctl": {
                "net.ipv4.ip_unprivileged_port_start": "0",
                "net.ipv4.ping_group_range": "0 2147483647",
            },
        },
    }
    if any(ns["type"] == "uts" for ns in inputs.shared.namespaces):
        spec["hostname"] = hostname  # with the host's UTS namespace there is no hostname to set
    if inputs.devices:
        spec["linux"]["devices"] = list(inputs.devices)
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    sec.apply(spec, host, security)
    spec["linux"]["sysctl"].update(host.get("Sysctls") or {})
    rlimits = []
    for ulimit in security.merged_ulimits(host.get("Ulimits")):
        name = _RLIMITS.get(str(ulimit.get("Name", "")).lower())
        if name is None:
            raise InvalidParameter(f"invalid ulimit type: {ulimit.get('Name')}")
        rlimits.append({"type": name, "soft": int(ulimit.get("Soft", 0)), "hard": int(ulimit.get("Hard", 0))})
    if rlimits:
        spec["process"]["rlimits"] = rlimits
    if host.get("Init"):
        init = "/usr/bin/docker-init"
        if not os.path.exists(init):
            raise InvalidParameter("--init needs docker-init (Debian package tini or docker.io)")
        spec["mounts"].append(
            {"destination": "/sbin/docker-init", "type": "bind", "source": init, "options": ["bind", "ro"]}
        )
        spec["process"]["args"] = ["/sbin/docker-init", "--", *spec["process"]["args"]]
    return spec


def shm_size(host: dict[str, Any]) -> int:
    return int(host.get("ShmSize") or 64 << 20)


def _mounts(
    host: dict[str, Any], files_dir: str, shm: dict[str, Any] | None, volumes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    privileged = bool(host.get("Privileged"))
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["rw" if privileged else "ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    ]  # fmt: skip
    if shm is not None:
        mounts.append(shm)
    readonly = bool(host.get("ReadonlyRootfs"))
    for name in ("resolv.conf", "hostname", "hosts"):
        opts = ["rbind", "rprivate"] + (["ro"] if readonly else [])
        mounts.append(
            {
                "destination": f"/etc/{name}",
                "type": "bind",
                "source": os.path.join(files_dir, name),
                "options": opts,
            }
        )
    mounts.extend(volumes)  # parents first; writable under --read-only unless they are ro themselves
    for target, opts in (host.get("Tmpfs") or {}).items():
        options = ["noexec", "nosuid", "nodev", "rprivate"] + [o for o in str(opts).split(",") if o]
        mounts.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
    return mounts


def _resources(host: dict[str, Any], device_rules: list[dict[str, Any]]) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [
            {"allow": False, "access": "rwm"},
            *[
                {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
                for ma, mi in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))
            ],
            {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            *device_rules,  # after the defaults, as dockerd: a --device /dev/fuse lifts the deny above
        ],
        "memory": {"disableOOMKiller": bool(host.get("OomKillDisable"))},
        "cpu": {},
    }
    if host.get("Privileged"):
        res["devices"] = [{"allow": True, "access": "rwm"}]
    memory = int(host.get("Memory") or 0)
    swap = int(host.get("MemorySwap") or 0)
    if memory:
        res["memory"]["limit"] = memory
        res["memory"]["swap"] = swap if swap else memory * 2
    elif swap:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap limit")
    if host.get("MemoryReservation"):
        res["memory"]["reservation"] = int(host["MemoryReservation"])
    if host.get("NanoCpus"):
        res["cpu"]["period"] = 100000
        res["cpu"]["quota"] = int(host["NanoCpus"]) * 100000 // 1_000_000_000
    if host.get("CpuShares"):
        res["cpu"]["shares"] = int(host["CpuShares"])
    if host.get("CpuQuota"):
        res["cpu"]["quota"] = int(host["CpuQuota"])
    if host.get("CpuPeriod"):
        res["cpu"]["period"] = int(host["CpuPeriod"])
    if host.get("CpusetCpus"):
        res["cpu"]["cpus"] = host["CpusetCpus"]
    if host.get("CpuRealtimePeriod"):
        res["cpu"]["realtimePeriod"] = int(host["CpuRealtimePeriod"])
    if host.get("CpuRealtimeRuntime"):
        res["cpu"]["realtimeRuntime"] = int(host["CpuRealtimeRuntime"])
    if host.get("PidsLimit"):
        res["pids"] = {"limit": int(host["PidsLimit"])}
    return copy.deepcopy(res)
