"""The backend's settings: every name it gives to a kernel object is one of these.

Several daemons (and the tests' many) share one kernel, so nothing the backend creates has
a fixed name: the default bridge, the prefix of user networks' bridges and of veths, the
iptables chains' prefix (Docker's DOCKER, DOCKER-ISOLATION-STAGE-1... are ours
`<prefix>`, `<prefix>-ISOLATION-STAGE-1`...) and the address pools all come from here. The
engine fills it from dockerd's flags and daemon.json (`bip`, `fixed-cidr`,
`default-address-pools`, `bridge`, `iptables`, `ip-forward`, `icc`, `userland-proxy`,
`mtu`, `dns`...).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

# dockerd's defaults when daemon.json names no pools: 172.17-31.x/16, then 192.168.x/20.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (("172.17.0.0/16", 16), ("172.18.0.0/16", 16), ("172.19.0.0/16", 16),
    ("172.20.0.0/14", 16), ("172.24.0.0/14", 16), ("172.28.0.0/14", 16), ("192.168.0.0/16", 20))  # fmt: skip

IFNAMSIZ = 15  # longest interface name the kernel takes


@dataclass
class NetworkOptions:
    state_dir: Path  # <data-root>/network: networks, sandboxes and IPAM records (persist across restarts)
    run_dir: Path  # <exec-root>/netns: the sandboxes' namespace files (bind mounts), as libnetwork's
    bridge_name: str = "pydocker0"  # the default `bridge` network's Linux bridge (Docker's docker0)
    bridge_prefix: str = "pybr-"  # user networks' bridges: prefix + the network id's start (Docker's br-)
    veth_prefix: str = "veth"  # host ends of containers' veth pairs: prefix + random hex
    chain_prefix: str = "PYDOCKER"  # iptables chains of this daemon
    bip: str | None = None  # the default bridge's address with prefix length ("192.168.5.1/24")
    fixed_cidr: str | None = None  # the default bridge's ip-range
    default_pools: list[tuple[str, int]] = field(default_factory=lambda: list(DEFAULT_POOLS))
    iptables: bool = True
    ip_forward: bool = True  # set net.ipv4.ip_forward=1 when a bridge network is set up, as dockerd
    icc: bool = True  # inter-container traffic on the default bridge
    userland_proxy: bool = True
    proxy_command: list[str] = field(
        default_factory=lambda: [sys.executable, "-I", "-m", "dockerd.network.proxy"]
    )
    mtu: int = 1500
    cni_path: list[str] = field(default_factory=lambda: ["/usr/lib/cni", "/opt/cni/bin"])
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    host_lock: Path = Path(
        "/run/lock/pydocker-network.lock"
    )  # shared by every daemon: pool choice and bridge creation

    def user_bridge_name(self, network_id: str) -> str:
        return (self.bridge_prefix + network_id)[:IFNAMSIZ]
