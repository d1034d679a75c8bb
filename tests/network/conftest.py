"""Fixtures for the network backend on the real kernel.

Every test gets a backend whose every kernel name is its own (bridges, veths, iptables
chains, a 10.x pool chosen free of the host's routes), temp state and run directories, and a
teardown that releases what is left, shuts the backend down and asserts that nothing
remains: no link with our prefixes, no chain or rule of ours, no namespace mount, no proxy.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dockerd.network.backend import NetworkBackend
from dockerd.network.iptables import Firewall
from dockerd.network.options import NetworkOptions
from dockerd.network.ports import start_time


@dataclass
class Names:
    token: str
    events: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (f"pt{self.token}", f"pv{self.token}")


def make_options(tmp: Path, names: Names) -> NetworkOptions:
    t = names.token
    resolv = tmp / "host-resolv.conf"
    if not resolv.exists():
        resolv.write_text(
            "nameserver 127.0.0.53\nsearch example.test\n"
        )  # only loopback: nothing outside is ever named
    return NetworkOptions(
        state_dir=tmp / "state",
        run_dir=tmp / "run" / "netns",
        bridge_name=f"pt{t}b0",
        bridge_prefix=f"pt{t}-",
        veth_prefix=f"pv{t}",
        chain_prefix=f"PT{t.upper()}",
        default_pools=[("10.200.0.0/13", 24)],
        host_resolv_conf=resolv,
    )


def leftovers(options: NetworkOptions, names: Names, proxies: list[tuple[int, int]]) -> list[str]:
    found = []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [
        line.split(":")[1].strip() for line in links.splitlines() if any(p in line for p in names.prefixes)
    ]
    found += Firewall(options.chain_prefix).leftovers()
    with open("/proc/self/mountinfo") as f:
        found += [line.split()[4] for line in f if line.split()[4].startswith(str(options.run_dir.parent))]
    found += [f"proxy {pid}" for pid, start in proxies if start and start_time(pid) == start]
    return found


def proxies_of(backend: NetworkBackend) -> list[tuple[int, int]]:
    return [(m.proxy_pid, m.proxy_start) for sb in backend.sandboxes.by_id.values() for m in sb.ports]


@pytest.fixture
def names() -> Names:
    return Names(secrets.token_hex(2))


@pytest.fixture
def backend(tmp_path: Path, names: Names) -> Iterator[NetworkBackend]:
    options = make_options(tmp_path, names)
    b = NetworkBackend(options, lambda action, nid, attrs: names.events.append((action, nid, attrs)))
    b.start()
    holder = [b]
    yield b
    b = holder[0]
    seen_proxies = proxies_of(b)
    for cid in list(b.sandboxes.by_id):
        b.sandboxes.release(cid)
    for net in b.networks.all():
        if not net.builtin:
            b.networks.remove(net.id, b.sandboxes.in_use)
    b.shutdown()
    assert leftovers(options, names, seen_proxies) == []


def in_ns(key: str, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={key}", *argv], capture_output=True, text=True, timeout=timeout)


def serve_tcp(key: str, port: int, reply: str) -> subprocess.Popen[bytes]:
    """A TCP server inside the namespace answering REPLY to every connection (busybox nc)."""
    proc = subprocess.Popen(["nsenter", f"--net={key}", "busybox", "nc", "-ll", "-p", str(port), "-e", "echo", reply],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(100):
        tables = open(f"/proc/{proc.pid}/net/tcp").read() + open(f"/proc/{proc.pid}/net/tcp6").read()
        if f":{port:04X} " in tables:  # busybox listens on IPv6's any address when it can
            return proc
        subprocess.run(["sleep", "0.05"])
    proc.kill()
    raise AssertionError("server did not listen")


def tcp_get(key: str | None, address: str, port: int) -> str:
    argv = ["busybox", "nc", "-w", "3", address, str(port)]
    done = subprocess.run((["nsenter", f"--net={key}"] if key else []) + argv, capture_output=True, text=True,
                          timeout=15, stdin=subprocess.DEVNULL)  # fmt: skip
    return done.stdout.strip()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


assert os.geteuid() == 0, "the network tests need root"
