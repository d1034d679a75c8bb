"""POST /containers/create: a container's record, checked as dockerd checks it.

Every Config and HostConfig field is either acted on, refused until its feature lands
(NOT_YET), or refused as unsupported when it carries a value. The runtime spec is built
once here so that whatever it would refuse at start is refused at create (400).
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import TYPE_CHECKING, Any

from dockerd.engine import devices, realtime, scoped, security, sharing, spec, userns, validate
from dockerd.engine.container import names, rootfs
from dockerd.engine.container.state import Container, fresh_state
from dockerd.engine.container.stop import signal_number
from dockerd.engine.errors import Conflict, InvalidParameter
from dockerd.engine.logs import resolve_log_config, rfc3339nano
from dockerd.volumes import lifecycle

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.image.service import ResolvedImage
    from dockerd.volumes.mountpoint import MountPoint

now = rfc3339nano

# Config/HostConfig fields pydockerd acts on; any other field with a non-empty value is refused.
SUPPORTED_CONFIG = {
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce",
    "Env", "Cmd", "Image", "WorkingDir", "Entrypoint", "Labels", "StopSignal", "StopTimeout", "HostConfig",
    "NetworkingConfig", "ExposedPorts", "Volumes", "OnBuild", "ArgsEscaped", "NetworkDisabled", "MacAddress",
    "Healthcheck", "Shell",
}  # fmt: skip
SUPPORTED_HOST = {
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod", "CpusetCpus",
    "PidsLimit", "RestartPolicy", "AutoRemove", "Binds", "Tmpfs", "Privileged", "CapAdd", "CapDrop", "ReadonlyRootfs",
    "Init", "Ulimits", "SecurityOpt", "ShmSize", "Sysctls", "OomKillDisable", "NetworkMode", "LogConfig",
    "PortBindings", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "ConsoleSize", "Isolation", "CgroupnsMode",
    "IpcMode", "PidMode", "UTSMode", "UsernsMode", "Cgroup", "CgroupParent", "OomScoreAdj", "Runtime", "Devices",
    "DeviceCgroupRules", "BlkioWeight", "KernelMemory", "MemorySwappiness", "Mounts", "VolumesFrom", "Links",
    "GroupAdd", "ContainerIDFile", "PublishAllPorts", "MaskedPaths", "ReadonlyPaths", "Annotations",
    "CpuRealtimePeriod", "CpuRealtimeRuntime", "VolumeDriver",
}  # fmt: skip
# Accepted only at their default values until their issue lands.
NOT_YET = {
    "Annotations": "annotations",
}  # fmt: skip


def create(d: Containers, body: dict[str, Any], name: str | None) -> tuple[Container, list[str]]:
    """POST /containers/create: the record and its files; what the runtime spec would refuse
    is refused now (400), with nothing created."""
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the body must be an object")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise InvalidParameter("invalid JSON: HostConfig must be an object")
    validate.check_create(body)
    _check_fields(body, host)
    _check_options(d, body, host)
    networks = d.networking.check(body, host)  # (engine/network.py) 400/404 with nothing created
    image_ref = body.get("Image") or ""
    if not image_ref:
        raise InvalidParameter("No image specified" if not image_ref else "")
    image = d.images.resolve(image_ref)
    image_config = image.config.get("config") or {}
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    for key in ("Cmd", "Entrypoint", "Shell"):
        if isinstance(config.get(key), str):  # Docker's strslice: a lone string is a one-element list
            config[key] = [config[key]]
    restart = (host.get("RestartPolicy") or {}).get("Name", "") or "no"
    if restart not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidParameter(f"invalid restart policy {restart!r}")
    if host.get("AutoRemove") and restart not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    config = d.health.at_create(spec.merge_image_config(config, image_config), image_config)
    args = spec.command(config, image_config)
    if config.get("StopSignal"):
        signal_number(config["StopSignal"])  # as dockerd: a stop signal that does not parse is refused now
    host = dict(host)
    warnings = security.check_at_create(host, spec._capabilities(host), d.security)
    if not host.get("Privileged"):  # as dockerd: the defaults are recorded, inspect shows them
        if host.get("MaskedPaths") is None:
            host["MaskedPaths"] = list(spec.MASKED)
        if host.get("ReadonlyPaths") is None:
            host["ReadonlyPaths"] = list(spec.READONLY)
    if host.get("Memory") and not host.get("MemorySwap"):
        host["MemorySwap"] = host["Memory"] * 2  # dockerd's default: swap as much as memory
    if host.get("PidsLimit") is not None and host["PidsLimit"] <= 0:
        host["PidsLimit"] = None  # 0 and -1 both mean unlimited; dockerd shows null
    log_config = resolve_log_config(host.get("LogConfig"), d.log_defaults.type, d.log_defaults.config)
    host = {**host, "LogConfig": log_config.view()}  # inspect shows the resolved driver and options
    # Whatever the runtime spec refuses (capabilities, security options, binds, ulimits...)
    # is refused now, with nothing created, rather than when the container starts.
    spec.build(
        "0" * 64,
        config,
        host,
        image_config,
        spec.private_inputs(host),
        d.store.root,
        d.cgroup_parent,
        d.security,
    )
    host["Runtime"] = d.runtimes.resolve(host.get("Runtime"))  # inspect shows the one it got
    if name:
        name = names.validate_name(name)
        with d.store.lock:
            _refuse_taken(d, name)  # before any volume is made (checked again with the record)
    points = lifecycle.plan(d, config, host, image_config)  # binds, --mount, volumes-from: refused now
    _check_working_dir(d, image, str(config.get("WorkingDir") or image_config.get("WorkingDir") or ""))
    cid = names.new_id()
    lifecycle.create(d, cid, points, image)  # the volumes, referenced by the new id; copy-up
    try:
        c = _record(d, cid, name, image, image_ref, config, host, args, points, networks)
    except BaseException:
        lifecycle.undo(d, cid, points)
        raise
    d.publish("container", "create", c.id, {"image": image_ref, "name": c.name})
    return c, warnings


def _record(
    d: Containers,
    cid: str,
    name: str | None,
    image: ResolvedImage,
    image_ref: str,
    config: dict[str, Any],
    host: dict[str, Any],
    args: list[str],
    points: list[MountPoint],
    networks: dict[str, dict[str, Any]],
) -> Container:
    """The record and its directory, under the store's lock: the name is taken or refused here."""
    with d.store.lock:
        taken = d.store.names()
        if name:
            _refuse_taken(d, name)
        else:
            name = names.generate_name(taken)
        c = Container(
            id=cid,
            name=name,
            created=now(),
            image_id=image.id,
            image_ref=image_ref,
            config={
                **config,
                "Image": image_ref,
                "Hostname": config.get("Hostname") or _default_hostname(host, cid),
            },
            host_config=host,
            path=args[0],
            args=args[1:],
            state=fresh_state(),
            networks=networks,
            mount_points=[p.to_record() for p in points],
        )
        os.makedirs(d.store.dir(cid), mode=0o710)
        userns.share_with_root(d.store.dir(cid), d.security.userns)
        _write_files(d.store.dir(cid), c)
        d.store.add(c)
    return c


def _refuse_taken(d: Containers, name: str) -> None:
    if name in d.store.names():
        owner = d.store.owner_of(name)
        raise Conflict(
            f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
            "You have to remove (or rename) that container to be able to reuse that name."
        )


def _default_hostname(host: dict[str, Any], cid: str) -> str:
    """dockerd's: the host's name for --network host, else the short id."""
    return os.uname().nodename if host.get("NetworkMode") == "host" else cid[:12]


def _check_fields(body: dict[str, Any], host: dict[str, Any]) -> None:
    for key in body:
        if key not in SUPPORTED_CONFIG and body[key] not in (None, "", [], {}, False, 0):
            raise InvalidParameter(f"unsupported container setting {key!r}")
    for key, value in host.items():
        if key not in SUPPORTED_HOST:
            if value not in (None, "", [], {}, False, 0):
                raise InvalidParameter(f"unsupported HostConfig setting {key!r}")
        elif key in NOT_YET and value not in (None, "", [], {}, False, 0):
            raise InvalidParameter(f"{NOT_YET[key]} ({key}) is not supported yet")
    if host.get("CgroupnsMode") not in (None, "", "private", "host"):
        raise InvalidParameter(f"CgroupnsMode {host.get('CgroupnsMode')!r} is not supported yet")


def _check_options(d: Containers, body: dict[str, Any], host: dict[str, Any]) -> None:
    """What dockerd refuses at create in the options this engine acts on (400s)."""
    spec.normalize_capabilities(host.get("CapAdd") or [], "CapAdd")
    spec.normalize_capabilities(host.get("CapDrop") or [], "CapDrop")
    sharing.check(body, host, d.get)
    d.health.check(body)
    devices.mappings(host)
    devices.cgroup_rules(host)
    d.runtimes.resolve(host.get("Runtime"))
    _check_realtime(host)


def _check_realtime(host: dict[str, Any]) -> None:
    period = int(host.get("CpuRealtimePeriod") or 0)
    runtime = int(host.get("CpuRealtimeRuntime") or 0)
    if period > 0 and not realtime.supported():
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time period")
    if runtime > 0 and not realtime.supported():
        raise InvalidParameter("Your kernel does not support cgroup cpu real-time runtime")
    if period and runtime and runtime > period:
        raise InvalidParameter("cpu real-time runtime cannot be higher than cpu real-time period")


def _write_files(d: str, c: Container) -> None:
    """hostname, hosts and resolv.conf in the container's directory D (bound into it at start)."""
    hostname = c.config["Hostname"]
    with open(os.path.join(d, "hostname"), "w") as f:
        f.write(hostname + "\n")
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write(
            hosts_file(
                hostname, str(c.config.get("Domainname") or ""), c.host_config.get("NetworkMode") == "none"
            )
        )
    resolv = ""
    try:
        with open("/etc/resolv.conf") as f:
            resolv = "".join(line for line in f if not line.startswith("nameserver 127."))
    except OSError:
        pass
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write(resolv)


HOSTS_DEFAULTS = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)
# The container's own address until pydockerd gives it a network (a later issue): Debian's
# convention for a host name without an address of its own.
OWN_ADDRESS = "127.0.1.1"


def hosts_file(hostname: str, domainname: str, no_network: bool) -> str:
    """/etc/hosts as libnetwork writes it: the defaults, then the container's address with its
    fully qualified name and its short name (none without a network)."""
    if no_network:
        return HOSTS_DEFAULTS
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short = fqdn.split(".", 1)[0]
    names = f"{fqdn} {short}" if fqdn != short else fqdn
    return f"{HOSTS_DEFAULTS}{OWN_ADDRESS}\t{names}\n"


def _check_working_dir(d: Containers, image: ResolvedImage, workdir: str) -> None:
    """dockerd makes the working directory in the container's layer at create, and refuses it
    where the image has something else than a directory (the runtime would fail the start)."""
    if workdir.strip("/") == "":
        return
    top = d.images.ensure_unpacked(image)
    if not top:
        return
    with rootfs.image_root(d.client, f"workdir-{secrets.token_hex(8)}", top, d.mount_root) as root:
        try:
            with scoped.resolve(root, workdir) as found:
                is_dir = stat.S_ISDIR(os.stat(found.fd).st_mode)
        except OSError:  # missing (made at start) or below a file: the runtime's to report
            return
    if not is_dir:
        raise InvalidParameter(f"Cannot mkdir: {workdir} is not a directory")
