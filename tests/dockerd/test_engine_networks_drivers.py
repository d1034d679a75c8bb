"""Network drivers beyond the bridge, IPv6, legacy link variables and DNS forwarding, through the
Docker CLI 28 and docker-py, pydockerd side by side with the reference dockerd 20.10.

- macvlan and ipvlan networks: dockerd's own drivers, pydockerd's through Debian's CNI plugins
  (common/cni.py, the executor the CRI plugin runs pods' networks with). The parent is a bridge
  link the test makes with a unique name where the engine runs (the reference's own network
  namespace; this kernel has no dummy module), never a host interface. Two containers reach each
  other by name; inspect shows what dockerd shows (the 02:42 MAC of the address included).
- ptp (no dockerd driver: the reference answers `plugin "ptp" not found`): pydockerd's runs the
  plugin, whose host-side veth is gone after the container.
- IPv6 on a user network: GlobalIPv6Address/IPv6Gateway, addresses in order from the subnet's
  first (the gateway's skipped), --ip6, AAAA answers from the embedded DNS, ping6 by name.
- `--link db:alias` variables (ALIAS_PORT..., _NAME, _ENV_...) as dockerd sets them, in run and exec.
- The embedded DNS forwards names it does not own to `--dns` servers from the daemon's namespace
  (as Docker 26 does for loopback servers): a test server on a loopback address answers a
  container on pydockerd; dockerd 20.10 forwards from the container's namespace, where nothing does.
- Bad input for each: dockerd's words (its 500s for bad input are 400s here), nothing created.
Traffic goes only to loopback and into the namespaces of the test's containers.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator

import docker
import pytest
from dnslib import QTYPE, RR, A, DNSRecord
from pyroute2 import netns as pr_netns

from tests.dockerd.test_engine_networks import REFERENCE_NETWORKING, Run, _sh, pydockerd_leftovers
from tests.dockerd_ref import RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    if request.param == "reference":
        with reference_dockerd({}, private_network=True, extra_args=REFERENCE_NETWORKING) as ref:
            yield ref
    else:
        with pydockerd_engine() as pd:
            yield pd


@pytest.fixture
def r(engine: RefDockerd) -> Iterator[Run]:
    run = Run(engine)
    yield run
    run.cleanup()
    if isinstance(engine, PyDockerd):
        assert pydockerd_leftovers(engine, run) == []


@pytest.fixture
def parent(r: Run) -> Iterator[str]:
    """A veth link of the test's own (unique names) where the engine runs: the macvlan/ipvlan parent
    (ipvlan takes no bridge, and this kernel has no dummy links)."""
    name = f"pdp{secrets.token_hex(4)}"
    assert r.host("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p").returncode == 0
    r.host("ip", "link", "set", name, "up")
    r.host("ip", "link", "set", f"{name}p", "up")  # (a veth has carrier with both ends up)
    yield name
    r.cleanup()  # the networks on it first
    r.containers, r.networks = [], []
    r.host("ip", "link", "del", name)


def _mac(address: str) -> str:
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))


def _fails(r: Run, args: list[str], message: str) -> None:
    got = r.run(*args)
    assert got.returncode != 0 and message in got.stderr, (args, got.stderr)


# --- macvlan / ipvlan ---------------------------------------------------------------------------


def _two_reach_each_other(r: Run, net: str, subnet_prefix: str) -> tuple[str, str]:
    a, b = r.name("a"), r.name("b")
    for name in (a, b):
        r.ok("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300")
    out = _sh(r, "--network", net, "busybox", "sh", "-c",
              f"ping -c1 -W2 {a} >/dev/null && echo a-ok; ping -c1 -W2 {b} >/dev/null && echo b-ok; cat /etc/resolv.conf")  # fmt: skip
    assert out.splitlines()[:2] == ["a-ok", "b-ok"], out
    assert "nameserver 127.0.0.11" in out
    assert r.ok("exec", a, "ping", "-c1", "-W2", b).count("1 packets received") == 1
    mine = r.inspect(a)["NetworkSettings"]["Networks"][net]
    assert mine["IPAddress"] == f"{subnet_prefix}.2" and mine["IPPrefixLen"] == 24
    assert mine["Gateway"] == f"{subnet_prefix}.1" and mine["Aliases"] == [r.inspect(a)["Id"][:12]]
    members = json.loads(r.ok("network", "inspect", net))[0]["Containers"]
    assert sorted(m["Name"] for m in members.values()) == sorted([a, b])
    assert members[r.inspect(b)["Id"]]["IPv4Address"] == f"{subnet_prefix}.3/24"
    return a, b


def test_macvlan_and_ipvlan_networks(r: Run, parent: str) -> None:
    mv = r.network("mv", "-d", "macvlan", "-o", f"parent={parent}", "--subnet", "10.97.1.0/24",
                   "--ipv6", "--subnet", "fd00:97:1::/64")  # fmt: skip
    view = json.loads(r.ok("network", "inspect", mv))[0]
    assert view["Driver"] == "macvlan" and view["Options"] == {"parent": parent}
    assert view["IPAM"]["Config"] == [{"Subnet": "10.97.1.0/24"}, {"Subnet": "fd00:97:1::/64"}]
    a, b = _two_reach_each_other(r, mv, "10.97.1")
    # dockerd's MAC for the address, on the macvlan link too; IPv6 as on a bridge
    settings = r.inspect(a)["NetworkSettings"]["Networks"][mv]
    assert settings["MacAddress"] == _mac("10.97.1.2")
    assert (settings["GlobalIPv6Address"], settings["IPv6Gateway"]) == ("fd00:97:1::2", "fd00:97:1::1")
    assert r.ok("exec", a, "ping6", "-c1", "-W2", "fd00:97:1::3").count("1 packets received") == 1
    # the default bridge sorts first by name, but has no IPv6 gateway: the default route stays here
    r.ok("network", "connect", "bridge", a)
    assert r.ok("exec", a, "ip", "route").splitlines()[0] == "default via 10.97.1.1 dev eth0 "
    r.ok("network", "disconnect", "bridge", a)
    assert r.ok("exec", a, "cat", "/sys/class/net/eth0/address").strip() == _mac("10.97.1.2")
    # private mode: siblings do not reach each other; the generic MTU option is ignored (the parent's)
    private = r.network("mvp", "-d", "macvlan", "-o", f"parent={parent}p", "-o", "macvlan_mode=private",
                        "-o", "com.docker.network.driver.mtu=1400", "--subnet", "10.97.13.0/24")  # fmt: skip
    lone = r.name("lone")
    r.ok("run", "-d", "--name", lone, "--network", private, "busybox", "sleep", "300")
    out = _sh(
        r,
        "--network",
        private,
        "busybox",
        "sh",
        "-c",
        f"cat /sys/class/net/eth0/mtu; ping -c1 -W1 {lone} >/dev/null; echo $?",
    )
    assert out == "1500\n1\n", out
    r.ok("rm", "-f", lone)
    # one macvlan network per parent; an ipvlan one may share it
    _fails(r, ["network", "create", "-d", "macvlan", "-o", f"parent={parent}", "--subnet", "10.97.9.0/24",
               f"pdn-mv2-{r.tag}"], f"is already using parent interface {parent}")  # fmt: skip
    r.ok("rm", "-f", a, b)
    iv = r.network(
        "iv", "-d", "ipvlan", "-o", f"parent={parent}", "-o", "ipvlan_mode=l2", "--subnet", "10.97.2.0/24"
    )
    assert json.loads(r.ok("network", "inspect", iv))[0]["Options"] == {"ipvlan_mode": "l2", "parent": parent}
    if _kernel_has("ipvlan"):
        c, _ = _two_reach_each_other(r, iv, "10.97.2")
        # an ipvlan link has its parent's MAC: the container's is not the 02:42 one
        assert r.ok("exec", c, "cat", "/sys/class/net/eth0/address").strip() != _mac("10.97.2.2")
    else:  # (this machine's kernel: CONFIG_IPVLAN is not set) both engines fail the start alike, cleanly
        failed = r.run("run", "--rm", "--name", r.name("noipvlan"), "--network", iv, "busybox", "true")
        assert failed.returncode == 125 and "operation not supported" in failed.stderr, failed.stderr
        assert json.loads(r.ok("network", "inspect", iv))[0]["Containers"] == {}


def _kernel_has(kind: str) -> bool:
    """Whether this kernel makes links of KIND (tried in a namespace of its own, gone at once)."""
    script = (
        "ip link add pdk2 type dummy"
        if kind == "dummy"
        else f"ip link add pdk0 type veth peer name pdk1 && ip link add pdk2 link pdk0 type {kind}"
    )
    done = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, timeout=30)
    return done.returncode == 0


def test_macvlan_without_parent(r: Run) -> None:
    """No parent: dockerd makes a dummy link for it (this kernel has none: CONFIG_DUMMY is unset, and
    dockerd answers "operation not supported"); pydockerd a bridge of its own, gone with the network."""
    args = ["network", "create", "-d", "macvlan", "--subnet", "10.97.12.0/24", f"pdn-noparent-{r.tag}"]
    if not isinstance(r.engine, PyDockerd) and not _kernel_has("dummy"):
        _fails(r, args, "operation not supported")
        return
    r.networks.append(args[-1])
    r.ok(*args)
    _two_reach_each_other(r, args[-1], "10.97.12")


def test_macvlan_bad_input_creates_nothing(r: Run, parent: str) -> None:
    cases = [
        (["-d", "macvlan", "-o", "parent=pdnosuch0"], "invalid subinterface vlan name pdnosuch0, example formatting is eth0.10"),
        (["-d", "macvlan", "-o", "parent=pdnosuch0.5"], "-o parent interface does was not found on the host: pdnosuch0"),
        (["-d", "macvlan", "-o", f"parent={parent}", "-o", "macvlan_mode=foo"],
         "requested macvlan mode 'foo' is not valid, 'bridge' mode is the macvlan driver default"),
        (["-d", "ipvlan", "-o", f"parent={parent}", "-o", "ipvlan_mode=foo"],
         "requested ipvlan mode 'foo' is not valid, 'l2' mode is the ipvlan driver default"),
    ]  # fmt: skip
    before = r.ok("network", "ls", "-q")
    for args, message in cases:
        _fails(r, ["network", "create", *args, "--subnet", "10.97.5.0/24", f"pdn-bad-{r.tag}"], message)
    assert r.ok("network", "ls", "-q") == before
    client = docker.APIClient(base_url=f"unix://{r.engine.socket}", version="1.41", timeout=60)
    with pytest.raises(docker.errors.APIError) as refused:
        client.create_network(f"pdn-bad-{r.tag}", driver="macvlan", options={"parent": "pdnosuch0"})
    # dockerd answers bad input with a 500 here; pydockerd's bad input is never a server error
    assert refused.value.status_code == (400 if isinstance(r.engine, PyDockerd) else 500)
    client.close()


def test_ptp_network_through_the_cni_plugin(r: Run) -> None:
    if not isinstance(r.engine, PyDockerd):
        _fails(r, ["network", "create", "-d", "ptp", f"pdn-ptp-{r.tag}"], 'plugin "ptp" not found')
        return  # dockerd 20.10 has no ptp driver: what it answers is the comparison
    net = r.network("ptp", "-d", "ptp", "--subnet", "10.97.3.0/24")
    a = r.name("ptp")
    r.ok("run", "-d", "--name", a, "--network", net, "busybox", "sleep", "300")
    # the plugin's host end holds the gateway address; the container routes through it
    host_end = r.host("ip", "-o", "-4", "addr", "show", "to", "10.97.3.1").stdout
    assert host_end.strip(), "ptp's host-side veth"
    assert r.inspect(a)["NetworkSettings"]["Networks"][net]["IPAddress"] == "10.97.3.2"
    out = r.ok("exec", a, "sh", "-c", "ip route; ping -c1 -W2 10.97.3.1 >/dev/null && echo gw-ok")
    assert "default via 10.97.3.1 dev eth0" in out and "gw-ok" in out, out
    r.ok("rm", "-f", a)
    assert r.host("ip", "-o", "-4", "addr", "show", "to", "10.97.3.1").stdout.strip() == ""  # DEL ran


# --- IPv6 ---------------------------------------------------------------------------------------


def test_ipv6_user_network(r: Run) -> None:
    net = r.network("v6", "--ipv6", "--subnet", "10.97.4.0/24", "--subnet", "fd00:97:4::/64")
    gw = r.network(
        "v6gw",
        "--ipv6",
        "--subnet",
        "10.97.6.0/24",
        "--subnet",
        "fd00:97:6::/64",
        "--gateway",
        "fd00:97:6::fe",
    )
    view = json.loads(r.ok("network", "inspect", net))[0]
    assert view["EnableIPv6"] is True
    assert view["IPAM"]["Config"] == [{"Subnet": "10.97.4.0/24"}, {"Subnet": "fd00:97:4::/64"}]
    x, y, z = r.name("x"), r.name("y"), r.name("z")
    r.ok("run", "-d", "--name", x, "--network", net, "busybox", "sleep", "300")
    r.ok("run", "-d", "--name", y, "--network", net, "--ip6", "fd00:97:4::99", "busybox", "sleep", "300")
    r.ok("run", "-d", "--name", z, "--network", gw, "busybox", "sleep", "300")
    settings = r.inspect(x)["NetworkSettings"]
    mine = settings["Networks"][net]
    assert (mine["GlobalIPv6Address"], mine["GlobalIPv6PrefixLen"], mine["IPv6Gateway"]) == (
        "fd00:97:4::2",
        64,
        "fd00:97:4::1",
    )
    assert (settings["GlobalIPv6Address"], settings["IPv6Gateway"]) == (
        "",
        "",
    )  # flat fields: the default bridge's
    other = r.inspect(z)["NetworkSettings"]["Networks"][gw]
    assert (other["GlobalIPv6Address"], other["IPv6Gateway"]) == ("fd00:97:6::1", "fd00:97:6::fe")
    members = json.loads(r.ok("network", "inspect", net))[0]["Containers"]
    assert members[r.inspect(y)["Id"]]["IPv6Address"] == "fd00:97:4::99/64"
    out = r.ok("exec", x, "sh", "-c",
               f"ip -6 route | grep default; grep fd00 /etc/hosts; ping6 -c1 -W2 {y} | head -1; "
               f"nslookup -type=AAAA {y} 127.0.0.11 | awk '/^Address/ {{print $NF}}' | tail -1")  # fmt: skip
    hostname = r.inspect(x)["Config"]["Hostname"]
    assert out.splitlines() == ["default via fd00:97:4::1 dev eth0  metric 1024 ", f"fd00:97:4::2\t{hostname}",
                                f"PING {y} (fd00:97:4::99): 56 data bytes", "fd00:97:4::99"], out  # fmt: skip
    # connected to a network whose name sorts first, z takes its default routes there (libnetwork's order)
    r.ok("network", "connect", net, z)
    routes = r.ok("exec", z, "sh", "-c", "ip route | grep default; ip -6 route | grep default").splitlines()
    assert routes == ["default via 10.97.4.1 dev eth1 ", "default via fd00:97:4::1 dev eth1  metric 1024 "], (
        routes
    )
    # an endpoint without an IPv6 address has IPv6 off (not even a link-local address), as dockerd's
    v4only = r.network("v4only", "--subnet", "10.97.14.0/24")
    for args in (["--network", v4only], []):
        assert _sh(r, *args, "busybox", "ip", "-6", "-o", "addr", "show", "eth0") == ""
    # bad input: dockerd's words; nothing made
    cases = [
        (["network", "create", "--ipv6", f"pdn-v6none-{r.tag}"],
         "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network"),
        (["network", "create", "--ipv6", "--subnet", "fd00:97:4::/80", f"pdn-v6ov-{r.tag}"],
         "Pool overlaps with other one on this address space"),
        (["network", "create", "--ipv6", "--subnet", "fd00:97:7::/64", "--subnet", "fd00:97:8::/64", f"pdn-v6two-{r.tag}"],
         "bridge driver doesn't support multiple subnets"),
        (["run", "--rm", "--network", net, "--ip6", "nonsense", "busybox", "true"], "invalid IPv6 address: nonsense"),
        (["run", "--rm", "--network", net, "--ip6", "fd00:97:9::5", "busybox", "true"],
         "Invalid address fd00:97:9::5: It does not belong to any of this network's subnets"),
        (["run", "--rm", "--network", net, "--ip6", "fd00:97:4::99", "busybox", "true"], "Address already in use"),
        (["run", "--rm", "--network", "bridge", "--ip6", "fd00:97:4::5", "busybox", "true"],
         "user specified IP address is supported on user defined networks only"),
        (["run", "--rm", "--network", v4only, "--ip6", "fd00:97:4::5", "busybox", "true"],
         "user specified IP address is supported only when connecting to networks with user configured subnets"),
    ]  # fmt: skip
    for args, message in cases:
        _fails(r, args, message)
    assert sorted(json.loads(r.ok("network", "inspect", net))[0]["Containers"]) == sorted(
        r.inspect(n)["Id"] for n in (x, y, z)
    )
    assert f"pdn-v6none-{r.tag}" not in r.ok("network", "ls", "--format", "{{.Name}}")


# --- legacy links -------------------------------------------------------------------------------


def test_link_environment(r: Run) -> None:
    db, plain, web = r.name("db"), r.name("plain"), r.name("web")
    r.ok("run", "-d", "--name", db, "-e", "FOO=bar", "-e", "EMPTY=", "-e", "HOME=/x", "--expose", "80",
         "--expose", "5432/udp", "--expose", "7000-7002", "--expose", "9000-9001", "--expose", "80/udp",
         "busybox", "sleep", "300")  # fmt: skip
    r.ok("run", "-d", "--name", plain, "busybox", "sleep", "300")
    ip = r.inspect(db)["NetworkSettings"]["IPAddress"]
    env = r.ok(
        "run", "--name", web, "--link", f"{db}:my-db.x", "--link", plain, "busybox", "env"
    ).splitlines()
    p, q = "MY_DB.X", plain.upper().replace("-", "_")
    expected = {f"{p}_PORT": f"tcp://{ip}:80"}
    # the run 7000-7002 (three ports or more): its first port names it (9000-9001 is too short)
    run = f"{p}_PORT_7000_TCP"
    expected |= {f"{run}_START": f"tcp://{ip}:7000", f"{run}_PORT_START": "7000", f"{run}_END": f"tcp://{ip}:7002",
                 f"{run}_PORT_END": "7002"}  # fmt: skip
    ports = [(80, "tcp"), (80, "udp"), (5432, "udp"), (7000, "tcp"), (7001, "tcp"), (7002, "tcp"), (9000, "tcp"), (9001, "tcp")]  # fmt: skip
    for port, proto in ports:
        head = f"{p}_PORT_{port}_{proto.upper()}"
        expected |= {head: f"{proto}://{ip}:{port}", f"{head}_ADDR": ip, f"{head}_PORT": str(port), f"{head}_PROTO": proto}  # fmt: skip
    expected |= {f"{p}_NAME": f"/{web}/my-db.x", f"{p}_ENV_FOO": "bar", f"{p}_ENV_EMPTY": "", f"{q}_NAME": f"/{web}/{plain}"}  # fmt: skip
    links = [line for line in env if line.startswith((f"{p}_", f"{q}_"))]
    assert dict(line.split("=", 1) for line in links) == expected, "\n".join(links)
    assert len(links) == len(expected), "a variable twice"
    # No order between links: dockerd walks its links in Go map order (seen both ways).
    # an exec gets them too
    r.ok("rm", web)
    r.ok("run", "-d", "--name", web, "--link", f"{db}:my-db.x", "busybox", "sleep", "300")
    assert f"{p}_ENV_FOO=bar" in r.ok("exec", web, "env").splitlines()
    # a container on a user network has no legacy link variables
    net = r.network("nolinks", "--subnet", "10.97.8.0/24")
    out = _sh(r, "--network", net, "--link", f"{db}:other", "busybox", "env")
    assert "OTHER_" not in out


# --- DNS forwarding -----------------------------------------------------------------------------


@pytest.fixture
def loopback_dns(r: Run) -> Iterator[str]:
    """A DNS server (dnslib) on port 53 of a loopback address of its own where the engine runs:
    external.test is 10.0.0.99."""
    address = f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
    where = None if isinstance(r.engine, PyDockerd) else f"/proc/{r.engine.pid}/ns/net"
    sock = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if where is None
        else pr_netns.create_socket(where, socket.AF_INET, socket.SOCK_DGRAM, flags=0)
    )
    sock.bind((address, 53))
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
            if str(query.q.qname) == "external.test." and query.q.qtype == QTYPE.A:
                reply.add_answer(RR("external.test.", QTYPE.A, rdata=A("10.0.0.99"), ttl=60))
            sock.sendto(reply.pack(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield address
    done.set()
    thread.join()
    sock.close()


def test_dns_forwards_to_a_loopback_server_from_the_daemons_namespace(r: Run, loopback_dns: str) -> None:
    net = r.network("fwdlo", "--subnet", "10.97.10.0/24")
    out = _sh(r, "--network", net, "--dns", loopback_dns, "busybox", "sh", "-c",
              "nslookup external.test 127.0.0.11 | awk '/^Address/ {print $NF}' | tail -1; cat /etc/resolv.conf")  # fmt: skip
    lines = out.splitlines()
    assert "nameserver 127.0.0.11" in lines and loopback_dns not in out.split("\n", 1)[1]
    if isinstance(r.engine, PyDockerd):
        assert lines[0] == "10.0.0.99", out  # forwarded from the daemon's namespace, where the server is
    else:
        assert lines[0] != "10.0.0.99", out  # 20.10 forwards from the container's: nothing answers there


def test_no_link_left_by_a_failed_cni_join(r: Run, parent: str) -> None:
    """A macvlan network whose parent vanished: the start fails, nothing of it stays."""
    mv = r.network("gone", "-d", "macvlan", "-o", f"parent={parent}", "--subnet", "10.97.11.0/24")
    r.host("ip", "link", "del", parent)
    try:
        bad = r.run("run", "--rm", "--name", r.name("gone"), "--network", mv, "busybox", "true")
        assert bad.returncode == 125, bad.stderr
        assert json.loads(r.ok("network", "inspect", mv))[0]["Containers"] == {}
    finally:
        r.host("ip", "link", "add", parent, "type", "veth", "peer", "name", f"{parent}p")
        r.host("ip", "link", "set", parent, "up")
        r.host("ip", "link", "set", f"{parent}p", "up")
