"""The engine's side of networking: the /networks routes' backend and the container verbs' hooks,
over the network backend (dockerd/network/, libnetwork's role).

    check(body, host)            create: NetworkMode, NetworkingConfig, ports, DNS checked (400/404),
                                 the endpoints the record keeps returned (Docker's
                                 NetworkSettings.Networks in config.v2.json)
    setup(c) -> netns path       start: sandbox, endpoints, published ports, hosts/resolv.conf;
                                 "" for the host's namespace (the spec then names none)
    release(cid)                 exit, failed start, removal: everything of the sandbox gone
    settings(c) / summary(c)     inspect's NetworkSettings, `docker ps`'s Ports and Networks
    create/inspect/list/remove/prune/connect/disconnect   the /networks routes

A container's networks are in its record (`Container.networks`: name -> EndpointSettings as
asked), the live endpoints in the backend's sandbox; inspect shows the one over the other.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockerd.engine import links
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotFound
from dockerd.network import errors as net_errors
from dockerd.network import netns
from dockerd.network.backend import NetworkBackend
from dockerd.network.model import DNSConfig, Endpoint, Network, Sandbox
from dockerd.network.ports import parse_host_port, parse_port_key
from dockerd.network.sandboxes import EndpointConfig

if TYPE_CHECKING:
    from dockerd.engine.container.state import Container
    from dockerd.engine.filters import Filters

log = logging.getLogger("pydockerd.network")
BUILTIN_MODES = {"default": "bridge", "bridge": "bridge", "none": "none", "host": "host"}


def mode_of(host: dict[str, Any]) -> str:
    return str(host.get("NetworkMode") or "default")


def _donor(mode: str) -> str | None:
    return mode.split(":", 1)[1] if mode.startswith("container:") else None


def _endpoint_config(settings: dict[str, Any]) -> EndpointConfig:
    ipam = settings.get("IPAMConfig") or {}
    return EndpointConfig(ip=str(ipam.get("IPv4Address") or ""), ip6=str(ipam.get("IPv6Address") or ""), aliases=list(settings.get("Aliases") or []),
                          links=list(settings.get("Links") or []), driver_opts=dict(settings.get("DriverOpts") or {}))  # fmt: skip


def exposed_ports(config: dict[str, Any]) -> list[str]:
    return sorted((config.get("ExposedPorts") or {}).keys(), key=_port_order)


def _port_order(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return (int(port) if port.isdigit() else 0, proto or "tcp")


class Networking:
    def __init__(self, backend: NetworkBackend, find: Callable[[str], Container],
                 all_containers: Callable[[], list[Container]], files_dir: Callable[[str], str],
                 save: Callable[[Container], None]) -> None:  # fmt: skip
        self.backend = backend
        self.save = save
        self.dns_defaults = DNSConfig()  # the daemon's --dns/--dns-search/--dns-opt (set by the daemon)
        self.find = find
        self.all_containers = all_containers
        self.files_dir = files_dir

    # --- container create ------------------------------------------------------------------------

    def check(self, body: dict[str, Any], host: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """What dockerd refuses at create (400, or 404 for an unknown network); the endpoints asked."""
        mode = mode_of(host)
        _check_conflicts(mode, body, host)
        self._check_ports(host, body)
        for entry in host.get("ExtraHosts") or []:
            name, sep, ip = str(entry).partition(":")
            if not sep or not name or (ip != "host-gateway" and not _is_ip(ip)):
                raise InvalidParameter(
                    f'invalid IP address in add-host: "{ip}"'
                    if sep
                    else f'bad format for add-host: "{entry}"'
                )
        for server in host.get("Dns") or []:
            if not _is_ip(str(server)):
                raise InvalidParameter(f"{server} is not an ip address")
        donor = _donor(mode)
        if donor is not None:
            if not donor:
                raise InvalidParameter('invalid name or ID supplied: ""')
            try:
                self.find(donor)
            except EngineError:
                raise InvalidParameter(f"No such container: {donor}") from None
            return {}
        wanted = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig")) or {}
        if not isinstance(wanted, dict):
            raise InvalidParameter("invalid JSON: EndpointsConfig must be an object")
        if len(wanted) > 1:
            raise InvalidParameter(f"Container cannot be connected to network endpoints: {', '.join(wanted)}")
        primary = BUILTIN_MODES.get(mode, mode)
        try:
            net = self.backend.networks.get(primary)
        except net_errors.NetworkError as exc:
            # dockerd finds out at start (404); refused at create here, and as a 400: the Docker CLI
            # takes a 404 from create for a missing image and would try to pull it
            raise InvalidParameter(str(exc)) from None
        settings = dict(wanted.get(primary) or wanted.get(net.name) or wanted.get(net.id) or {})
        self._check_endpoint(net, settings)
        for link in host.get("Links") or []:
            self._link_target(str(link))
        return {net.name: {**_asked(settings), "NetworkID": net.id}}

    def _network(self, ref: str) -> Network:
        try:
            return self.backend.networks.get(ref)
        except net_errors.NetworkError as exc:
            raise _engine_error(exc) from None

    def _check_endpoint(self, net: Network, settings: dict[str, Any]) -> None:
        ipam = settings.get("IPAMConfig") or {}
        ip = str(ipam.get("IPv4Address") or "")
        ip6 = str(ipam.get("IPv6Address") or "")
        if ip6 and not _is_ip(ip6, 6):
            raise InvalidParameter(f"invalid IPv6 address: {ip6}")
        if ip6 and net.builtin:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
        if ip6 and not net.ipv6_config:
            raise InvalidParameter(
                "user specified IP address is supported only when connecting to networks with user configured subnets"
            )
        if ip:
            if not _is_ip(ip):
                raise InvalidParameter(f"invalid IPv4 address: {ip}")
            if net.builtin:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            if not net.subnet_requested:
                raise InvalidParameter(
                    "user specified IP address is supported only when connecting to networks with user configured subnets"
                )
        if settings.get("Aliases") and net.builtin:
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )

    def _check_ports(self, host: dict[str, Any], body: dict[str, Any]) -> None:
        bindings = host.get("PortBindings") or {}
        if not isinstance(bindings, dict):
            raise InvalidParameter("invalid JSON: PortBindings must be an object")
        for key in [*bindings, *(body.get("ExposedPorts") or {})]:
            try:
                parse_port_key(str(key))
            except net_errors.NetworkError as exc:
                raise InvalidParameter(str(exc)) from None
        for entries in bindings.values():
            for entry in entries or []:
                try:
                    parse_host_port(str((entry or {}).get("HostPort") or ""))
                except net_errors.NetworkError as exc:
                    raise InvalidParameter(str(exc)) from None
                host_ip = str((entry or {}).get("HostIp") or "")
                if host_ip and not _is_ip(host_ip):
                    raise InvalidParameter(f"invalid IP address: {host_ip}")

    def _link_target(self, link: str) -> tuple[Container, str]:
        name, _, alias = link.partition(":")
        try:
            target = self.find(name.lstrip("/"))
        except EngineError as exc:  # dockerd's wording (registerLinks): a bad parameter, not a 404
            raise InvalidParameter(f"could not get container for {name.lstrip('/')}: {exc}") from None
        return target, alias or target.name

    # --- container start / stop ------------------------------------------------------------------

    def setup(self, c: Container, userns: netns.UserNamespace | None = None) -> str:
        """The container's sandbox, endpoints, ports and files; its namespace path ("" : the host's).
        USERNS: the user namespace that is to own a new network namespace (userns-remap)."""
        key, wire = self.prepare(c, userns)
        if wire is not None:
            wire()
        return key

    def prepare(
        self, c: Container, userns: netns.UserNamespace | None = None
    ) -> tuple[str, Callable[[], None] | None]:
        """The sandbox made, its namespace path known (the spec's; "" : the host's), and what is
        left to do before the process starts, or None: the endpoints, ports and files of a
        namespace of its own (`wire`, which releases the sandbox if it fails). Start runs the
        wiring while containerd prepares the task, as pyrunc's create only needs the path."""
        self.release(c.id)  # a sandbox left by a crash between start and exit
        host, mode = c.host_config, mode_of(c.host_config)
        dns = DNSConfig(list(host.get("Dns") or []) or list(self.dns_defaults.servers),
                        list(host.get("DnsSearch") or []) or list(self.dns_defaults.search),
                        list(host.get("DnsOptions") or []) or list(self.dns_defaults.options))  # fmt: skip
        sbs = self.backend.sandboxes
        donor = _donor(mode)
        with self._released_on_error(c.id):
            if donor is not None:
                owner = self._running_donor(donor)
                # as dockerd: the donor's host and domain names (its /etc/hostname comes along)
                c.config["Hostname"] = owner.config.get("Hostname") or owner.id[:12]
                c.config["Domainname"] = owner.config.get("Domainname") or ""
                sbs.create(c.id, c.name, "container", owner=owner.id)
                self._copy_files(owner.id, c.id)
                return sbs.key(c.id), None
            if mode == "host":
                sbs.create(c.id, c.name, "host", hostname=c.config.get("Hostname") or "", dns=dns)
                self._host_files(c.id)
                return "", None
            sbs.create(c.id, c.name, "netns", hostname=str(c.config.get("Hostname") or ""),
                       domainname=str(c.config.get("Domainname") or ""), dns=dns,
                       extra_hosts=[*map(str, host.get("ExtraHosts") or []), *self._link_hosts(host, mode)],
                       userns=userns)  # fmt: skip
            # the endpoints asked now: the record may change once start has returned
            asked = [
                (self._network(name), _endpoint_config(settings)) for name, settings in c.networks.items()
            ]
            bindings = self._bindings(c)
            return sbs.key(c.id), lambda: self._wire(c.id, asked, bindings)

    def _wire(self, cid: str, asked: list[tuple[Network, EndpointConfig]],
              bindings: dict[str, list[dict[str, str]]]) -> None:  # fmt: skip
        """A new sandbox's endpoints (eth0 first), published ports and files."""
        with self._released_on_error(cid):
            for net, cfg in asked:
                if not net.builtin:
                    cfg.aliases = [*cfg.aliases, cid[:12]]
                self.backend.sandboxes.connect(cid, net.id, cfg)
            if bindings:
                self._publish(cid, bindings)
            self._write_files(cid)

    @contextmanager
    def _released_on_error(self, cid: str) -> Iterator[None]:
        try:
            yield
        except net_errors.NetworkError as exc:
            self.release(cid)
            raise _engine_error(exc) from None
        except BaseException:
            self.release(cid)
            raise

    def _running_donor(self, ref: str) -> Container:
        try:
            donor = self.find(ref)
        except EngineError as exc:
            raise NotFound(str(exc)) from None
        if not donor.running():
            raise Conflict(f"cannot join network of a non running container: {donor.id}")
        return donor

    def _publish(self, cid: str, bindings: dict[str, list[dict[str, str]]]) -> None:
        try:
            self.backend.sandboxes.publish(cid, bindings)
        except net_errors.NetworkError as exc:
            if exc.status != 500:
                raise
            sb = self.backend.sandboxes.get(cid)
            ep = next((e.id for e in sb.endpoints), "")
            raise EngineError(
                f"driver failed programming external connectivity on endpoint {sb.name} ({ep}): {exc}"
            ) from None

    def _bindings(self, c: Container) -> dict[str, list[dict[str, str]]]:
        host = c.host_config
        bindings: dict[str, list[dict[str, str]]] = {}
        for key, entries in (host.get("PortBindings") or {}).items():
            port, proto = parse_port_key(key)
            # dockerd's order: fixed host ports first, then by host address ("" before 127.0.0.1)
            ordered = sorted(
                (dict(e or {}) for e in entries or [{}]),
                key=lambda e: (not e.get("HostPort"), e.get("HostIp") or ""),
            )
            bindings[f"{port}/{proto}"] = ordered
        if host.get("PublishAllPorts"):
            for key in exposed_ports(c.config):
                port, proto = parse_port_key(key)
                bindings.setdefault(f"{port}/{proto}", [{"HostIp": "", "HostPort": ""}])
        return bindings

    def _link_hosts(self, host: dict[str, Any], mode: str) -> list[str]:
        """Legacy --link: the target's name, alias and short id at its default-bridge address.
        With `--network none` nothing (as dockerd: no bridge, no link to resolve; `compose run`
        links every one-off container to its service's, which may have no network either)."""
        if mode == "none":
            return []
        records = []
        for link in host.get("Links") or []:
            target, alias = self._link_target(str(link))
            sb = self.backend.sandboxes.by_id.get(target.id)
            address = next((ep.address for ep in sb.endpoints if ep.address), "") if sb else ""
            if not address:
                raise InvalidParameter(f"Cannot link to a non running container: /{target.name} AS /{alias}")
            # one hosts line, as dockerd's: the alias, the target's host name, its name
            names = dict.fromkeys([alias, str(target.config.get("Hostname") or target.id[:12]), target.name])
            records.append(f"{' '.join(names)}:{address}")
        return records

    def link_env(self, c: Container) -> list[str]:
        """The legacy links' environment variables (engine/links.py), for the container's process.
        Only links on the default bridge are legacy links (dockerd registers no other)."""
        if mode_of(c.host_config) not in ("default", "bridge"):
            return []
        env: list[str] = []
        for link in c.host_config.get("Links") or []:
            target, alias = self._link_target(str(link))
            sb = self.backend.sandboxes.by_id.get(target.id)
            address = next((ep.address for ep in sb.endpoints if ep.address), "") if sb else ""
            exposed = [
                *(target.config.get("ExposedPorts") or {}),
                *(target.host_config.get("PortBindings") or {}),
            ]
            env += links.link_env(f"/{c.name.lstrip('/')}/{alias}", alias, address, list(dict.fromkeys(exposed)),
                                  list(target.config.get("Env") or []))  # fmt: skip
        return env

    def _write_files(self, cid: str) -> None:
        d = self.files_dir(cid)
        self.backend.sandboxes.write_files(cid, Path(d) / "hosts", Path(d) / "resolv.conf")

    def _host_files(self, cid: str) -> None:
        d = self.files_dir(cid)
        for name in ("hosts", "resolv.conf"):
            try:
                shutil.copyfile(f"/etc/{name}", os.path.join(d, name))
            except OSError:
                pass
        with open(os.path.join(d, "hostname"), "w") as f:
            f.write(os.uname().nodename + "\n")

    def _copy_files(self, owner: str, cid: str) -> None:
        for name in ("hosts", "resolv.conf", "hostname"):
            try:
                shutil.copyfile(
                    os.path.join(self.files_dir(owner), name), os.path.join(self.files_dir(cid), name)
                )
            except OSError:
                pass

    def release(self, cid: str) -> None:
        try:
            self.backend.sandboxes.release(cid)
        except net_errors.NetworkError as exc:
            log.warning("releasing the network of %s: %s", cid, exc)

    def unplug(self, cid: str) -> Callable[[], None]:
        """The container's veths deleted by a thread of its own, while its exit is handled (its
        task deleted); returns the wait for that thread, which comes before `release`."""

        def work() -> None:
            try:
                self.backend.sandboxes.unplug(cid)
            except Exception as exc:  # noqa: BLE001 - release deletes them, or says why
                log.debug("unplugging %s: %s", cid, exc)

        thread = threading.Thread(target=work, name="net-unplug", daemon=True)
        thread.start()
        return thread.join

    def renamed(self, c: Container) -> None:
        with self.backend.lock:
            sb = self.backend.sandboxes.by_id.get(c.id)
            if sb is not None:
                sb.name = c.name
                self.backend.store.save_sandbox(sb)

    def restore(self, live: set[str]) -> None:
        self.backend.restore(live)

    # --- views -------------------------------------------------------------------------------

    def _sandbox(self, cid: str) -> Sandbox | None:
        sb = self.backend.sandboxes.by_id.get(cid)
        if sb is not None and sb.mode == "container":
            return self.backend.sandboxes.by_id.get(sb.owner)
        return sb

    def endpoints(self, c: Container) -> dict[str, dict[str, Any]]:
        """NetworkSettings.Networks: the record's networks, live values where the container runs."""
        sb = self._sandbox(c.id) if c.running() else None
        live = {ep.network_id: ep for ep in sb.endpoints} if sb is not None else {}
        out = {}
        for name, asked in c.networks.items():
            net = self.backend.networks.by_id.get(asked.get("NetworkID", "")) or _find(self.backend, name)
            ep = live.get(net.id) if net is not None else None
            out[name] = _endpoint_view(asked, net, ep, c)
        return out

    def settings(self, c: Container) -> dict[str, Any]:
        """Inspect's NetworkSettings, the default bridge's endpoint in the flat fields."""
        nets = self.endpoints(c)
        running = c.running()
        sb = self.backend.sandboxes.by_id.get(c.id) if running else None
        flat = nets.get("bridge") if mode_of(c.host_config) in ("default", "bridge") else None
        flat = flat or {}
        return {
            "Bridge": "", "SandboxID": c.id if sb is not None and sb.key else "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": self.ports_view(c),
            "SandboxKey": sb.key if sb is not None else "", "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": flat.get("EndpointID", ""), "Gateway": flat.get("Gateway", ""),
            "GlobalIPv6Address": flat.get("GlobalIPv6Address", ""), "GlobalIPv6PrefixLen": flat.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": flat.get("IPAddress", ""), "IPPrefixLen": flat.get("IPPrefixLen", 0),
            "IPv6Gateway": flat.get("IPv6Gateway", ""), "MacAddress": flat.get("MacAddress", ""), "Networks": nets,
        }  # fmt: skip

    def ports_view(self, c: Container) -> dict[str, Any]:
        """NetworkSettings.Ports: exposed ports (null) and published ones, while it runs."""
        sb = self.backend.sandboxes.by_id.get(c.id) if c.running() else None
        if sb is None or sb.mode != "netns":
            return {}
        out: dict[str, Any] = {key if "/" in key else f"{key}/tcp": None for key in exposed_ports(c.config)}
        for m in sb.ports:
            out.setdefault(f"{m.container_port}/{m.proto}", None)
            out[f"{m.container_port}/{m.proto}"] = [*(out[f"{m.container_port}/{m.proto}"] or []),
                                                     {"HostIp": m.host_ip, "HostPort": str(m.host_port)}]  # fmt: skip
        return out

    def summary_ports(self, c: Container) -> list[dict[str, Any]]:
        """`docker ps`'s Ports: published (IP, PublicPort) and merely exposed ports."""
        rows: list[dict[str, Any]] = []
        for key, bound in self.ports_view(c).items():
            port, _, proto = key.partition("/")
            if not bound:
                rows.append({"PrivatePort": int(port), "Type": proto})
            for b in bound or []:
                rows.append(
                    {
                        "IP": b["HostIp"],
                        "PrivatePort": int(port),
                        "PublicPort": int(b["HostPort"]),
                        "Type": proto,
                    }
                )
        if not rows and not c.running():
            rows = [
                {"PrivatePort": int(k.partition("/")[0]), "Type": k.partition("/")[2] or "tcp"}
                for k in exposed_ports(c.config)
            ]
        return rows

    def stats(self, c: Container) -> dict[str, dict[str, int]]:
        try:
            return self.backend.sandboxes.stats(c.id)
        except (net_errors.NetworkError, OSError):
            return {}

    # --- the /networks routes ----------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter(
                "network name must not be empty" if not name else "invalid JSON: Name must be a string"
            )
        ipam = body.get("IPAM") or {}
        configs = ipam.get("Config") or []
        v4 = [cfg for cfg in configs if ":" not in str(cfg.get("Subnet") or "")]
        v6 = [{k: str(v) for k, v in cfg.items() if v} for cfg in configs if cfg not in v4]
        for cfg6 in v6:
            try:
                ipaddress.IPv6Network(cfg6.get("Subnet", ""), strict=False)
            except ValueError:
                subnet6 = cfg6.get("Subnet", "")  # (dockerd answers 500: bad input is a 400 here)
                raise InvalidParameter(
                    f"Invalid subnet {subnet6} : invalid CIDR address: {subnet6}"
                ) from None
        enable_ipv6 = bool(body.get("EnableIPv6"))
        if len(v4) > 1:
            raise InvalidParameter("more than one IPv4 subnet per network is not supported")
        if enable_ipv6 and len(v6) > 1:
            err = EngineError(f"{body.get('Driver') or 'bridge'} driver doesn't support multiple subnets")
            err.status = 403  # dockerd's
            raise err
        if enable_ipv6 and not v6:
            # dockerd 20.10 has no default IPv6 pools: --ipv6 needs an IPv6 --subnet (a 404 there)
            raise NotFound(str(net_errors.no_pool_available("IPv6")))
        cfg = v4[0] if v4 else {}
        if cfg.get("AuxiliaryAddresses") and not cfg.get("Subnet"):
            raise InvalidParameter("auxiliary addresses need a subnet")
        if (ipam.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam.get("Driver")}" not found')
        if body.get("CheckDuplicate") is not None and not isinstance(body.get("CheckDuplicate"), bool):
            raise InvalidParameter("invalid JSON: CheckDuplicate must be a boolean")
        try:
            # (IPv6 subnets without EnableIPv6 are recorded and shown, no addresses: dockerd 20.10 takes them)
            net = self.backend.networks.create(
                name, str(body.get("Driver") or "bridge"), subnet=str(cfg.get("Subnet") or ""),
                gateway=str(cfg.get("Gateway") or ""), ip_range=str(cfg.get("IPRange") or ""),
                internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
                labels=body.get("Labels") or {}, options=body.get("Options") or {},
                ipam_options=dict(ipam.get("Options") or {}),
                aux_addresses=dict(cfg.get("AuxiliaryAddresses") or {}), enable_ipv6=enable_ipv6, ipv6=v6,
            )  # fmt: skip
        except net_errors.NetworkError as exc:
            raise _engine_error(exc) from None
        return {"Id": net.id, "Warning": ""}

    def get(self, ref: str) -> Network:
        return self._network(ref)

    def inspect(self, ref: str) -> dict[str, Any]:
        net = self._network(ref)
        return self.view(net, with_containers=True)

    def view(self, net: Network, with_containers: bool) -> dict[str, Any]:
        cfg: list[dict[str, Any]] = []
        for s in net.subnets:
            entry: dict[str, Any] = {"Subnet": s.subnet}
            if s.ip_range:
                entry["IPRange"] = s.ip_range
            if net.gateway_shown or not net.subnet_requested:
                entry["Gateway"] = s.gateway
            if s.aux_addresses:
                entry["AuxiliaryAddresses"] = dict(s.aux_addresses)
            cfg.append(entry)
        cfg += [dict(c) for c in net.ipv6_config]
        containers: dict[str, Any] = {}
        if with_containers:
            for sb in list(self.backend.sandboxes.by_id.values()):
                for ep in sb.endpoints:
                    if ep.network_id == net.id:
                        containers[sb.container_id] = {
                            "Name": sb.name, "EndpointID": ep.id, "MacAddress": ep.mac,
                            "IPv4Address": f"{ep.address}/{ep.prefixlen}" if ep.address else "",
                            "IPv6Address": f"{ep.address6}/{ep.prefixlen6}" if ep.address6 else "",
                        }  # fmt: skip
        return {
            "Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local", "Driver": net.driver,
            "EnableIPv6": net.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": net.ipam_options if not net.builtin else None, "Config": cfg},
            "Internal": net.internal, "Attachable": net.attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": containers, "Options": dict(net.options), "Labels": dict(net.labels),
        }  # fmt: skip

    def listing(self, filters: Filters) -> list[dict[str, Any]]:
        out = []
        for net in sorted(self.backend.networks.all(), key=lambda n: n.created):
            if _matches(net, filters):
                out.append(self.view(net, with_containers=False))
        return out

    def in_use(self, network_id: str) -> bool:
        return self.backend.sandboxes.in_use(network_id)

    def remove(self, ref: str) -> None:
        try:
            self.backend.networks.remove(ref, self.in_use)
        except net_errors.NetworkError as exc:
            raise _engine_error(exc) from None

    def prune(self, filters: Filters) -> list[str]:
        return self.backend.networks.prune(self.in_use, keep=lambda n: not _matches(n, filters, prune=True))

    def connect(self, ref: str, container: str, settings: dict[str, Any]) -> None:
        net = self._network(ref)
        c = self.find(container)
        mode = mode_of(c.host_config)
        if mode == "host" or _donor(mode) is not None:
            raise InvalidParameter(
                "container sharing network namespace with another container or host cannot be connected to any other network"
            )
        if net.name in c.networks or any(s.get("NetworkID") == net.id for s in c.networks.values()):
            raise InvalidParameter(f"endpoint with name {c.name} already exists in network {net.name}")
        self._check_endpoint(net, settings)
        asked = {**_asked(settings), "NetworkID": net.id}
        if c.running():
            cfg = _endpoint_config(settings)
            if not net.builtin:
                cfg.aliases = [*cfg.aliases, c.id[:12]]
            try:
                self.backend.sandboxes.connect(c.id, net.id, cfg)
            except net_errors.NetworkError as exc:
                raise _engine_error(exc) from None
            self._write_files(c.id)
        c.networks[net.name] = asked
        self.save(c)

    def disconnect(self, ref: str, container: str, force: bool) -> None:
        net = self._network(ref)
        c = self.find(container)
        name = next((n for n, s in c.networks.items() if n == net.name or s.get("NetworkID") == net.id), None)
        if name is None:
            raise InvalidParameter(f"container {c.id} is not connected to network {net.name}")
        if c.running():
            try:
                self.backend.sandboxes.disconnect(c.id, net.id, force)
            except net_errors.NetworkError as exc:
                raise _engine_error(exc) from None
            self._write_files(c.id)
        del c.networks[name]
        self.save(c)

    def shutdown(self) -> None:
        self.backend.shutdown()

    def build_hook(self) -> BuildNetwork:
        """The builder's NetworkHook (dockerd/builder/runner.py): RUN on the default bridge or a network."""
        return BuildNetwork(self)


class BuildNetwork:
    """Networking for a build's RUN containers, which have no container record: a sandbox on
    the default bridge (mode "default") or the named network, its namespace in the spec, the
    spec's hosts and resolv.conf written; `attach(...).close()` releases it all."""

    def __init__(self, networking: Networking) -> None:
        self.networking = networking

    def attach(self, container_id: str, mode: str, spec: dict[str, Any]) -> _Attached:
        sbs = self.networking.backend.sandboxes
        try:
            net = self.networking.backend.networks.get(BUILTIN_MODES.get(mode, mode))
            sbs.create(container_id, container_id[:12], "netns", hostname=str(spec.get("hostname") or container_id[:12]),
                       dns=self.networking.dns_defaults)  # fmt: skip
            sbs.connect(container_id, net.id)
            files = {
                m["destination"]: m["source"] for m in spec.get("mounts") or [] if m.get("type") == "bind"
            }
            hosts, resolv = files.get("/etc/hosts"), files.get("/etc/resolv.conf")
            sbs.write_files(container_id, Path(hosts) if hosts else None, Path(resolv) if resolv else None)
            namespaces = spec["linux"]["namespaces"]
            namespaces[:] = [ns for ns in namespaces if ns.get("type") != "network"]
            namespaces.append({"type": "network", "path": sbs.key(container_id)})
        except net_errors.NetworkError as exc:
            self.networking.release(container_id)
            raise _engine_error(exc) from None
        except BaseException:
            self.networking.release(container_id)
            raise
        return _Attached(self.networking, container_id)


class _Attached:
    def __init__(self, networking: Networking, container_id: str) -> None:
        self.networking = networking
        self.container_id = container_id

    def close(self) -> None:
        self.networking.release(self.container_id)


# --- helpers ---------------------------------------------------------------------------------


def _check_conflicts(mode: str, body: dict[str, Any], host: dict[str, Any]) -> None:
    """dockerd's validateNetMode."""
    if mode.startswith("container:"):
        for present, message in (
            (body.get("Hostname"), "conflicting options: hostname and the network mode"),
            (host.get("Links"), "conflicting options: container type network can't be used with links. This would result in undefined behavior"),
            (host.get("Dns"), "conflicting options: dns and the network mode"),
            (host.get("ExtraHosts"), "conflicting options: custom host-to-IP mapping and the network mode"),
            (host.get("PortBindings") or host.get("PublishAllPorts"), "conflicting options: port publishing and the container type network mode"),
            (body.get("ExposedPorts"), "conflicting options: port exposing and the container type network mode"),
        ):  # fmt: skip
            if present:
                raise InvalidParameter(message)
    if mode == "host" and host.get("Links"):
        raise InvalidParameter(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior"
        )


def _is_ip(text: str, version: int | None = None) -> bool:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or addr.version == version


def _asked(settings: dict[str, Any]) -> dict[str, Any]:
    keep = ("IPAMConfig", "Links", "Aliases", "DriverOpts")
    return {k: settings.get(k) or None for k in keep}


def _find(backend: NetworkBackend, name: str) -> Network | None:
    try:
        return backend.networks.get(name)
    except net_errors.NetworkError:
        return None


def _endpoint_view(
    asked: dict[str, Any], net: Network | None, ep: Endpoint | None, c: Container
) -> dict[str, Any]:
    aliases = asked.get("Aliases")
    if ep is not None and net is not None and not net.builtin:
        aliases = [*(aliases or []), c.id[:12]]
    return {
        "IPAMConfig": asked.get("IPAMConfig"), "Links": asked.get("Links"), "Aliases": aliases,
        "NetworkID": net.id if net is not None else asked.get("NetworkID", ""),
        "EndpointID": ep.id if ep else "", "Gateway": ep.gateway if ep else "", "IPAddress": ep.address if ep else "",
        "IPPrefixLen": ep.prefixlen if ep else 0, "IPv6Gateway": ep.gateway6 if ep else "",
        "GlobalIPv6Address": ep.address6 if ep else "", "GlobalIPv6PrefixLen": ep.prefixlen6 if ep else 0,
        "MacAddress": ep.mac if ep else "", "DriverOpts": asked.get("DriverOpts"),
    }  # fmt: skip


def _matches(net: Network, filters: Filters, prune: bool = False) -> bool:
    """dockerd's network list filters (driver, id, label, name, scope, type) and prune's (label, until)."""
    from dockerd.engine import filters as flt
    from dockerd.engine.logs import parse_time

    if prune:
        until = flt.prune_until(filters)
        return flt.match_labels(filters, net.labels) and not flt.pruned_after(parse_time(net.created), until)
    if not filters.exact_match("driver", net.driver) or not filters.match_kv_list("label", net.labels):
        return False
    if filters.get("name") and not any(v in net.name for v in filters.get("name")):
        return False
    if filters.get("id") and not any(net.id.startswith(v) for v in filters.get("id")):
        return False
    if filters.get("type") and ("builtin" if net.builtin else "custom") not in filters.get("type"):
        return False
    return not filters.get("scope") or "local" in filters.get("scope")


def _engine_error(exc: net_errors.NetworkError) -> EngineError:
    err = EngineError(str(exc))
    err.status = exc.status
    return err
