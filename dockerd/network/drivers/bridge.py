"""The bridge driver: a Linux bridge per network, a veth pair per endpoint (pyroute2)."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from dockerd.network import links
from dockerd.network.model import Endpoint, Network
from dockerd.network.options import IFNAMSIZ, NetworkOptions


def mac_for(address: str) -> str:
    """dockerd's MAC for an IPv4 endpoint: 02:42 then the four bytes of the address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def enable_ip_forward() -> None:
    """net.ipv4.ip_forward=1, as dockerd sets it (without it nothing leaves a bridge network)."""
    with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:
        if f.read().strip() != "1":
            f.seek(0)
            f.write("1")


class BridgeDriver:
    def __init__(self, options: NetworkOptions) -> None:
        self.options = options

    def create(self, net: Network) -> None:
        subnet = net.subnets[0]
        prefixlen = ipaddress.IPv4Network(subnet.subnet).prefixlen
        mtu = int(net.options.get("com.docker.network.driver.mtu") or self.options.mtu)
        v6 = net.subnets6[0] if net.subnets6 else None
        links.ensure_bridge(net.bridge, subnet.gateway, prefixlen, mtu, v6.gateway if v6 else "",
                            ipaddress.IPv6Network(v6.subnet).prefixlen if v6 else 0)  # fmt: skip
        if self.options.ip_forward and self.options.iptables:
            enable_ip_forward()

    def delete(self, net: Network) -> None:
        links.delete_link(net.bridge)

    def join(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        room = IFNAMSIZ - len(self.options.veth_prefix)
        ep.host_ifname = self.options.veth_prefix + secrets.token_hex(4)[:room]
        ep.mac = ep.mac or mac_for(ep.address)
        mtu = int(net.options.get("com.docker.network.driver.mtu") or self.options.mtu)
        links.add_veth(ep.host_ifname, ep.ifname, ns, mtu, bridge=net.bridge, peer_mac=ep.mac)
        try:
            links.configure(ns, ep.ifname, "", ep.address, ep.prefixlen, None, ep.address6, ep.prefixlen6)
        except BaseException:
            links.delete_link(ep.host_ifname)
            raise

    def leave(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        # Deleting the host end removes the pair, wherever the other end is.
        if ep.host_ifname:
            links.delete_link(ep.host_ifname)
