"""The network controller (libnetwork's role inside pydockerd): networks and their upkeep.

    backend = NetworkBackend(options, emit)     # at daemon start, before live restore
    backend.start()                             # records loaded; bridge, host, none; bridges, rules
    backend.networks.create(...) / get / list / remove / prune
    backend.sandboxes.create(...) / connect / disconnect / publish / release   (sandboxes.py)
    backend.restore(live_container_ids)         # after containerd says which containers run
    backend.shutdown()                          # daemon stop: with no sandbox left, nothing remains

Every call blocks (netlink, iptables, subprocesses): the engine calls them from worker
threads. `emit(action, network_id, attributes)` receives Docker's network events (create,
destroy, connect, disconnect).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from dockerd.network import errors, links, netns
from dockerd.network.drivers import Driver, NoOp
from dockerd.network.drivers.bridge import BridgeDriver
from dockerd.network.drivers.cni import CniDriver, check_options, find_plugin
from dockerd.network.ipam import Ipam, parse_network
from dockerd.network.iptables import BridgeRules, Firewall, PortRule
from dockerd.network.model import Network
from dockerd.network.options import NetworkOptions
from dockerd.network.store import Store

log = logging.getLogger("pydockerd.network")
Emit = Callable[[str, str, dict[str, str]], None]
BUILTIN_DRIVERS = ("bridge", "host", "null")


@contextlib.contextmanager
def host_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every daemon of this kernel (flock on PATH)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class Networks:
    """Network records, their drivers and IPAM pools, and the host's firewall for them."""

    def __init__(self, options: NetworkOptions, store: Store, emit: Emit, lock: threading.RLock) -> None:
        self.options = options
        self.store = store
        self.emit = emit
        self.lock = lock
        self.ipam = Ipam(store, options.default_pools, links.host_routes)
        self.firewall = Firewall(options.chain_prefix)
        self.by_id: dict[str, Network] = {}
        self.ports: Callable[[], list[PortRule]] = list  # the sandboxes' published ports, for sync

    # lookups -------------------------------------------------------------------------------

    def driver(self, net: Network) -> Driver:
        if net.driver == "bridge":
            return BridgeDriver(self.options)
        if net.driver in ("host", "null"):
            return NoOp()
        return CniDriver(net.driver, self.options)

    def get(self, ref: str) -> Network:
        """By full id, exact name, or unique id prefix (dockerd's order)."""
        with self.lock:
            if ref in self.by_id:
                return self.by_id[ref]
            named = [n for n in self.by_id.values() if n.name == ref]
            if named:
                return named[0]
            prefixed = [n for n in self.by_id.values() if ref and n.id.startswith(ref)]
            if len(prefixed) == 1:
                return prefixed[0]
            if len(prefixed) > 1:
                raise errors.InvalidParameter(
                    f"network {ref} is ambiguous ({len(prefixed)} matches found based on ID prefix)"
                )
        raise errors.network_not_found(ref)

    def all(self) -> list[Network]:
        with self.lock:
            return list(self.by_id.values())

    def default_bridge(self) -> Network:
        return self.get("bridge")

    # create / remove ----------------------------------------------------------------------

    def create(self, name: str, driver: str = "bridge", subnet: str = "", gateway: str = "", ip_range: str = "",
               internal: bool = False, attachable: bool = False, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, ipam_options: dict[str, str] | None = None,
               builtin: bool = False, bridge: str = "", network_id: str = "",
               aux_addresses: dict[str, str] | None = None, enable_ipv6: bool = False,
               ipv6: list[dict[str, str]] | None = None) -> Network:  # fmt: skip
        """A new network, its pool reserved and its kernel objects made; nothing left if it fails."""
        driver = {"": "bridge", "none": "null"}.get(driver, driver)
        if not name:
            raise errors.InvalidParameter("network name must not be empty")  # never reached through the API
        if driver not in BUILTIN_DRIVERS and find_plugin(driver, self.options.cni_path) is None:
            raise errors.NotFound(f'plugin "{driver}" not found')
        with self.lock:
            if any(n.name == name for n in self.by_id.values()):
                raise errors.name_taken(name)
            if driver in ("host", "null") and not builtin:
                raise errors.Forbidden(f'only one instance of "{driver}" network is allowed')
            if driver not in BUILTIN_DRIVERS:
                check_options(driver, dict(options or {}))  # before the parent, as dockerd's order
            self._check_parent_free(driver, (options or {}).get("parent", ""))
            net = Network(id=network_id or secrets.token_hex(32), name=name, driver=driver, created=now_rfc3339(),
                          internal=internal, attachable=attachable, labels=dict(labels or {}),
                          options=dict(options or {}), ipam_options=dict(ipam_options or {}), builtin=builtin,
                          subnet_requested=bool(subnet), gateway_shown=bool(gateway or not subnet), enable_ipv6=enable_ipv6,
                          ipv6_config=[dict(c) for c in ipv6 or []])  # fmt: skip
            # Other daemons on this kernel pick pools from the host's routes too: choosing one and
            # making the bridge that routes it is one step for all of them.
            with host_lock(self.options.host_lock):
                if driver not in ("host", "null"):
                    net.subnets = [
                        self.ipam.request_pool(
                            net.id, self._taken(), subnet, gateway, ip_range, aux_addresses
                        )
                    ]
                try:
                    for cfg6 in net.ipv6_config if enable_ipv6 and driver not in ("host", "null") else []:
                        net.subnets6.append(self.ipam.request_pool6(
                            net.id, self._taken6(), cfg6.get("Subnet", ""), cfg6.get("Gateway", ""), cfg6.get("IPRange", "")))  # fmt: skip
                except BaseException:
                    self.ipam.release_pool(net.id)
                    raise
                if driver == "bridge":
                    net.bridge = (
                        bridge
                        or options
                        and options.get("com.docker.network.bridge.name")
                        or self.options.user_bridge_name(net.id)
                    )
                try:
                    self.driver(net).create(net)
                    self.by_id[net.id] = net
                    self.sync_firewall()
                    self.store.save_network(net)
                except BaseException:
                    self.by_id.pop(net.id, None)
                    self._undo(net)
                    raise
        if not builtin:
            self.emit("create", net.id, {"name": net.name, "type": net.driver})
        return net

    def _check_parent_free(self, driver: str, parent: str) -> None:
        """One macvlan (and one ipvlan) network per parent link, as dockerd (named as its dummy link)."""
        if driver not in ("macvlan", "ipvlan") or not parent:
            return
        for other in self.by_id.values():
            if other.driver == driver and other.options.get("parent") == parent:
                prefix = "dm-" if other.driver == "macvlan" else "di-"
                raise errors.InvalidParameter(
                    f"network {prefix}{other.id[:12]} is already using parent interface {parent}"
                )

    def _taken(self) -> list[IPv4Network]:
        return [parse_network(s.subnet) for n in self.by_id.values() for s in n.subnets]

    def _taken6(self) -> list[IPv6Network]:
        return [IPv6Network(s.subnet) for n in self.by_id.values() for s in n.subnets6]

    def _undo(self, net: Network) -> None:
        try:
            self.driver(net).delete(net)
            self.sync_firewall()
        finally:
            self.ipam.release_pool(net.id)

    def remove(self, ref: str, in_use: Callable[[str], bool]) -> None:
        """Remove a network no sandbox is attached to (IN_USE tells)."""
        with self.lock:
            net = self.get(ref)
            if net.builtin:
                raise errors.Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            if in_use(net.id):
                raise errors.active_endpoints(net.name, net.id)
            del self.by_id[net.id]
            self.store.delete("networks", net.id)
            self._undo(net)
        self.emit("destroy", net.id, {"name": net.name, "type": net.driver})

    def prune(
        self, in_use: Callable[[str], bool], keep: Callable[[Network], bool] = lambda n: False
    ) -> list[str]:
        """Remove every unused user-defined network (KEEP filters some out); their names."""
        removed = []
        for net in self.all():
            if not net.builtin and not in_use(net.id) and not keep(net):
                try:
                    self.remove(net.id, in_use)
                    removed.append(net.name)
                except errors.NetworkError:
                    continue
        return removed

    # upkeep --------------------------------------------------------------------------------

    def bridge_rules(self) -> list[BridgeRules]:
        rules = []
        for n in self.by_id.values():
            if n.driver == "bridge":
                icc = n.options.get(
                    "com.docker.network.bridge.enable_icc",
                    "true" if self.options.icc or not n.builtin else "false",
                )
                rules.append(BridgeRules(n.bridge, n.subnets[0].subnet, n.internal, icc != "false"))
        return rules

    def sync_firewall(self) -> None:
        if self.options.iptables:
            self.firewall.sync(self.bridge_rules(), self.ports())

    def load(self) -> None:
        """Records from disk, then the built-in networks; every network's kernel objects ensured."""
        with self.lock:
            for net in self.store.networks():
                self.by_id[net.id] = net
            if self.options.iptables:
                self.sync_firewall()
            for net in self.by_id.values():
                try:
                    self.driver(net).create(net)
                except errors.NetworkError as exc:  # e.g. a macvlan's parent gone since: the rest still start
                    log.warning("network %s (%s): %s", net.name, net.driver, exc)
            names = {n.name for n in self.by_id.values()}
            if "bridge" not in names:
                self._create_default_bridge()
            for name, driver in (("host", "host"), ("none", "null")):
                if name not in names:
                    self.create(name, driver, builtin=True)

    def _create_default_bridge(self) -> None:
        subnet = gateway = ""
        if self.options.bip:
            iface = parse_network(self.options.bip)
            subnet, gateway = str(iface), self.options.bip.split("/")[0]
        opts = {"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.enable_icc": str(self.options.icc).lower(),
                "com.docker.network.bridge.enable_ip_masquerade": "true", "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                "com.docker.network.bridge.name": self.options.bridge_name, "com.docker.network.driver.mtu": str(self.options.mtu)}  # fmt: skip
        self.create("bridge", "bridge", subnet=subnet, gateway=gateway, ip_range=self.options.fixed_cidr or "",
                    options=opts, builtin=True, bridge=self.options.bridge_name)  # fmt: skip

    def teardown(self) -> None:
        """Every kernel object of every network gone (records kept: `load` makes them again)."""
        with self.lock:
            for net in self.by_id.values():
                self.driver(net).delete(net)
            if self.options.iptables:
                self.firewall.teardown()
            netns.release_dir(self.options.run_dir)
