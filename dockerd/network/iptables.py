"""Packet filtering and NAT through the `iptables` commands, in chains of this daemon only.

The commands rather than netlink: they are what dockerd runs, they take the xtables lock
(`-w`) every other user of the host's tables honours, and they work on whichever back end
(nf_tables or legacy) the host has chosen. Chains are named from a per-daemon prefix P
(Docker's fixed DOCKER... names would collide between daemons on one kernel):

    filter P-FORWARD              FORWARD jumps here for each of our bridges (-i BR / -o BR)
    filter P-ISOLATION-STAGE-1/2  traffic from one of our networks to another is dropped
    filter P                      published ports: accept new connections to container:port
    nat    P                      published ports: DNAT (PREROUTING/OUTPUT jump here for
                                  local destinations, only while a port is published)
    nat    P-POSTROUTING          POSTROUTING jumps here for each network's subnet: MASQUERADE

The chains are declarative: `sync` rewrites all of them from the list of networks and
ports in one `iptables-restore --noflush` (atomic, and a declared chain is flushed first),
which also inserts the missing jumps from the built-in chains (each restricted to our bridge or
subnet) and deletes the stale ones, found in one `iptables-save` beforehand. Two commands per
sync, however many networks: it runs at every network create and remove and every port publish
(a `docker-compose down` removes a network, its containers unpublish ports). So a restarted
daemon converges on what its records say, and `teardown` (a sync of nothing, then the chains
dropped) leaves no rule behind.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from dockerd.network import errors
from dockerd.network.netns import command

Rule = list[str]


@dataclass
class Iptables:
    """The host's tables, or a sandbox namespace's (NS) for the DNS redirection."""

    ns: Path | None = None

    def run(
        self,
        *args: str,
        check: bool = True,
        binary: str = "iptables",
        stdin: str | None = None,
        wait: bool = True,
    ) -> str:
        argv = [binary, "-w", *args] if wait else [binary, *args]
        done = subprocess.run(command(self.ns, argv), capture_output=True, text=True, input=stdin)
        if check and done.returncode != 0:
            raise errors.NetworkError(f"iptables failed: {binary} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout if done.returncode == 0 else ""

    def has(self, table: str, chain: str, rule: Rule) -> bool:
        return subprocess.run(command(self.ns, ["iptables", "-w", "-t", table, "-C", chain, *rule]),
                              capture_output=True).returncode == 0  # fmt: skip

    def rules(self, table: str, chain: str) -> list[str]:
        return self.run("-t", table, "-S", chain, check=False).splitlines()

    def saved(self) -> dict[str, list[str]]:
        """Every table's rules as `iptables-save` prints them (table -> its `-A` lines): one
        command for what `-S` would take one per chain (iptables-save takes no lock, nor needs
        one: the kernel hands it a consistent copy)."""
        tables: dict[str, list[str]] = {}
        current: list[str] = []
        for line in self.run(binary="iptables-save", check=False, wait=False).splitlines():
            if line.startswith("*"):
                current = tables.setdefault(line[1:].strip(), [])
            elif line.startswith("-A "):
                current.append(line)
        return tables

    def restore(self, text: str) -> None:
        self.run("--noflush", binary="iptables-restore", stdin=text)

    def insert(self, table: str, chain: str, rule: Rule) -> None:
        if not self.has(table, chain, rule):
            self.run("-t", table, "-I", chain, "1", *rule)

    def delete(self, table: str, chain: str, rule: Rule) -> None:
        while self.has(table, chain, rule):
            self.run("-t", table, "-D", chain, *rule)

    def drop_chain(self, table: str, chain: str) -> None:
        if self.run("-t", table, "-S", chain, check=False):
            self.run("-t", table, "-F", chain)
            self.run("-t", table, "-X", chain)


@dataclass
class BridgeRules:
    """What one bridge network needs: its bridge, subnet, and whether it is internal / has ICC."""

    bridge: str
    subnet: str
    internal: bool = False
    icc: bool = True


@dataclass
class PortRule:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


class Firewall:
    def __init__(self, prefix: str, ipt: Iptables | None = None) -> None:
        self.ipt = ipt or Iptables()
        self.p = prefix
        self.forward = f"{prefix}-FORWARD"
        self.stage1 = f"{prefix}-ISOLATION-STAGE-1"
        self.stage2 = f"{prefix}-ISOLATION-STAGE-2"
        self.postrouting = f"{prefix}-POSTROUTING"

    def chains(self) -> dict[str, list[str]]:
        return {"filter": [self.forward, self.stage1, self.stage2, self.p], "nat": [self.p, self.postrouting]}

    # the chains' contents --------------------------------------------------------------------

    def _filter(self, nets: list[BridgeRules], ports: list[PortRule]) -> list[str]:
        fwd, s1, s2, p = self.forward, self.stage1, self.stage2, self.p
        # Order by category: for any packet, the rules naming its bridges are met in this order.
        rules = [
            f"-A {fwd} -o {n.bridge} -m conntrack --ctstate DNAT -j {p}" for n in nets
        ]  # published ports, from anywhere
        rules.append(f"-A {fwd} -j {s1}")
        rules += [
            f"-A {fwd} -o {n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT" for n in nets
        ]
        rules += [f"-A {fwd} -i {n.bridge} ! -o {n.bridge} -j ACCEPT" for n in nets if not n.internal]
        rules += [f"-A {fwd} -i {n.bridge} -o {n.bridge} -j {'ACCEPT' if n.icc else 'DROP'}" for n in nets]
        # Nothing else enters or leaves our bridges (the host's FORWARD policy is not ours to set).
        rules += [f"-A {fwd} -o {n.bridge} -j DROP" for n in nets] + [
            f"-A {fwd} -i {n.bridge} -j DROP" for n in nets
        ]
        for n in nets:
            if n.internal:
                rules += [
                    f"-A {s1} ! -s {n.subnet} -o {n.bridge} -j DROP",
                    f"-A {s1} -i {n.bridge} ! -d {n.subnet} -j DROP",
                ]
            else:
                rules.append(f"-A {s1} -i {n.bridge} ! -o {n.bridge} -j {s2}")
        rules += [f"-A {s2} -o {n.bridge} -j DROP" for n in nets]
        for r in ports:
            rules.append(f"-A {p} -d {r.container_ip}/32 ! -i {r.bridge} -o {r.bridge} -p {r.proto} -m {r.proto} "
                         f"--dport {r.container_port} -j ACCEPT")  # fmt: skip
        return rules

    def _nat(self, nets: list[BridgeRules], ports: list[PortRule]) -> list[str]:
        rules = [f"-A {self.p} -i {n.bridge} -j RETURN" for n in nets if not n.internal]
        for r in ports:
            dst = "" if r.host_ip in ("", "0.0.0.0") else f"-d {r.host_ip}/32 "
            rules.append(f"-A {self.p} {dst}! -i {r.bridge} -p {r.proto} -m {r.proto} --dport {r.host_port} "
                         f"-j DNAT --to-destination {r.container_ip}:{r.container_port}")  # fmt: skip
        rules += [
            f"-A {self.postrouting} -s {n.subnet} ! -o {n.bridge} -j MASQUERADE"
            for n in nets
            if not n.internal
        ]
        return rules

    def _jumps(self, nets: list[BridgeRules], ports: list[PortRule]) -> list[tuple[str, str, Rule]]:
        jumps: list[tuple[str, str, Rule]] = []
        for n in nets:
            jumps += [("filter", "FORWARD", ["-i", n.bridge, "-j", self.forward]),
                      ("filter", "FORWARD", ["-o", n.bridge, "-j", self.forward])]  # fmt: skip
            if not n.internal:
                jumps.append(("nat", "POSTROUTING", ["-s", n.subnet, "-j", self.postrouting]))
        if ports:
            jumps += [("nat", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL", "-j", self.p]),
                      ("nat", "OUTPUT", ["!", "-d", "127.0.0.0/8", "-m", "addrtype", "--dst-type", "LOCAL", "-j", self.p])]  # fmt: skip
        return jumps

    # applying ------------------------------------------------------------------------------

    def sync(self, nets: list[BridgeRules], ports: list[PortRule]) -> None:
        """Make our chains and jumps say exactly NETS and PORTS, in one atomic restore."""
        wanted = self._jumps(nets, ports)
        present = self._our_jumps()
        text = ""
        for table, rules in (("filter", self._filter(nets, ports)), ("nat", self._nat(nets, ports))):
            text += f"*{table}\n" + "".join(f":{c} - [0:0]\n" for c in self.chains()[table])
            text += "".join(r + "\n" for r in rules)
            # each missing jump inserted first in its chain, in order (the last one ends up on top,
            # as one `-I CHAIN 1` after the other did); every copy of a stale one deleted
            text += "".join(
                f"-I {chain} 1 {' '.join(rule)}\n"
                for t, chain, rule in wanted
                if t == table and (t, chain, rule) not in present
            )
            text += "".join(
                f"-D {chain} {' '.join(rule)}\n"
                for t, chain, rule in present
                if t == table and (t, chain, rule) not in wanted
            )
            text += "COMMIT\n"
        self.ipt.restore(text)

    def _our_jumps(self) -> list[tuple[str, str, Rule]]:
        """The jumps to our chains from the built-in ones, one entry per copy."""
        found = []
        saved = self.ipt.saved()
        for table, chain in (
            ("filter", "FORWARD"),
            ("nat", "POSTROUTING"),
            ("nat", "PREROUTING"),
            ("nat", "OUTPUT"),
        ):
            for line in saved.get(table, []):
                words = line.split()
                if words[:2] == ["-A", chain] and words[-2] == "-j" and words[-1] in self.chains()[table]:
                    found.append((table, chain, words[2:]))
        return found

    def teardown(self) -> None:
        self.sync([], [])
        for table, chains in self.chains().items():
            for chain in chains:
                self.ipt.run("-t", table, "-F", chain, check=False)
            for chain in chains:
                self.ipt.drop_chain(table, chain)

    def leftovers(self) -> list[str]:
        """Every chain of ours, or rule naming one, still in the host's tables."""
        found = []
        for table in ("filter", "nat"):
            for line in self.ipt.run("-t", table, "-S", check=False).splitlines():
                if any(word == self.p or word.startswith(self.p + "-") for word in line.split()):
                    found.append(f"{table}: {line}")
        return found
