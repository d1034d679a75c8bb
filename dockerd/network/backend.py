"""The network backend the engine holds: networks, sandboxes, the DNS server, restore and stop.

backend = NetworkBackend(options, emit)
backend.start()                 # daemon start: records, built-in networks, bridges, rules, DNS thread
backend.restore(live_ids)       # live restore: sandboxes of running containers kept and served
                                # again (DNS listeners, dead proxies restarted), the rest released
backend.networks...             # controller.Networks: create / get / list / remove / prune
backend.sandboxes...            # sandboxes.Sandboxes: create / connect / publish / release...
backend.shutdown()              # daemon stop: DNS thread stopped; with no sandbox left, every
                                # bridge, rule and namespace mount removed (records kept)
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from pathlib import Path

from dockerd.network import netns, resolvconf
from dockerd.network.controller import Emit, Networks
from dockerd.network.dns import Resolver
from dockerd.network.model import Sandbox
from dockerd.network.options import NetworkOptions
from dockerd.network.ports import Proxies, proxy_alive
from dockerd.network.sandboxes import Sandboxes
from dockerd.network.store import Store


def _no_events(action: str, network_id: str, attributes: dict[str, str]) -> None:
    pass


class NetworkBackend:
    def __init__(self, options: NetworkOptions, emit: Emit = _no_events) -> None:
        self.options = options
        self.lock = threading.RLock()
        self.store = Store(options.state_dir)
        self.networks = Networks(options, self.store, emit, self.lock)
        self.sandboxes = Sandboxes(self.networks, self.store, Proxies(options.proxy_command))
        self.resolver: Resolver | None = None
        self._rotation = itertools.count()

    def start(self) -> None:
        with self.lock:
            for sb in self.store.sandboxes():  # known before the rules are written: their ports stay
                self.sandboxes.by_id[sb.container_id] = sb
            self.networks.load()
            self.resolver = Resolver(self.lookup, self.upstreams, self.options.chain_prefix)
            self.sandboxes.resolver = self.resolver

    def restore(self, live: set[str]) -> None:
        """Keep the sandboxes of LIVE containers (serving them again), release every other one."""
        with self.lock:
            stale = [
                cid for cid, sb in self.sandboxes.by_id.items() if cid not in live or not self._intact(sb)
            ]
            for cid in stale:
                self.sandboxes.release(cid)
            for sb in self.sandboxes.by_id.values():
                if self.resolver is not None and self.sandboxes.embedded_dns(sb) and self.options.iptables:
                    self.resolver.add(sb.container_id, Path(sb.key))
                for m in sb.ports:
                    if self.options.userland_proxy and not proxy_alive(m):
                        self.sandboxes.proxies.start(m)
                self.store.save_sandbox(sb)
            self.networks.sync_firewall()

    def _intact(self, sb: Sandbox) -> bool:
        if sb.mode == "netns":
            return netns.is_mounted(Path(sb.key))
        return sb.mode == "host" or sb.owner in self.sandboxes.by_id

    def shutdown(self) -> None:
        if self.resolver is not None:
            self.resolver.stop()
            self.resolver = self.sandboxes.resolver = None
        with self.lock:
            if not self.sandboxes.by_id:
                self.networks.teardown()

    # the embedded DNS server's questions -------------------------------------------------------

    def lookup(self, cid: str, name: str, qtype: str) -> list[str] | None:
        """Answers for NAME asked from CID's sandbox: None when the name is none of ours."""
        with self.lock:
            sb = self.sandboxes.by_id.get(cid)
            if sb is None:
                return None
            nets = [self.networks.by_id[ep.network_id] for ep in sb.endpoints
                    if ep.network_id in self.networks.by_id and not self.networks.by_id[ep.network_id].builtin]  # fmt: skip
            if qtype == "PTR":
                return self._reverse(name, {n.id: n.name for n in nets})
            for net in nets:
                target = name[: -len(net.name) - 1] if name.endswith("." + net.name.lower()) else name
                matching = [ep for other in self.sandboxes.by_id.values() for ep in other.endpoints
                            if ep.network_id == net.id and ep.address and target in _names(other, ep.aliases, net.id)]  # fmt: skip
                if matching:
                    # the name is ours: its addresses of the family asked (none is an empty answer)
                    found = [
                        ep.address if qtype == "A" else ep.address6
                        for ep in matching
                        if qtype in ("A", "AAAA")
                    ]
                    found = [a for a in found if a]
                    if not found:
                        return []
                    turn = next(self._rotation) % len(found)
                    return found[turn:] + found[:turn]
        return None

    def _reverse(self, name: str, nets: dict[str, str]) -> list[str] | None:
        address = _reverse_address(name)
        if address is None:
            return None
        for other in self.sandboxes.by_id.values():
            for ep in other.endpoints:
                if ep.network_id in nets and address in (ep.address, ep.address6):
                    return [f"{other.name.lstrip('/')}.{nets[ep.network_id]}"]
        return None

    def upstreams(self, cid: str) -> list[tuple[str, int]]:
        with self.lock:
            sb = self.sandboxes.by_id.get(cid)
            if sb is None:
                return []
            nets = [self.networks.by_id.get(ep.network_id) for ep in sb.endpoints]
            if nets and all(n is not None and n.internal for n in nets):
                return []  # no way out of an internal network, for names neither
            dns = sb.dns
        return resolvconf.upstreams(resolvconf.host_content(self.options.host_resolv_conf), dns)


def _reverse_address(name: str) -> str | None:
    """The address a PTR question names: a.b.c.d.in-addr.arpa, or 32 nibbles then ip6.arpa."""
    try:
        if name.endswith(".in-addr.arpa"):
            return str(ipaddress.IPv4Address(".".join(reversed(name[: -len(".in-addr.arpa")].split(".")))))
        if name.endswith(".ip6.arpa"):
            nibbles = name[: -len(".ip6.arpa")].split(".")
            if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
                return None
            return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    except ValueError:
        return None
    return None


def _names(sb: Sandbox, aliases: list[str], network_id: str) -> set[str]:
    names = {sb.name.lstrip("/"), *aliases, *sb.service_names.get(network_id, [])}
    return {n.lower() for n in names if n}
