"""Sandboxes: a container's network namespace, its endpoints, published ports, DNS and files.

The engine's calls, per container (all blocking; `cid` is the container's id):

    create(cid, name, mode, ...)       at start, before the OCI spec: the namespace (or none for
                                       host, the owner's for container:ID); spec path: `key(cid)`
    connect(cid, net, EndpointConfig)  each network (the first gives eth0 and the default route)
    publish(cid, port_bindings)        HostConfig.PortBindings, after the first bridge network
    write_files(cid, hosts, resolv)    /etc/hosts and /etc/resolv.conf (again after connect/disconnect)
    disconnect(cid, net)               a running container leaving a network
    release(cid)                       at stop/exit/rm: ports, endpoints, DNS, namespace gone
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from dockerd.network import errors, hosts, links, netns, resolvconf
from dockerd.network.controller import Networks
from dockerd.network.dns import Resolver
from dockerd.network.iptables import PortRule
from dockerd.network.model import DNSConfig, Endpoint, Network, PortMapping, Sandbox
from dockerd.network.ports import Proxies, candidates, parse_host_port, parse_port_key
from dockerd.network.store import Store


@dataclass
class EndpointConfig:
    """Docker's EndpointSettings as the engine got them (--ip, --network-alias, --link)."""

    ip: str = ""
    ip6: str = ""
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    driver_opts: dict[str, str] = field(default_factory=dict)


class Sandboxes:
    def __init__(self, networks: Networks, store: Store, proxies: Proxies) -> None:
        self.nets = networks
        self.options = networks.options
        self.store = store
        self.lock = networks.lock
        self.proxies = proxies
        self.by_id: dict[str, Sandbox] = {}
        self.resolver: Resolver | None = None  # set by the backend (it needs the lookups here)
        networks.ports = self.port_rules

    # queries -------------------------------------------------------------------------------

    def get(self, cid: str) -> Sandbox:
        with self.lock:
            found = self.by_id.get(cid)
        if found is None:
            raise errors.NotFound(f"no network sandbox for container {cid}")
        return found

    def key(self, cid: str) -> str:
        """The namespace path the OCI spec names ("" for the host's namespace)."""
        sb = self.get(cid)
        return self.get(sb.owner).key if sb.mode == "container" else sb.key

    def in_use(self, network_id: str) -> bool:
        with self.lock:
            return any(ep.network_id == network_id for sb in self.by_id.values() for ep in sb.endpoints)

    def port_rules(self) -> list[PortRule]:
        rules = []
        for sb in self.by_id.values():
            bridge = self._port_endpoint(sb)
            for m in sb.ports:
                if bridge is not None:
                    rules.append(
                        PortRule(
                            m.proto,
                            m.host_ip,
                            m.host_port,
                            m.container_ip,
                            m.container_port,
                            bridge[0].bridge,
                        )
                    )
        return rules

    def _port_endpoint(self, sb: Sandbox) -> tuple[Network, Endpoint] | None:
        for ep in sb.endpoints:
            net = self.nets.by_id.get(ep.network_id)
            if net is not None and net.driver == "bridge":
                return net, ep
        return None

    # lifecycle -----------------------------------------------------------------------------

    def create(self, cid: str, name: str = "", mode: str = "netns", owner: str = "", hostname: str = "",
               domainname: str = "", dns: DNSConfig | None = None, extra_hosts: list[str] | None = None,
               userns: netns.UserNamespace | None = None) -> Sandbox:  # fmt: skip
        """MODE "netns" (bridge, none, user networks: a namespace of its own, owned by USERNS when
        given), "host", "container"."""
        sb = Sandbox(cid, mode, owner=owner, name=name, hostname=hostname, domainname=domainname,
                     dns=dns or DNSConfig(), extra_hosts=list(extra_hosts or []))  # fmt: skip
        with self.lock:
            if cid in self.by_id:
                raise errors.Conflict(f"container {cid} already has a network sandbox")
            if mode == "container":
                self.get(owner)
            if mode == "netns":
                sb.key = str(self.options.run_dir / cid)
                netns.create(Path(sb.key), userns)
            self.by_id[cid] = sb
            self.store.save_sandbox(sb)
        return sb

    def connect(self, cid: str, ref: str, config: EndpointConfig | None = None) -> Endpoint:
        config = config or EndpointConfig()
        with self.lock:
            sb, net = self.get(cid), self.nets.get(ref)
            if sb.mode != "netns":
                raise errors.Forbidden(
                    "container sharing network namespace with another container or host cannot be connected to any other network"
                )
            if any(ep.network_id == net.id for ep in sb.endpoints):
                raise errors.Forbidden(f"endpoint with name {sb.name} already exists in network {net.name}")
            if (
                net.driver in ("host", "null")
                and sb.endpoints
                or any(self.nets.by_id[e.network_id].driver in ("host", "null") for e in sb.endpoints)
            ):
                raise errors.Forbidden(
                    "container cannot be disconnected from host network or connected to host network"
                )
            if config.ip and net.builtin:
                raise errors.InvalidParameter(
                    "user specified IP address is supported on user defined networks only"
                )
            ep = Endpoint(id=_new_id(), network_id=net.id, ifname=f"eth{len(sb.endpoints)}", ip_requested=config.ip,
                          aliases=list(config.aliases), links=list(config.links), driver_opts=dict(config.driver_opts),
                          ip6_requested=config.ip6)  # fmt: skip
            if net.driver == "null":
                sb.endpoints.append(ep)
                self.store.save_sandbox(sb)
                return ep
            ep.address, ep.prefixlen = self.nets.ipam.request_address(net.id, config.ip)
            ep.gateway = net.subnets[0].gateway if net.subnets else ""
            try:
                if net.subnets6:
                    ep.address6, ep.prefixlen6 = self.nets.ipam.request_address6(net.id, config.ip6)
                    ep.gateway6 = net.subnets6[0].gateway
                route6 = self._may_have_route6(sb)
                self.nets.driver(net).join(net, ep, Path(sb.key), cid)
                sb.endpoints.append(ep)
                self._route(sb, ipv6_off="" if ep.address6 else ep.ifname, route6=route6)
                if not net.builtin and self.resolver is not None and self.options.iptables:
                    self.resolver.add(cid, Path(sb.key))
                self.store.save_sandbox(sb)
            except BaseException:
                if ep in sb.endpoints:
                    sb.endpoints.remove(ep)
                if ep.address6 or not net.subnets6:  # a failed v6 request: nothing joined yet
                    self.nets.driver(net).leave(net, ep, Path(sb.key), cid)
                self.nets.ipam.release_address(net.id, ep.address)
                self.nets.ipam.release_address6(net.id, ep.address6)
                raise
        self.nets.emit("connect", net.id, {"container": cid, "name": net.name, "type": net.driver})
        return ep

    def _route(self, sb: Sandbox, ipv6_off: str = "", route6: bool = True) -> None:
        """The default routes go through one gateway endpoint, chosen as libnetwork's sandbox orders
        its endpoints: networks that reach out, those with both an IPv4 and an IPv6 gateway first,
        then by network name (so a later `network connect` may take the default route over).
        IPV6_OFF: an interface to turn IPv6 off on, in the same visit of the namespace; ROUTE6:
        an IPv6 default route may be there (none was ever set without an IPv6 gateway)."""
        ep = self.gateway_endpoint(sb)
        if ep is None:
            if ipv6_off:
                links.settle(Path(sb.key), ipv6_off)
            return
        links.settle(Path(sb.key), ipv6_off, (ep.ifname, ep.gateway, ep.gateway6),
                     drop_route6=route6 and not ep.gateway6)  # fmt: skip

    @staticmethod
    def _may_have_route6(sb: Sandbox) -> bool:
        return any(ep.gateway6 for ep in sb.endpoints)

    def gateway_endpoint(self, sb: Sandbox) -> Endpoint | None:
        candidates = [
            (self.nets.by_id[ep.network_id], ep)
            for ep in sb.endpoints
            if ep.network_id in self.nets.by_id and ep.gateway
        ]
        usable = [(n, ep) for n, ep in candidates if not n.internal and n.driver not in ("host", "null")]
        if not usable:
            return None
        return min(usable, key=lambda pair: (not (pair[1].gateway and pair[1].gateway6), pair[0].name))[1]

    def disconnect(self, cid: str, ref: str, force: bool = False) -> None:
        with self.lock:
            sb, net = self.get(cid), self.nets.get(ref)
            ep = next((e for e in sb.endpoints if e.network_id == net.id), None)
            if ep is None:
                raise errors.Forbidden(f"container {cid} is not connected to network {net.name}")
            if sb.ports and self._port_endpoint(sb) == (net, ep):
                self._unpublish(sb)
            route6 = self._may_have_route6(sb)
            self._leave(sb, net, ep)
            self._route(sb, route6=route6)
            if self.resolver is not None and not any(
                not self.nets.by_id[e.network_id].builtin for e in sb.endpoints
            ):
                self.resolver.remove(cid)
            self.store.save_sandbox(sb)
        self.nets.emit("disconnect", net.id, {"container": cid, "name": net.name, "type": net.driver})

    def _leave(self, sb: Sandbox, net: Network, ep: Endpoint) -> None:
        self.nets.driver(net).leave(net, ep, Path(sb.key), sb.container_id)
        self.nets.ipam.release_address(net.id, ep.address)
        self.nets.ipam.release_address6(net.id, ep.address6)
        sb.endpoints.remove(ep)

    def unplug(self, cid: str) -> None:
        """The host ends of the container's veths deleted (the kernel takes 10-20 ms per pair),
        ahead of `release`, whose leave then finds them gone; once its processes are dead, at
        the task's exit. Not while other containers share the namespace, which may still use it.
        The records, addresses and events stay release's, so inspect sees no change."""
        with self.lock:
            sb = self.by_id.get(cid)
            if sb is None or sb.mode != "netns" or any(o.owner == cid for o in self.by_id.values()):
                return
            names = [
                ep.host_ifname
                for ep in sb.endpoints
                if ep.host_ifname and getattr(self.nets.by_id.get(ep.network_id), "driver", "") == "bridge"
            ]
        for name in names:  # outside the lock: other containers' sandboxes go on meanwhile
            links.delete_link(name)

    def release(self, cid: str) -> None:
        """Everything of the sandbox gone: proxies, rules, endpoints, DNS listener, namespace, record."""
        with self.lock:
            sb = self.by_id.get(cid)
            if sb is None:
                return
            self._unpublish(sb)
            if self.resolver is not None:
                self.resolver.remove(cid)
            left = []
            for ep in list(sb.endpoints):
                net = self.nets.by_id.get(ep.network_id)
                if net is not None:
                    self._leave(sb, net, ep)
                    left.append(net)
            if sb.key:
                netns.remove(Path(sb.key))
            del self.by_id[cid]
            self.store.delete("sandboxes", cid)
        for net in left:
            self.nets.emit("disconnect", net.id, {"container": cid, "name": net.name, "type": net.driver})

    # ports ---------------------------------------------------------------------------------

    def publish(self, cid: str, bindings: dict[str, list[dict[str, str]]]) -> list[PortMapping]:
        """HostConfig.PortBindings ({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}), all or nothing."""
        with self.lock:
            sb = self.get(cid)
            found = self._port_endpoint(sb)
            if found is None:
                return []
            net, ep = found
            taken = [m for other in self.by_id.values() for m in other.ports]
            try:
                for key, entries in bindings.items():
                    port, proto = parse_port_key(key)
                    for entry in entries or [{}]:
                        host_ip = entry.get("HostIp") or "0.0.0.0"
                        ipaddress.IPv4Address(host_ip)
                        m = self._bind(PortMapping(proto, port, host_ip, 0, ep.address),
                                       parse_host_port(entry.get("HostPort", "")), taken)  # fmt: skip
                        sb.ports.append(m)
                        taken.append(m)
                sb.port_requests = bindings
                self.nets.sync_firewall()
                self.store.save_sandbox(sb)
            except ValueError as exc:
                self._unpublish(sb)
                raise errors.InvalidParameter(f"invalid IP address in port binding: {exc}") from None
            except BaseException:
                self._unpublish(sb)
                raise
            return list(sb.ports)

    def _bind(self, m: PortMapping, wanted: tuple[int, int] | None, taken: list[PortMapping]) -> PortMapping:
        last: errors.NetworkError | None = None
        for port in candidates(wanted, m.proto, m.host_ip, taken):
            m.host_port = port
            if not self.options.userland_proxy:
                return m
            try:
                self.proxies.start(m)
                return m
            except errors.NetworkError as exc:
                last = exc  # held by another program: the next candidate (a range or a random port)
        raise last or errors.port_allocated(m.host_ip, wanted[0] if wanted else 0)

    def _unpublish(self, sb: Sandbox) -> None:
        for m in sb.ports:
            self.proxies.stop(m)
        had = bool(sb.ports)
        sb.ports = []
        if had:
            self.nets.sync_firewall()

    # files ---------------------------------------------------------------------------------

    def write_files(self, cid: str, hosts_path: Path | None, resolv_path: Path | None) -> None:
        sb = self.get(cid)
        if sb.mode == "container":
            sb = self.get(sb.owner)
        host_text = resolvconf.host_content(self.options.host_resolv_conf)
        if resolv_path is not None:
            resolv_path.write_text(resolvconf.render(host_text, sb.dns, self.embedded_dns(sb)))
        if hosts_path is not None:
            gateway = self.nets.default_bridge().subnets[0].gateway
            extra = hosts.extra_host_records(sb.extra_hosts, gateway)
            addresses = [
                a for ep in sb.endpoints for a in (ep.address, ep.address6) if a
            ]  # v4, then v6, per network
            hosts_path.write_text(hosts.render(addresses, sb.hostname,
                                               sb.domainname, extra))  # fmt: skip

    def embedded_dns(self, sb: Sandbox) -> bool:
        return any(
            not self.nets.by_id[ep.network_id].builtin
            for ep in sb.endpoints
            if ep.network_id in self.nets.by_id
        )

    def stats(self, cid: str) -> dict[str, dict[str, int]]:
        key = self.key(cid)
        return links.interface_stats(Path(key)) if key else {}


def _new_id() -> str:
    import secrets

    return secrets.token_hex(32)
