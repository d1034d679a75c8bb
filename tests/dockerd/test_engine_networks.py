"""Networks end to end through the Docker CLI 28 and docker-py, pydockerd side by side with the
reference dockerd (in a network namespace of its own, with its default bridge, iptables and
userland proxy on, as a stock dockerd): what the containers see must be the same.

Two containers on a user network reach each other by name and alias (the embedded DNS at
127.0.0.11, round-robin over a shared alias, names it does not know forwarded to a DNS server
the test runs inside a container's namespace), networks are isolated from each other, an
internal one has no way out, a published `busybox httpd` answers on 127.0.0.1 and on the host's
address, a taken port is refused in Docker's words, --dns/--add-host/--link write the files as
dockerd writes them, bad input is refused as dockerd refuses it with nothing left behind. After
the removals nothing of pydockerd's (veth, bridge, iptables rule, namespace mount, proxy) remains.
Traffic goes only to loopback and into the namespaces of the test's containers.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from dnslib import QTYPE, RR, A, DNSRecord
from pyroute2 import netns as pr_netns

from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine

# The reference as a stock dockerd: default bridge, iptables, forwarding, masquerade, userland proxy.
REFERENCE_NETWORKING = [
    "--bridge=",
    "--iptables=true",
    "--ip-forward=true",
    "--ip-masq=true",
    "--userland-proxy=true",
]


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    if request.param == "reference":
        with reference_dockerd({}, private_network=True, extra_args=REFERENCE_NETWORKING) as ref:
            yield ref
    else:
        with pydockerd_engine() as pd:
            yield pd


class Run:
    """The engine's CLI, commands run where its published ports are (its namespace), and cleanup."""

    def __init__(self, engine: RefDockerd) -> None:
        self.engine = engine
        self.tag = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.networks: list[str] = []

    def name(self, what: str) -> str:
        self.containers.append(f"pdn-{what}-{self.tag}")
        return self.containers[-1]

    def network(self, what: str, *args: str) -> str:
        name = f"pdn-{what}-{self.tag}"
        self.networks.append(name)
        self.ok("network", "create", *args, name)
        return name

    def ok(self, *args: str) -> str:
        return self.engine.docker_ok(*args, timeout=120)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.engine.docker(*args, timeout=120)

    def host(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """ARGV on the engine's host: the reference's is its own network namespace."""
        prefix = (
            [] if isinstance(self.engine, PyDockerd) else ["nsenter", f"--net=/proc/{self.engine.pid}/ns/net"]
        )
        return subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )

    def inspect(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.ok("inspect", name))[0]
        return data

    def cleanup(self) -> None:
        if self.containers:
            self.run("rm", "-f", *self.containers)
        if self.networks:
            self.run("network", "rm", *self.networks)


@pytest.fixture
def r(engine: RefDockerd) -> Iterator[Run]:
    run = Run(engine)
    yield run
    run.cleanup()
    if isinstance(engine, PyDockerd):
        assert pydockerd_leftovers(engine, run) == []


def pydockerd_leftovers(engine: PyDockerd, run: Run) -> list[str]:
    """What of the test's containers and networks is still in the kernel: namespace mounts,
    veths and bridges beyond the default one, rules naming anything but the default bridge, proxies."""
    found = []
    netns_dir = str(engine.exec_root / "netns")
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if line.split()[4].startswith(netns_dir + "/")]
    tag = _tag(engine)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [line.split(":")[1].strip() for line in links.splitlines()
              if f"pyv{tag}" in line or f"pyb{tag}-" in line]  # fmt: skip
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        found += [
            rule for rule in rules.splitlines() if f"PYD{tag.upper()}" in rule and "--to-destination" in rule
        ]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines() if "dockerd.network.proxy" in line and run.tag in line]
    return found


def _tag(engine: PyDockerd) -> str:
    import hashlib

    return hashlib.sha256(str((engine.exec_root).absolute()).encode()).hexdigest()[:6]


def _fetch(r: Run, url: str) -> str:
    """GET URL from the engine's host, retried while the container's server is still starting."""
    deadline = time.monotonic() + 15
    while True:
        got = r.host("busybox", "wget", "-q", "-O-", url).stdout
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def _sh(r: Run, *args: str) -> str:
    return r.ok("run", "--rm", *args)


# --- user networks: names, aliases, isolation --------------------------------------------------


def test_containers_reach_each_other_by_name_and_alias(r: Run) -> None:
    net = r.network("app", "--subnet", "10.98.0.0/24")
    db1, db2, web = r.name("db1"), r.name("db2"), r.name("web")
    for name in (db1, db2):
        r.ok(
            "run", "-d", "--name", name, "--network", net, "--network-alias", "db", "busybox", "sleep", "300"
        )
    r.ok(
        "run",
        "-d",
        "--name",
        web,
        "--network",
        net,
        "--ip",
        "10.98.0.50",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    )
    addresses = {n: r.inspect(n)["NetworkSettings"]["Networks"][net]["IPAddress"] for n in (db1, db2, web)}
    assert addresses[web] == "10.98.0.50"
    out = _sh(r, "--network", net, "busybox", "sh", "-c",
              f"ping -c1 -W2 {web} >/dev/null && echo name-ok; ping -c1 -W2 {web}.{net} >/dev/null && echo fqdn-ok; "
              f"nc -w3 10.98.0.50 80 </dev/null >/dev/null; echo nc=$?; "
              f"for i in 1 2 3 4 5 6 7 8 9 10 11 12; do nslookup db 127.0.0.11 | awk '/^Address/ {{print $NF}}' | tail -n +2 | head -1; done; "
              "cat /etc/resolv.conf")  # fmt: skip
    lines = out.splitlines()
    assert lines[:3] == ["name-ok", "fqdn-ok", "nc=0"], out
    firsts = set(lines[3:15])
    assert firsts <= {addresses[db1], addresses[db2]} and len(firsts) == 2, (
        f"round-robin over the alias: {out}"
    )
    assert "nameserver 127.0.0.11" in lines and "options ndots:0" in lines
    # inspect: the alias and the short id, the network's view of its containers
    mine = r.inspect(db1)["NetworkSettings"]["Networks"][net]
    assert mine["Aliases"] == ["db", r.inspect(db1)["Id"][:12]] and mine["Gateway"] == "10.98.0.1"
    assert mine["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in mine["IPAddress"].split("."))
    members = json.loads(r.ok("network", "inspect", net))[0]["Containers"]
    assert sorted(m["Name"] for m in members.values()) == sorted([db1, db2, web])
    assert members[r.inspect(web)["Id"]]["IPv4Address"] == "10.98.0.50/24"
    # a renamed container answers to its new name
    renamed = r.name("renamed")
    r.ok("rename", web, renamed)
    assert (
        _sh(r, "--network", net, "busybox", "sh", "-c", f"ping -c1 -W2 {renamed} | head -1")
        == f"PING {renamed} (10.98.0.50): 56 data bytes\n"
    )


def test_networks_are_isolated_and_internal_has_no_way_out(r: Run) -> None:
    a = r.network("iso-a", "--subnet", "10.98.1.0/24")
    b = r.network("iso-b", "--subnet", "10.98.2.0/24")
    inner = r.network("iso-int", "--internal", "--subnet", "10.98.3.0/24")
    target = r.name("target")
    r.ok("run", "-d", "--name", target, "--network", a, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
    ip = r.inspect(target)["NetworkSettings"]["Networks"][a]["IPAddress"]
    probe = f"nc -w2 {ip} 80 </dev/null >/dev/null 2>&1; echo $?"
    assert _sh(r, "--network", a, "busybox", "sh", "-c", probe) == "0\n"
    assert _sh(r, "--network", b, "busybox", "sh", "-c", probe) != "0\n"  # another network: dropped
    # internal: nothing outside its subnet (not even the other network's gateway)
    out = _sh(
        r, "--network", inner, "busybox", "sh", "-c", f"{probe}; nc -w2 10.98.1.1 80 </dev/null; echo gw=$?"
    )
    assert out.splitlines() == ["1", "gw=1"], out


def test_connect_and_disconnect_a_running_container(r: Run) -> None:
    a, b = r.network("cd-a", "--subnet", "10.98.4.0/24"), r.network("cd-b", "--subnet", "10.98.5.0/24")
    c = r.name("cd")
    r.ok("run", "-d", "--name", c, "--network", a, "busybox", "sleep", "300")
    r.ok("network", "connect", "--ip", "10.98.5.7", "--alias", "second", b, c)
    ifaces = r.ok("exec", c, "ip", "-4", "-o", "addr")
    assert "10.98.5.7/24" in ifaces and "eth1" in ifaces
    assert "10.98.5.7" in r.ok("exec", c, "cat", "/etc/hosts")
    assert _sh(r, "--network", b, "busybox", "ping", "-c1", "-W2", "second").count("1 packets received") == 1
    refused = r.run("network", "rm", b)
    assert refused.returncode == 1 and "has active endpoints" in refused.stderr
    r.ok("network", "disconnect", b, c)
    assert "eth1" not in r.ok("exec", c, "ip", "-o", "link")
    again = r.run("network", "disconnect", b, c)
    assert again.returncode == 1 and f"is not connected to network {b}" in again.stderr


# --- the default bridge, modes, files ---------------------------------------------------------


def test_default_bridge_modes_and_files(r: Run) -> None:
    first = r.name("first")
    r.ok("run", "-d", "--name", first, "-h", "one", "busybox", "sleep", "300")
    settings = r.inspect(first)["NetworkSettings"]
    ip, gw = settings["IPAddress"], settings["Gateway"]
    assert (
        settings["Networks"]["bridge"]["IPAddress"] == ip
        and settings["IPPrefixLen"] == 16
        and settings["SandboxKey"]
    )
    out = _sh(r, "--link", f"{first}:db", "--add-host", "gw:host-gateway", "--add-host", "pdn:10.1.2.3", "--dns", "10.98.9.9",
              "--dns-search", "pdn.example", "--dns-option", "ndots:2", "busybox", "sh", "-c",
              "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; ip route | grep default")  # fmt: skip
    hosts, resolv, route = out.split("---\n")
    assert f"{gw}\tgw\n" in hosts and "10.1.2.3\tpdn\n" in hosts
    assert f"\n{ip}\tdb one {first}\n" in hosts, hosts
    assert resolv == "search pdn.example\nnameserver 10.98.9.9\noptions ndots:2\n"
    assert route.startswith(f"default via {gw} dev eth0")
    # none: only lo, up; host: the host's interfaces; container:X: X's namespace and files
    assert (
        _sh(
            r,
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "ip -o link | cut -d: -f2; cat /sys/class/net/lo/operstate",
        )
        == " lo\nunknown\n"
    )
    bridge = r.ok(
        "network", "inspect", "-f", '{{index .Options "com.docker.network.bridge.name"}}', "bridge"
    ).strip()
    assert f": {bridge}:" in r.host("ip", "-o", "link").stdout
    assert f": {bridge}:" in _sh(r, "--network", "host", "busybox", "ip", "-o", "link")
    shared = _sh(
        r, "--network", f"container:{first}", "busybox", "sh", "-c", "ip -4 -o addr show eth0; hostname"
    )
    assert f"inet {ip}/16" in shared and shared.endswith("one\n")
    stats = json.loads(r.engine.docker_ok("stats", "--no-stream", "--format", "{{json .}}", first))
    assert stats["NetIO"] != "0B / 0B"


def test_published_ports(r: Run) -> None:
    web = r.name("web")
    r.ok("run", "-d", "--name", web, "-p", "127.0.0.1::80", "-p", "80", "-p", "127.0.0.1::9000/udp", "--expose", "7000",
         "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")  # fmt: skip
    ports = r.inspect(web)["NetworkSettings"]["Ports"]
    assert ports["7000/tcp"] is None and ports["9000/udp"][0]["HostIp"] == "127.0.0.1"
    loopback = next(p["HostPort"] for p in ports["80/tcp"] if p["HostIp"] == "127.0.0.1")
    anywhere = next(p["HostPort"] for p in ports["80/tcp"] if p["HostIp"] == "0.0.0.0")
    # (dockerd 20.10 also lists [::] for 0.0.0.0; pydockerd's proxies listen on IPv4 only)
    listed = [line for line in r.ok("port", web, "80/tcp").splitlines() if not line.startswith("[::]")]
    assert listed == [f"0.0.0.0:{anywhere}", f"127.0.0.1:{loopback}"]
    hostname = r.inspect(web)["Config"]["Hostname"]
    assert _fetch(r, f"http://127.0.0.1:{loopback}/hostname") == f"{hostname}\n"
    # through DNAT: the host's own address (the reference's namespace has only its bridge's gateway)
    local = r.inspect(web)["NetworkSettings"]["Gateway"]
    assert _fetch(r, f"http://{local}:{anywhere}/hostname") == f"{hostname}\n"
    taken = r.run(
        "run", "--rm", "--name", r.name("taken"), "-p", f"127.0.0.1:{loopback}:80", "busybox", "true"
    )
    assert taken.returncode == 125
    assert f"Bind for 127.0.0.1:{loopback} failed: port is already allocated" in taken.stderr
    assert r.run("inspect", r.containers[-1]).returncode == 1  # --rm: the failed container is gone


# --- DNS forwarding to a server inside a test container's namespace ------------------------------


@pytest.fixture
def upstream(r: Run) -> Iterator[str]:
    """A DNS server (dnslib) on port 53 inside a container's network namespace: external.test is 10.0.0.99."""
    net = r.network("fwd", "--subnet", "10.98.6.0/24")  # (dockerd forwards from the container's namespace)
    holder = r.name("dns")
    r.ok("run", "-d", "--name", holder, "--network", net, "busybox", "sleep", "300")
    info = r.inspect(holder)
    sock = pr_netns.create_socket(
        f"/proc/{info['State']['Pid']}/ns/net", socket.AF_INET, socket.SOCK_DGRAM, flags=0
    )
    sock.bind(("0.0.0.0", 53))
    sock.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            query = DNSRecord.parse(data)
            reply = query.reply()
            if str(query.q.qname) == "external.test.":
                reply.add_answer(RR("external.test.", QTYPE.A, rdata=A("10.0.0.99"), ttl=60))
            sock.sendto(reply.pack(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield str(info["NetworkSettings"]["Networks"][net]["IPAddress"])
    done.set()
    thread.join()
    sock.close()


def test_unknown_names_are_forwarded(r: Run, upstream: str) -> None:
    net = r.networks[-1]
    out = _sh(r, "--network", net, "--dns", upstream, "busybox", "sh", "-c",
              "nslookup external.test 127.0.0.11 | awk '/^Address/ {print $NF}' | tail -1; cat /etc/resolv.conf")  # fmt: skip
    assert out.splitlines()[0] == "10.0.0.99", out
    assert upstream not in out  # the container's file names only the embedded server


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_is_refused_and_leaves_nothing(r: Run) -> None:
    net = r.network("bad", "--subnet", "10.98.7.0/24")
    cases = [
        (
            ["network", "create", "--subnet", "10.98.7.128/25", f"pdn-overlap-{r.tag}"],
            "Pool overlaps with other one on this address space",
        ),
        (["network", "create", net], f"network with name {net} already exists"),
        (["network", "rm", f"pdn-none-{r.tag}"], f"network pdn-none-{r.tag} not found"),
        (
            ["run", "--rm", "--network", f"pdn-none-{r.tag}", "busybox", "true"],
            f"network pdn-none-{r.tag} not found",
        ),
        (
            ["run", "--rm", "--network", "bridge", "--ip", "172.17.0.99", "busybox", "true"],
            "user specified IP address is supported on user defined networks only",
        ),
        (["run", "--rm", "--network", "container:pdn-nothing", "busybox", "true"], "pdn-nothing"),
        (["network", "rm", "bridge"], "bridge is a pre-defined network and cannot be removed"),
    ]
    for args, message in cases:
        got = r.run(*args)
        assert got.returncode != 0 and message in got.stderr, (args, got.stderr)
    # an address outside the subnet fails the start; nothing of it stays
    bad = r.run(
        "run", "--rm", "--name", r.name("outside"), "--network", net, "--ip", "10.98.8.5", "busybox", "true"
    )
    assert bad.returncode == 125, bad.stderr
    assert json.loads(r.ok("network", "inspect", net))[0]["Containers"] == {}


# --- docker-py: networks, ports, events ------------------------------------------------------------


def test_docker_py_networks_ports_and_events(r: Run) -> None:
    client = docker.DockerClient(base_url=f"unix://{r.engine.socket}", version="1.41", timeout=120)
    since = int(time.time()) - 1
    ipam = docker.types.IPAMConfig(
        pool_configs=[docker.types.IPAMPool(subnet="10.98.10.0/24", gateway="10.98.10.254")]
    )
    name = f"pdn-py-{r.tag}"
    r.networks.append(name)
    net = client.networks.create(name, driver="bridge", ipam=ipam, labels={"pdn": "1"})
    assert net.attrs["IPAM"]["Config"] == [{"Subnet": "10.98.10.0/24", "Gateway": "10.98.10.254"}]
    assert [n.name for n in client.networks.list(filters={"label": "pdn=1"})] == [name]
    c = client.containers.run("busybox", ["httpd", "-f", "-p", "80", "-h", "/etc"], name=r.name("py"), detach=True,
                              network=name, ports={"80/tcp": ("127.0.0.1", None)})  # fmt: skip
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"][name]["IPAddress"] == "10.98.10.1"
    host_port = c.ports["80/tcp"][0]["HostPort"]
    assert _fetch(r, f"http://127.0.0.1:{host_port}/hostname").strip() == c.attrs["Config"]["Hostname"]
    client.networks.get("bridge").connect(c)
    c.reload()
    assert sorted(c.attrs["NetworkSettings"]["Networks"]) == sorted(["bridge", name])
    client.networks.get("bridge").disconnect(c)
    c.remove(force=True)
    net.remove()
    with pytest.raises(docker.errors.NotFound, match="not found"):
        client.networks.get(name)
    events = client.events(since=since, until=int(time.time()) + 1, decode=True, filters={"type": "network"})
    seen = [(e["Action"], e["Actor"]["Attributes"].get("name")) for e in events]
    assert ("create", name) in seen and ("connect", name) in seen and ("connect", "bridge") in seen
    assert ("disconnect", "bridge") in seen and ("disconnect", name) in seen and ("destroy", name) in seen
    assert seen.index(("create", name)) < seen.index(("connect", name)) < seen.index(("destroy", name))
    client.close()
