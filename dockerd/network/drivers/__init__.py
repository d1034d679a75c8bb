"""Network drivers: what makes a network's kernel objects and plugs a sandbox into it.

`bridge` (a Linux bridge, veth pairs, iptables), `null` (the `none` network: nothing but
`lo`), `host` (the host's own namespace: nothing to do) and `cni` (any CNI plugin on the
host, Debian's containernetworking-plugins: macvlan, ipvlan, ptp...). Every driver has the
`Driver` face, so the engine, and a future CRI endpoint, go through one code path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from dockerd.network.model import Endpoint, Network


class Driver(Protocol):
    def create(self, net: Network) -> None:
        """Make the network's kernel objects (or find them after a restart)."""

    def delete(self, net: Network) -> None:
        """Remove them; the network has no endpoint left."""

    def join(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        """Give the sandbox at NS the interface EP.ifname with EP's MAC and address (set by IPAM)."""

    def leave(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        """Remove the sandbox's interface of EP (also when the namespace is already gone)."""


class NoOp:
    """`host` and `null`: a network with neither kernel objects nor interfaces."""

    def create(self, net: Network) -> None:
        pass

    def delete(self, net: Network) -> None:
        pass

    def join(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        pass

    def leave(self, net: Network, ep: Endpoint, ns: Path, container_id: str) -> None:
        pass
