"""Links, addresses and routes, through pyroute2 (netlink).

Every call opens its own IPRoute: pyroute2's synchronous sockets belong to the thread that
made them, and the engine calls the backend from worker threads.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from dockerd.network import netns
from dockerd.network.rtnl import IPRoute, NetlinkError

ENOENT_CODES = (19, 2)  # ENODEV, ENOENT: the link is already gone


T = TypeVar("T")


def _with_ipr(ns: Path | None, fn: Callable[[IPRoute], T]) -> T:
    """FN with an IPRoute of the host's namespace, or of NS (opened by a thread inside it)."""

    def work() -> T:
        with IPRoute() as ipr:
            return fn(ipr)

    return work() if ns is None else netns.run_in(ns, work)


def index_of(name: str, ns: Path | None = None) -> int | None:
    found = _with_ipr(ns, lambda ipr: ipr.link_lookup(ifname=name))
    return found[0] if found else None


def ensure_bridge(
    name: str, address: str, prefixlen: int, mtu: int, address6: str = "", prefixlen6: int = 0
) -> None:
    """The bridge NAME, up, with ADDRESS/PREFIXLEN (none when ""), and ADDRESS6/PREFIXLEN6 when
    given (created, or found after a restart)."""
    with IPRoute() as ipr:
        if not ipr.link_lookup(ifname=name):
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        index = ipr.link_lookup(ifname=name)[0]
        if address6:
            # a bridge's IPv6 may be off by default (sysctl): on for this link only, as dockerd
            _set_ipv6(name, True)
        for family, addr, plen in ((2, address, prefixlen), (10, address6, prefixlen6)):
            present = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=family)}
            if addr and (addr, plen) not in present:
                ipr.addr(
                    "add",
                    index=index,
                    address=addr,
                    prefixlen=plen,
                    **({"flags": IFA_F_NODAD} if family == 10 else {}),
                )
        ipr.link("set", index=index, state="up")


IFA_F_NODAD = 0x02  # no duplicate address detection: the address is usable at once, as dockerd's


def _set_ipv6(ifname: str, on: bool, ns: Path | None = None) -> None:
    def work() -> None:
        path = f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"
        if os.path.exists(path):
            with open(path, "w") as f:
                f.write("0" if on else "1")

    work() if ns is None else netns.run_in(ns, work)


def delete_link(name: str, ns: Path | None = None) -> None:
    """The link NAME gone (one request: the kernel finds it by name), if it is there."""

    def work(ipr: IPRoute) -> None:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code not in ENOENT_CODES:
                raise

    _with_ipr(ns, work)


def add_veth(
    host_name: str, peer_name: str, ns: Path, mtu: int, bridge: str = "", peer_mac: str = ""
) -> None:
    """A veth pair whose peer is born inside the namespace NS under its final name (eth0...) with
    PEER_MAC (the kernel's random one when ""); the host end, with BRIDGE, enslaved to it and up.
    One netlink request: the kernel sets the master, the flags and the peer's address at creation."""
    peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": str(ns), "mtu": mtu}
    if peer_mac:
        peer["address"] = peer_mac
    extra: dict[str, Any] = {"master": socket.if_nametoindex(bridge), "state": "up"} if bridge else {}
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer=peer, **extra)


def configure(ns: Path, ifname: str, mac: str, address: str, prefixlen: int, gateway: str | None,
              address6: str = "", prefixlen6: int = 0) -> None:  # fmt: skip
    """Give IFNAME inside NS its MAC (unless ""), addresses, bring it up, and route the default
    through GATEWAY."""

    def work(ipr: IPRoute) -> None:
        index = socket.if_nametoindex(ifname)  # (an ioctl on a socket this thread makes: NS's)
        if mac:
            ipr.link("set", index=index, address=mac)
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        if address6:
            _set_ipv6(ifname, True)  # (this thread is inside NS: its /proc/sys/net is NS's)
            ipr.addr("add", index=index, address=address6, prefixlen=prefixlen6, flags=IFA_F_NODAD)
        ipr.link("set", index=index, state="up")
        if gateway:
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)

    _with_ipr(ns, work)


def settle(
    ns: Path, ipv6_off: str = "", route: tuple[str, str, str] | None = None, drop_route6: bool = False
) -> None:
    """What a sandbox's change of endpoints leaves to do inside NS, in one visit: IPv6 off on the
    interface IPV6_OFF (unless ""), the default routes through ROUTE (interface, IPv4 gateway,
    IPv6 gateway or ""), and with DROP_ROUTE6 no IPv6 default route."""

    def work() -> None:
        if ipv6_off:
            _set_ipv6(ipv6_off, False)
        if route is None and not drop_route6:
            return
        with IPRoute() as ipr:
            if route is not None:
                ifname, gateway, gateway6 = route
                index = socket.if_nametoindex(ifname)
                for gw in (gateway, gateway6):
                    if gw:
                        _replace_default_route(ipr, gw, index)
            if drop_route6:
                _drop_default_route6(ipr)

    netns.run_in(ns, work)


def default_route(ns: Path) -> str | None:
    def work(ipr: IPRoute) -> str | None:
        for route in ipr.get_routes(family=2, table=254):
            if route["dst_len"] == 0 and route.get("gateway"):
                return str(route.get("gateway"))
        return None

    return _with_ipr(ns, work)


def set_default_route(ns: Path, gateway: str, ifname: str) -> None:
    """The default route (IPv4 or IPv6, after GATEWAY's family) through GATEWAY on IFNAME."""
    _with_ipr(ns, lambda ipr: _replace_default_route(ipr, gateway, socket.if_nametoindex(ifname)))


def _replace_default_route(ipr: IPRoute, gateway: str, index: int) -> None:
    v6 = ":" in gateway
    ipr.route(
        "replace", dst="::/0" if v6 else "0.0.0.0/0", gateway=gateway, oif=index, family=10 if v6 else 2
    )


def disable_ipv6(ns: Path, ifname: str) -> None:
    """IPv6 off on IFNAME inside NS (no link-local address either): an endpoint without an IPv6
    address, as libnetwork leaves it."""
    _set_ipv6(ifname, False, ns)


def drop_default_route6(ns: Path) -> None:
    """No IPv6 default route in NS (the gateway endpoint has no IPv6 gateway)."""
    _with_ipr(ns, _drop_default_route6)


def _drop_default_route6(ipr: IPRoute) -> None:
    for route in ipr.get_routes(family=10, table=254):
        if route["dst_len"] == 0 and route.get("gateway"):
            ipr.route("del", dst="::/0", family=10, gateway=route.get("gateway"), oif=route.get("oif"))


def host_routes() -> list[IPv4Network]:
    """The host's IPv4 routes to networks (default route excluded): pools must not overlap them."""
    found = []
    with IPRoute() as ipr:
        for route in ipr.get_routes(family=2, table=254):
            if route["dst_len"] and route.get("dst"):
                found.append(ipaddress.ip_network(f"{route.get('dst')}/{route['dst_len']}", strict=False))
    return [n for n in found if isinstance(n, IPv4Network)]


def names(ns: Path | None = None) -> list[str]:
    return _with_ipr(ns, lambda ipr: [str(link.get("ifname")) for link in ipr.get_links()])


_STATS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
)


def interface_stats(ns: Path) -> dict[str, dict[str, int]]:
    """Per-interface counters inside NS (lo left out), in the shape of Docker's stats `networks`."""
    result: dict[str, dict[str, int]] = {}
    for link in _with_ipr(ns, lambda ipr: list(ipr.get_links())):
        name = str(link.get("ifname"))
        if name == "lo":
            continue
        stats: Any = link.get("IFLA_STATS64") or {}
        result[name] = {key: int(stats.get(key, 0)) for key in _STATS}
    return result
