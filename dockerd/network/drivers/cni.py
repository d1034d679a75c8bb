"""Any CNI plugin on the host as a network driver (Debian's containernetworking-plugins).

`docker network create -d macvlan -o parent=IF ...` makes a network whose driver is the
plugin `macvlan`; joining a sandbox runs the plugin's ADD with the CNI environment
(CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS = the sandbox's namespace file, CNI_IFNAME,
CNI_PATH) and the network's configuration on stdin, as a CRI runtime would for a pod.
Addresses stay ours: the configuration's IPAM is the `static` plugin with the address our
IPAM handed out, so one allocator (persisted, never handing out an address twice) serves
every driver. Driver options become configuration keys (`parent` is Docker's name for
macvlan/ipvlan's `master`; "true"/"false" and numbers are typed).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from dockerd.network import errors
from dockerd.network.model import Endpoint, Network
from dockerd.network.options import NetworkOptions

CNI_VERSION = "1.0.0"


def find_plugin(name: str, search: list[str]) -> str | None:
    if not name or "/" in name or name.startswith("."):
        return None
    for directory in search:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    return int(value) if value.isdigit() else value


class CniDriver:
    def __init__(self, plugin: str, options: NetworkOptions) -> None:
        self.plugin = plugin
        self.options = options

    def config(self, net: Network, ep: Endpoint) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": CNI_VERSION, "name": net.name, "type": self.plugin}
        for key, value in net.options.items():
            conf["master" if key == "parent" else key] = _typed(value)
        address: dict[str, Any] = {"address": f"{ep.address}/{ep.prefixlen}"}
        routes = []
        if ep.gateway and not net.internal:
            address["gateway"] = ep.gateway
            routes.append({"dst": "0.0.0.0/0", "gw": ep.gateway})
        conf["ipam"] = {"type": "static", "addresses": [address], "routes": routes}
        return conf

    def _run(self, command: str, net: Network, ep: Endpoint, ns: Path, container_id: str) -> dict[str, Any]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": str(ns),
            "CNI_IFNAME": ep.ifname,
            "CNI_PATH": ":".join(self.options.cni_path),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        path = find_plugin(self.plugin, self.options.cni_path)
        if path is None:
            raise errors.NotFound(f'plugin "{self.plugin}" not found')
        done = subprocess.run(
            [path],
            input=json.dumps(self.config(net, ep)),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            try:
                detail = json.loads(done.stdout)
                message = detail.get("msg", "") + (f": {detail['details']}" if detail.get("details") else "")
            except ValueError:
                message = (done.stdout + done.stderr).strip()
            raise errors.NetworkError(f"CNI plugin {self.plugin} {command} failed: {message}")
        result: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {}
        return result

    def create(self, net: Network) -> None:
        master = net.options.get("parent") or net.options.get("master")
        if self.plugin in ("macvlan", "ipvlan") and master and not os.path.exists(f"/sys/class/net/{master}"):
            raise errors.InvalidParameter(f"-o parent interface was not found on the host: {master}")

    def delete(self, net: Network) -> None:
        pass

    def join(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        result = self._run("ADD", net, ep, ns, container_id)
        for iface in result.get("interfaces") or []:
            if iface.get("name") == ep.ifname and iface.get("sandbox"):
                ep.mac = iface.get("mac", "")

    def leave(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        # DEL must succeed even when the namespace is gone (the spec says so); ours may be.
        self._run("DEL", net, ep, ns if ns.exists() else Path(""), container_id)
