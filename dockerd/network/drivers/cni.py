"""Any CNI plugin on the host as a network driver (Debian's containernetworking-plugins).

`docker network create -d macvlan -o parent=IF ...` makes a network whose driver is the
plugin `macvlan`; joining a sandbox runs the plugin's ADD through `common/cni.py` (the executor
pycontainerd's CRI plugin runs pods' networks with), with the sandbox's namespace file as
CNI_NETNS and the network's configuration on stdin; leaving runs DEL with the same
configuration and the ADD's result. Addresses stay ours: the configuration's IPAM is the
`static` plugin with the address our IPAM handed out, so one allocator (persisted, never handing
out an address twice) serves every driver; the default route is the sandbox's business (the
gateway endpoint libnetwork's order picks), as with bridges.

Docker's own option names for its macvlan and ipvlan drivers are translated to the plugins'
(`parent` is `master`, `macvlan_mode`/`ipvlan_mode` are `mode`; the MTU option is other plugins' `mtu`,
dockerd's macvlan/ipvlan ignore it and so do we) and
checked at create with dockerd's wording; without a parent dockerd makes a dummy link, and so do
we, a bridge where the kernel has no dummy module, removed with the network. Other plugins get
the options as configuration keys ("true"/"false" and numbers typed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from common import cni
from dockerd.network import errors, links
from dockerd.network.drivers.bridge import mac_for
from dockerd.network.model import Endpoint, Network
from dockerd.network.options import NetworkOptions

CNI_VERSION = "1.0.0"
MTU_OPTION = "com.docker.network.driver.mtu"
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
IPVLAN_MODES = ("l2", "l3", "l3s")


def find_plugin(name: str, search: list[str]) -> str | None:
    return cni.find_plugin(name, search)


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    return int(value) if value.isdigit() else value


def plugin_options(driver: str, options: dict[str, str]) -> dict[str, Any]:
    """The network's --opt as the plugin's configuration keys."""
    conf: dict[str, Any] = {}
    for key, value in options.items():
        if key == MTU_OPTION:
            if driver not in (
                "macvlan",
                "ipvlan",
            ):  # dockerd's own macvlan/ipvlan ignore it: the parent's MTU
                conf["mtu"] = int(value)
        elif key == "parent":
            conf["master"] = value
        elif driver == "macvlan" and key == "macvlan_mode" or driver == "ipvlan" and key == "ipvlan_mode":
            conf["mode"] = value
        elif driver == "ipvlan" and key == "ipvlan_flag":
            continue  # only "bridge", the kernel's default, is accepted (check_options)
        elif not key.startswith("com.docker.network."):
            conf[key] = _typed(value)
    return conf


def check_options(driver: str, options: dict[str, str]) -> None:
    """dockerd's refusals for its macvlan/ipvlan options (400, at create)."""
    mtu = options.get(MTU_OPTION)
    if mtu is not None and not mtu.isdigit() and driver not in ("macvlan", "ipvlan"):
        raise errors.InvalidParameter(f"invalid mtu value {mtu!r}")
    if driver == "macvlan":
        mode = options.get("macvlan_mode", "bridge")
        if mode not in MACVLAN_MODES:
            raise errors.InvalidParameter(
                f"requested macvlan mode '{mode}' is not valid, 'bridge' mode is the macvlan driver default"
            )
    if driver == "ipvlan":
        mode = options.get("ipvlan_mode", "l2")
        if mode not in IPVLAN_MODES:
            raise errors.InvalidParameter(
                f"requested ipvlan mode '{mode}' is not valid, 'l2' mode is the ipvlan driver default"
            )
        flag = options.get("ipvlan_flag", "bridge")
        if flag != "bridge":
            # the CNI ipvlan plugin sets no flag: private and vepa cannot be honoured
            raise errors.InvalidParameter(
                f"requested ipvlan flag '{flag}' is not valid, 'bridge' is the ipvlan driver default"
            )


def _link_exists(name: str) -> bool:
    return bool(name) and "/" not in name and os.path.exists(f"/sys/class/net/{name}")


def check_parent(parent: str) -> None:
    """The parent link must exist: dockerd would make a missing `IF.VLAN` (802.1Q) link, which
    this driver does not (the link is the operator's to make); dockerd's words otherwise."""
    if _link_exists(parent):
        return
    base, dot, vlan = parent.partition(".")
    if not dot or not vlan:
        raise errors.InvalidParameter(
            f"invalid subinterface vlan name {parent}, example formatting is eth0.10"
        )
    if not _link_exists(base):
        # (sic: dockerd 20.10's wording)
        raise errors.InvalidParameter(f"-o parent interface does was not found on the host: {base}")
    raise errors.InvalidParameter(
        f"failed to create {parent} vlan link: not supported by the CNI driver, create the link first"
    )


class CniDriver:
    def __init__(self, plugin: str, options: NetworkOptions) -> None:
        self.plugin = plugin
        self.options = options

    def config(self, net: Network, ep: Endpoint) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": CNI_VERSION, "name": net.name, "type": self.plugin}
        conf.update(plugin_options(self.plugin, net.options))
        if net.bridge and self.plugin in ("macvlan", "ipvlan"):
            conf["master"] = net.bridge
        addresses: list[dict[str, Any]] = [{"address": f"{ep.address}/{ep.prefixlen}"}]
        if ep.gateway:
            addresses[0]["gateway"] = ep.gateway
        if ep.address6:
            addresses.append({"address": f"{ep.address6}/{ep.prefixlen6}"})
            if ep.gateway6:
                addresses[-1]["gateway"] = ep.gateway6
        conf["ipam"] = {"type": "static", "addresses": addresses}
        if self.plugin == "macvlan" and ep.mac:
            conf["runtimeConfig"] = {"mac": ep.mac}  # dockerd's 02:42 + the IPv4 address
        return conf

    def _run(self, command: str, conf: dict[str, Any], ep: Endpoint, ns: Path, container_id: str) -> Any:
        who = cni.Invocation(
            container_id, str(ns) if str(ns) != "." else "", ep.ifname, self.options.cni_path
        )
        try:
            return cni.invoke(conf, command, who)
        except cni.PluginError as exc:
            if exc.reason == "missing":
                raise errors.NotFound(f'plugin "{self.plugin}" not found') from None
            raise errors.NetworkError(f"CNI plugin {self.plugin} {command} failed: {exc.message}") from None

    def create(self, net: Network) -> None:
        check_options(self.plugin, net.options)
        if self.plugin not in ("macvlan", "ipvlan"):
            return
        parent = net.options.get("parent", "")
        if parent:
            check_parent(parent)
            return
        # dockerd's dummy parent (dm-/di-<id>): a link of ours, so the network reaches nothing outside
        net.bridge = net.bridge or self.options.user_bridge_name(net.id)
        if links.index_of(net.bridge) is None:
            links.ensure_bridge(net.bridge, "", 0, int(net.options.get(MTU_OPTION) or self.options.mtu))

    def delete(self, net: Network) -> None:
        if self.plugin in ("macvlan", "ipvlan") and net.bridge and not net.options.get("parent"):
            links.delete_link(net.bridge)

    def join(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        if self.plugin == "macvlan":
            ep.mac = ep.mac or mac_for(ep.address)
        result = self._run("ADD", self.config(net, ep), ep, ns, container_id)
        result = result if isinstance(result, dict) else {}
        ep.driver_state = {"result": result}
        for iface in result.get("interfaces") or []:
            if iface.get("name") == ep.ifname and iface.get("sandbox"):
                ep.mac = iface.get("mac", "")
            elif not iface.get("sandbox") and iface.get("name"):
                ep.host_ifname = iface["name"]  # ptp's host end: gone after DEL (the tests check)

    def leave(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        # DEL gets the ADD's result, and must succeed even when the namespace is gone (the spec says so)
        conf = self.config(net, ep)
        previous = ep.driver_state.get("result")
        if previous:
            conf["prevResult"] = previous
        self._run("DEL", conf, ep, ns if ns.exists() else Path(""), container_id)
