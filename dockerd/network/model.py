"""The backend's records: networks, sandboxes and their endpoints, as stored on disk.

Plain dataclasses turned into JSON by `to_dict` / `from_dict`; the store writes one file per
network and per sandbox, so a restarted daemon (or one killed with -9) finds them as they were.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(record: Any) -> dict[str, Any]:
    result: dict[str, Any] = dataclasses.asdict(record)
    return result


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build CLS from DATA, nested records included; keys it does not know are dropped."""
    hints = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in hints:
            continue
        nested = _NESTED.get((cls.__name__, name))
        if nested is not None and value is not None:
            value = (
                [from_dict(nested, v) for v in value] if isinstance(value, list) else from_dict(nested, value)
            )
        kwargs[name] = value
    return cls(**kwargs)


@dataclass
class Subnet:
    """One IPAM config entry of a network (Docker's IPAMConfig)."""

    subnet: str  # "172.18.0.0/16"
    gateway: str  # "172.18.0.1"
    ip_range: str = ""  # addresses for containers come from here when set
    aux_addresses: dict[str, str] = field(default_factory=dict)


@dataclass
class Network:
    id: str
    name: str
    driver: str  # bridge, host, null, or a CNI plugin's name
    created: str  # RFC 3339 with nanoseconds, as Docker's
    subnets: list[Subnet] = field(default_factory=list)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # driver options (--opt)
    ipam_options: dict[str, str] = field(default_factory=dict)
    builtin: bool = False  # bridge, host and none: neither removable nor pruned
    bridge: str = ""  # the Linux bridge (bridge driver) or master interface (CNI macvlan/ipvlan)
    subnet_requested: bool = False  # --subnet given (Docker's IPAM "Config" shows it either way)
    # the IPv4 gateway was given or chosen with the pool; with --subnet alone dockerd's IPAM "Config" shows none
    gateway_shown: bool = True
    # IPv6 IPAM entries as given ({"Subnet", "Gateway"...}): what inspect shows
    ipv6_config: list[dict[str, str]] = field(default_factory=list)
    subnets6: list[Subnet] = field(default_factory=list)  # the IPv6 pool endpoints get addresses from


@dataclass
class Endpoint:
    id: str
    network_id: str
    ifname: str  # inside the sandbox: eth0, eth1...
    host_ifname: str = ""  # the veth's host end (bridge driver)
    mac: str = ""
    address: str = ""  # IPv4 without prefix
    prefixlen: int = 0
    gateway: str = ""
    ip_requested: str = ""  # --ip / IPAMConfig.IPv4Address
    aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # legacy --link on the default bridge ("name:alias")
    driver_opts: dict[str, str] = field(default_factory=dict)
    address6: str = ""  # IPv6 without prefix (networks with EnableIPv6)
    prefixlen6: int = 0
    gateway6: str = ""
    ip6_requested: str = ""  # --ip6 / IPAMConfig.IPv6Address
    driver_state: dict[str, Any] = field(
        default_factory=dict
    )  # what the driver needs again (CNI: ADD's result)


@dataclass
class PortMapping:
    """One published port: HOST_IP:HOST_PORT on the host to the container's PORT/PROTO."""

    proto: str  # tcp or udp
    container_port: int
    host_ip: str  # "0.0.0.0" for all addresses
    host_port: int
    container_ip: str = ""
    proxy_pid: int = 0
    proxy_start: int = 0  # the proxy's start time (clock ticks): a pid alone may be reused


@dataclass
class DNSConfig:
    """What resolv.conf says, and which servers the embedded resolver forwards to."""

    servers: list[str] = field(default_factory=list)  # --dns; "IP" or "IP:PORT" (ports: tests' upstreams)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class Sandbox:
    """A container's network namespace and everything attached to it."""

    container_id: str
    mode: str  # "netns" (own namespace), "host", or "container" (shares OWNER's)
    key: str = ""  # path of the namespace file; "" for host
    owner: str = ""  # the container whose namespace this one shares (mode "container")
    name: str = ""  # the container's name (DNS, hosts)
    hostname: str = ""
    domainname: str = ""
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)
    port_requests: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # HostConfig.PortBindings
    dns: DNSConfig = field(default_factory=DNSConfig)
    extra_hosts: list[str] = field(default_factory=list)  # --add-host NAME:IP
    service_names: dict[str, list[str]] = field(default_factory=dict)  # network id -> Compose-style names


_NESTED: dict[tuple[str, str], type[Any]] = {
    ("Network", "subnets"): Subnet,
    ("Network", "subnets6"): Subnet,
    ("Sandbox", "endpoints"): Endpoint,
    ("Sandbox", "ports"): PortMapping,
    ("Sandbox", "dns"): DNSConfig,
}
