"""CNI: the pod's network through the standard plugins, as containerd's go-cni drives libcni.

The network is the first configuration (by file name) in the conf dir: a `.conflist`, or a single
`.conf`/`.json` plugin wrapped as one. At RunPodSandbox every plugin of the list is ADDed in order
(each gets the previous one's result as `prevResult`; `portMappings` reach plugins that declare the
capability, i.e. `portmap`), after the loopback plugin for `lo`; at StopPodSandbox they are DELeted
in reverse order with the ADD's result, which is kept in the plugin's state directory so a
restarted daemon can still tear the network down.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common import atomicfile, cni

IFNAME = "eth0"
LOOPBACK_CONF = {"cniVersion": "0.3.1", "name": "cni-loopback", "type": "loopback"}


class CNIError(Exception):
    pass


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str  # tcp, udp, sctp
    host_ip: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            out["hostIP"] = self.host_ip
        return out


@dataclass(frozen=True)
class PodRef:
    sandbox_id: str
    netns: str
    name: str
    namespace: str
    uid: str
    ports: Sequence[PortMapping] = ()

    def cni_args(self) -> str:
        return ";".join(
            [
                "IgnoreUnknown=1",
                f"K8S_POD_NAMESPACE={self.namespace}",
                f"K8S_POD_NAME={self.name}",
                f"K8S_POD_INFRA_CONTAINER_ID={self.sandbox_id}",
                f"K8S_POD_UID={self.uid}",
            ]
        )


@dataclass(frozen=True)
class NetworkResult:
    ips: list[str]

    @property
    def primary(self) -> str:
        return self.ips[0] if self.ips else ""


def load_network(conf_dir: str) -> dict[str, Any]:
    """The network list to use, as libcni's LoadConfList of the first file found."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conflist", ".conf", ".json")))
    except FileNotFoundError:
        names = []
    for name in names:
        path = os.path.join(conf_dir, name)
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            raise CNIError(f"failed to load cni config {path}: {exc}") from None
        if not isinstance(doc, dict):
            continue
        if name.endswith(".conflist"):
            if not isinstance(doc.get("plugins"), list) or not doc["plugins"]:
                raise CNIError(f"cni config list {path} has no plugins")
            return doc
        if "type" in doc:
            return {
                "cniVersion": doc.get("cniVersion", "0.3.1"),
                "name": doc.get("name", ""),
                "plugins": [doc],
            }
    raise CNIError(f"no network config found in {conf_dir}: cni plugin not initialized")


def _plugin_info(plugin: dict[str, Any]) -> dict[str, Any]:
    """One plugin as go-cni shows it: the fields libcni's NetConf decodes, and its source text."""
    network: dict[str, Any] = {"type": plugin.get("type", "")}
    if plugin.get("capabilities"):
        network["capabilities"] = plugin["capabilities"]
    ipam = plugin.get("ipam")
    network["ipam"] = {"type": ipam["type"]} if isinstance(ipam, dict) and ipam.get("type") else {}
    network["dns"] = plugin.get("dns") if isinstance(plugin.get("dns"), dict) else {}
    source = {k: v for k, v in plugin.items() if k not in ("cniVersion", "name")}
    return {"Network": network, "Source": json.dumps(source, sort_keys=True, separators=(",", ":"))}


def _network_info(conf: dict[str, Any], ifname: str) -> dict[str, Any]:
    return {
        "Config": {
            "Name": conf.get("name", ""),
            "CNIVersion": conf.get("cniVersion", ""),
            "Plugins": [_plugin_info(p) for p in conf["plugins"] if isinstance(p, dict)],
            "Source": json.dumps(conf),
        },
        "IFName": ifname,
    }


def config_info(conf_dir: str, bin_dir: str, max_conf_num: int) -> dict[str, Any]:
    """The `cniconfig` of a verbose Status, in go-cni's shape (what containerd shows): the
    loopback network, then the configured one on eth0. Raises CNIError when none loads."""
    loopback = {
        "cniVersion": LOOPBACK_CONF["cniVersion"],
        "name": LOOPBACK_CONF["name"],
        "plugins": [{"type": "loopback"}],
    }
    networks = [_network_info(loopback, "lo"), _network_info(load_network(conf_dir), IFNAME)]
    return {
        "PluginDirs": [bin_dir],
        "PluginConfDir": conf_dir,
        "PluginMaxConfNum": max_conf_num,
        "Prefix": "eth",
        "Networks": networks,
    }


def go_cni_result(results: Sequence[Any]) -> dict[str, Any]:
    """CNI results (loopback's, then the network's) merged as go-cni's Result, which containerd
    shows as `cniResult` in a verbose PodSandboxStatus: interfaces by name with their addresses
    (no prefix length) and gateways, one DNS entry per network, the routes of all."""
    interfaces: dict[str, dict[str, Any]] = {}
    dns: list[Any] = []
    routes: list[Any] = []
    for result in results:
        if not isinstance(result, dict):
            continue
        ifaces = [i for i in result.get("interfaces") or [] if isinstance(i, dict)]
        for iface in ifaces:
            interfaces[str(iface.get("name", ""))] = {
                "IPConfigs": None,
                "Mac": iface.get("mac", ""),
                "Sandbox": iface.get("sandbox", ""),
            }
        for ip in result.get("ips") or []:
            index = ip.get("interface") if isinstance(ip, dict) else None
            if not isinstance(index, int) or not 0 <= index < len(ifaces):
                continue
            entry = interfaces[str(ifaces[index].get("name", ""))]
            config = {"IP": str(ip.get("address", "")).split("/", 1)[0], "Gateway": ip.get("gateway", "")}
            entry["IPConfigs"] = [*(entry["IPConfigs"] or []), config]
        dns.append(result.get("dns") or {})
        routes.extend(result.get("routes") or [])
    return {"Interfaces": interfaces, "DNS": dns, "Routes": routes}


class CNI:
    def __init__(self, conf_dir: str, bin_dir: str, cache_dir: str) -> None:
        self.conf_dir = conf_dir
        self.bin_dir = bin_dir
        self.cache_dir = cache_dir

    def status(self) -> str:
        """ "" when ready, else why not (the NetworkReady condition's message)."""
        try:
            net = load_network(self.conf_dir)
        except CNIError as exc:
            return str(exc)
        for plugin in net["plugins"]:
            kind = plugin.get("type", "") if isinstance(plugin, dict) else ""
            if not os.access(os.path.join(self.bin_dir, str(kind)), os.X_OK):
                return f"cni plugin {kind!r} not found in {self.bin_dir}"
        return ""

    # --- ADD / DEL ---------------------------------------------------------------------------

    def setup(self, pod: PodRef) -> NetworkResult:
        net = load_network(self.conf_dir)
        loopback = self._exec(LOOPBACK_CONF, "ADD", pod, "lo")
        prev: Any = None
        done: list[dict[str, Any]] = []
        try:
            for plugin in net["plugins"]:
                conf = self._plugin_conf(net, plugin, pod, prev)
                prev = self._exec(conf, "ADD", pod, IFNAME)
                done.append(plugin)
        except CNIError:
            self._delete(net, done, pod, prev)
            self._exec(LOOPBACK_CONF, "DEL", pod, "lo", check=False)
            raise
        self._save(pod, net, prev, loopback)
        return NetworkResult(_ips(prev))

    def result_info(self, sandbox_id: str) -> dict[str, Any] | None:
        """The pod's network as containerd's verbose PodSandboxStatus shows it (None: no network)."""
        cached = self._load(sandbox_id)
        if cached is None:
            return None
        return go_cni_result([cached.get("loopback"), cached.get("result")])

    def teardown(self, pod: PodRef) -> None:
        """DEL with what ADD left (idempotent: a missing cache means nothing to tear down)."""
        cached = self._load(pod.sandbox_id)
        if cached is None:
            return
        net, result, ports = cached["network"], cached.get("result"), cached.get("ports") or []
        pod = PodRef(
            pod.sandbox_id, pod.netns, pod.name, pod.namespace, pod.uid, [PortMapping(**p) for p in ports]
        )
        self._delete(net, list(net["plugins"]), pod, result)
        if pod.netns and os.path.exists(pod.netns):
            self._exec(LOOPBACK_CONF, "DEL", pod, "lo", check=False)
        try:
            os.unlink(self._cache_path(pod.sandbox_id))
        except FileNotFoundError:
            pass

    def _delete(self, net: dict[str, Any], plugins: list[dict[str, Any]], pod: PodRef, prev: Any) -> None:
        errors = []
        for plugin in reversed(plugins):
            conf = self._plugin_conf(net, plugin, pod, prev)
            try:
                self._exec(conf, "DEL", pod, IFNAME)
            except CNIError as exc:
                errors.append(str(exc))
        if errors:
            raise CNIError("; ".join(errors))

    def _plugin_conf(
        self, net: Mapping[str, Any], plugin: Mapping[str, Any], pod: PodRef, prev: Any
    ) -> dict[str, Any]:
        conf = dict(plugin)
        conf["name"] = net.get("name", "")
        conf["cniVersion"] = net.get("cniVersion", "0.3.1")
        if prev is not None:
            conf["prevResult"] = prev
        caps = plugin.get("capabilities") or {}
        runtime: dict[str, Any] = {}
        if isinstance(caps, dict) and caps.get("portMappings") and pod.ports:
            runtime["portMappings"] = [p.to_json() for p in pod.ports]
        if runtime:
            conf["runtimeConfig"] = runtime
        return conf

    def _exec(
        self, conf: Mapping[str, Any], command: str, pod: PodRef, ifname: str, check: bool = True
    ) -> Any:
        who = cni.Invocation(pod.sandbox_id, pod.netns, ifname, [self.bin_dir], pod.cni_args())
        try:
            result = cni.invoke(conf, command, who)
        except cni.PluginError as exc:
            if not check:
                return None
            if exc.reason != "failed":
                raise CNIError(exc.message) from None
            raise CNIError(
                f"plugin type={exc.plugin!r} name={conf.get('name')!r} failed ({command.lower()}): {exc.message}"
            ) from None
        return result if command == "ADD" else None

    # --- result cache ------------------------------------------------------------------------

    def _cache_path(self, sandbox_id: str) -> str:
        return os.path.join(self.cache_dir, f"{sandbox_id}.json")

    def _save(self, pod: PodRef, net: dict[str, Any], result: Any, loopback: Any = None) -> None:
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        path = self._cache_path(pod.sandbox_id)
        data = {
            "network": net,
            "result": result,
            "loopback": loopback,
            "ports": [p.__dict__ for p in pod.ports],
            "netns": pod.netns,
        }
        atomicfile.write_text(path, json.dumps(data))

    def _load(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            with open(self._cache_path(sandbox_id)) as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def result(self, sandbox_id: str) -> NetworkResult:
        cached = self._load(sandbox_id)
        return NetworkResult(_ips(cached.get("result")) if cached else [])


def _ips(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    out = []
    for ip in result.get("ips") or []:
        address = ip.get("address", "") if isinstance(ip, dict) else ""
        if address:
            out.append(address.split("/", 1)[0])
    return out
