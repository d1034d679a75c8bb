"""IP address management, libnetwork's default IPAM: pools for networks, addresses for endpoints.

A network's pool is either the subnet it was created with or the first block of the
configured pools (`default-address-pools`, dockerd's 172.17-31.x/16 and 192.168.x/20 when
none are set) that overlaps neither another network's pool nor a route of the host (so two
daemons on one machine, or a daemon and the host's own networks, never share a subnet).
Every address handed out is recorded in `<state>/ipam/<network id>.json` before it is
returned: after a restart, or a crash, nothing is handed out twice.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, TypeVar

from dockerd.network import errors
from dockerd.network.model import Subnet
from dockerd.network.store import Store

Routes = Callable[[], list[IPv4Network]]


_Parsed = TypeVar("_Parsed", IPv4Network, IPv6Network, IPv4Address, IPv6Address)


def _parse(
    value: str, parse: Callable[[str], object], bad: str, family: type[_Parsed], wrong_family: str
) -> _Parsed:
    """`value` parsed by `parse`, refused in libnetwork's words when malformed (`bad`) or of the
    other IP family (`wrong_family`)."""
    try:
        parsed = parse(value)
    except ValueError:
        raise errors.InvalidParameter(f"{bad}: {value}") from None
    if not isinstance(parsed, family):
        raise errors.InvalidParameter(wrong_family)
    return parsed


def _network(value: str) -> object:
    return ipaddress.ip_network(value, strict=False)


def parse_network(value: str, what: str = "subnet") -> IPv4Network:
    return _parse(
        value, _network, "invalid CIDR address", IPv4Network, f"IPv6 {what} {value} is not supported"
    )


def parse_network6(value: str) -> IPv6Network:
    return _parse(value, _network, "invalid CIDR address", IPv6Network, f"invalid IPv6 subnet {value}")


def parse_address6(value: str) -> IPv6Address:
    return _parse(
        value, ipaddress.ip_address, "invalid IP address", IPv6Address, f"invalid IPv6 address: {value}"
    )


def parse_address(value: str) -> IPv4Address:
    return _parse(
        value,
        ipaddress.ip_address,
        "invalid IP address",
        IPv4Address,
        f"IPv6 address {value} is not supported",
    )


class Ipam:
    def __init__(self, store: Store, pools: Iterable[tuple[str, int]], host_routes: Routes) -> None:
        self.store = store
        self.pools = [(parse_network(base, "pool"), size) for base, size in pools]
        self.host_routes = host_routes

    # pools ---------------------------------------------------------------------------------

    def request_pool(
        self,
        network_id: str,
        taken: list[IPv4Network],
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        aux_addresses: dict[str, str] | None = None,
    ) -> Subnet:
        """Reserve a subnet for NETWORK_ID (the given one, or a free default block) and its gateway."""
        if subnet:
            net = parse_network(subnet)
            if any(net.overlaps(other) for other in taken):
                raise errors.pool_overlaps()
        else:
            net = self._free_block(taken)
        gw = parse_address(gateway) if gateway else net.network_address + 1
        if gw not in net:
            raise errors.InvalidParameter(f"no matching subnet for gateway {gateway}")
        if ip_range:
            rng = parse_network(ip_range, "ip-range")
            if not rng.subnet_of(net):
                raise errors.InvalidParameter(f"no matching subnet for range {ip_range}")
        aux = dict(aux_addresses or {})
        for address in aux.values():
            if parse_address(address) not in net:
                raise errors.InvalidParameter(f"no matching subnet for aux-address {address}")
        record = Subnet(
            subnet=str(net),
            gateway=str(gw),
            ip_range=ip_range and str(parse_network(ip_range)),
            aux_addresses=aux,
        )
        self.store.write("ipam", network_id, {"subnet": record.subnet, "gateway": record.gateway, "ip_range": record.ip_range,
                                               "allocated": [str(gw), *aux.values()]})  # fmt: skip
        return record

    def _free_block(self, taken: list[IPv4Network]) -> IPv4Network:
        busy = taken + self.host_routes()
        for base, size in self.pools:
            for block in base.subnets(new_prefix=size) if size >= base.prefixlen else [base]:
                if not any(block.overlaps(other) for other in busy):
                    return block
        raise errors.no_pool_available()

    def request_pool6(self, network_id: str, taken: list[IPv6Network], subnet: str, gateway: str = "",
                      ip_range: str = "") -> Subnet:  # fmt: skip
        """The IPv6 subnet of an EnableIPv6 network, recorded beside its IPv4 pool (same file)."""
        net = parse_network6(subnet)
        if any(net.overlaps(other) for other in taken):
            raise errors.pool_overlaps()
        gw = parse_address6(gateway) if gateway else net.network_address + 1
        if gw not in net:  # (dockerd answers 500: bad input is a 400 here)
            raise errors.InvalidParameter(
                f"failed to allocate gateway ({gateway}): Requested address is out of range"
            )
        rng = parse_network6(ip_range) if ip_range else None
        if rng is not None and not rng.subnet_of(net):
            raise errors.InvalidParameter(f"no matching subnet for range {ip_range}")
        state = self._state(network_id)
        state.update(
            {"subnet6": str(net), "gateway6": str(gw), "ip_range6": str(rng or ""), "allocated6": [str(gw)]}
        )
        self.store.write("ipam", network_id, state)
        return Subnet(subnet=str(net), gateway=str(gw), ip_range=str(rng or ""))

    def request_address6(self, network_id: str, preferred: str = "") -> tuple[str, int]:
        """An IPv6 address of NETWORK_ID's v6 pool (PREFERRED if given), handed out in order as
        libnetwork's IPAM does: (address, prefix length)."""
        state = self._state(network_id)
        net = IPv6Network(state["subnet6"])
        allocated = set(state["allocated6"])
        if preferred:
            addr = parse_address6(preferred)
            if addr not in net:
                raise errors.InvalidParameter(
                    f"Invalid address {preferred}: It does not belong to any of this network's subnets"
                )
            if str(addr) in allocated:
                raise errors.Forbidden("Address already in use")  # (dockerd names no IPv6 address)
        else:
            rng = IPv6Network(state["ip_range6"]) if state.get("ip_range6") else net
            # in order from the first host address: at most len(allocated) of the first ones are taken
            free = (a for a in itertools.islice(rng.hosts(), len(allocated) + 1) if str(a) not in allocated)
            found = next(free, None)
            if found is None:
                raise errors.NetworkError("no available IPv6 addresses on this network's address pools")
            addr = found
        state["allocated6"].append(str(addr))
        self.store.write("ipam", network_id, state)
        return str(addr), net.prefixlen

    def release_address6(self, network_id: str, address: str) -> None:
        state = self.store.read("ipam", network_id)
        if state is None or address not in state.get("allocated6", []) or address == state.get("gateway6"):
            return
        state["allocated6"].remove(address)
        self.store.write("ipam", network_id, state)

    def release_pool(self, network_id: str) -> None:
        self.store.delete("ipam", network_id)

    # addresses -----------------------------------------------------------------------------

    def request_address(self, network_id: str, preferred: str = "") -> tuple[str, int]:
        """Hand out an address of NETWORK_ID's pool (PREFERRED if given): (address, prefix length)."""
        state = self._state(network_id)
        net = IPv4Network(state["subnet"])
        allocated = set(state["allocated"])
        if preferred:
            addr = parse_address(preferred)
            if addr not in net:
                raise errors.InvalidParameter(
                    f"Invalid address {preferred}: It does not belong to any of this network's subnets"
                )
            if str(addr) in allocated:
                raise errors.address_in_use(preferred)
        else:
            addr = self._first_free(
                net, IPv4Network(state["ip_range"]) if state["ip_range"] else net, allocated
            )
        state["allocated"].append(str(addr))
        self.store.write("ipam", network_id, state)
        return str(addr), net.prefixlen

    @staticmethod
    def _first_free(net: IPv4Network, rng: IPv4Network, allocated: set[str]) -> IPv4Address:
        for addr in rng.hosts() if rng.prefixlen < 31 else rng:
            if addr not in (net.network_address, net.broadcast_address) and str(addr) not in allocated:
                return addr
        raise errors.NetworkError("no available IPv4 addresses on this network's address pools")

    def release_address(self, network_id: str, address: str) -> None:
        state = self.store.read("ipam", network_id)
        if state is None or address == state["gateway"] or address not in state["allocated"]:
            return
        state["allocated"].remove(address)
        self.store.write("ipam", network_id, state)

    def allocated(self, network_id: str) -> list[str]:
        state = self.store.read("ipam", network_id)
        return list(state["allocated"]) if state else []

    def _state(self, network_id: str) -> dict[str, Any]:
        state = self.store.read("ipam", network_id)
        if state is None:
            raise errors.NetworkError(f"no address pool for network {network_id}")
        return state
