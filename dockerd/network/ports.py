"""Published ports: host port allocation (Docker's portallocator) and the userland proxies.

Host ports are this daemon's to hand out: a request names a port, a range, or nothing (a
free port of the kernel's ephemeral range, the lowest first, as Docker picks). A port another of our
containers holds is "already allocated"; one that some other program holds fails the
proxy's bind, reported in docker-proxy's words. Each proxy runs detached (a session of its
own), is known by pid and start time (a pid alone may be reused after a crash), and is
stopped by the daemon that finds it, before or after a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from dockerd.network import errors
from dockerd.network.model import PortMapping


def local_port_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 49153, 60999


def parse_port_key(key: str) -> tuple[int, str]:
    """ "80/tcp" -> (80, "tcp"); a bare port is TCP."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise errors.InvalidParameter(f'invalid port specification: "{port}"')
    if proto not in ("tcp", "udp", "sctp"):
        raise errors.InvalidParameter(f"invalid proto: {proto}")
    if proto == "sctp":
        raise errors.InvalidParameter("sctp ports are not supported")
    return int(port), proto


def parse_host_port(value: str) -> tuple[int, int] | None:
    """ "" -> None (any), "8080" -> (8080, 8080), "8000-8010" -> (8000, 8010)."""
    if not value:
        return None
    low, _, high = value.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise errors.InvalidParameter(f'invalid port specification: "{value}"')
    lo, hi = int(low), int(high or low)
    if not 0 < lo <= hi < 65536:
        raise errors.InvalidParameter(f'invalid port specification: "{value}"')
    return lo, hi


def overlaps(a_ip: str, b_ip: str) -> bool:
    return a_ip == b_ip or "0.0.0.0" in (a_ip, b_ip)


def candidates(
    wanted: tuple[int, int] | None, proto: str, host_ip: str, taken: list[PortMapping]
) -> list[int]:
    """Ports to try for a binding, in order; none free is Docker's "port is already allocated"."""
    busy = {m.host_port for m in taken if m.proto == proto and overlaps(m.host_ip, host_ip)}
    if wanted is None:
        # As Docker's portallocator: the first free port of the kernel's ephemeral range.
        low, high = local_port_range()
        return [p for p in range(low, high + 1) if p not in busy][:20]
    free = [p for p in range(wanted[0], wanted[1] + 1) if p not in busy]
    if not free:
        raise errors.port_allocated(host_ip, wanted[0])
    return free


# the proxies ---------------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """PID's start time in clock ticks; None once it is gone (or a zombie: it serves nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def proxy_alive(m: PortMapping) -> bool:
    return bool(m.proxy_pid) and start_time(m.proxy_pid) == m.proxy_start


class Proxies:
    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, m: PortMapping) -> None:
        """Start M's proxy and wait until it listens; NetworkError with its words if it cannot."""
        read_end, write_end = os.pipe()
        argv = [*self.command, "-proto", m.proto, "-host-ip", m.host_ip, "-host-port", str(m.host_port),
                "-container-ip", m.container_ip, "-container-port", str(m.container_port), "-status-fd", str(write_end)]  # fmt: skip
        try:
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     pass_fds=(write_end,), start_new_session=True)  # fmt: skip
        finally:
            os.close(write_end)
        with os.fdopen(read_end, "rb") as status:
            report = status.read().decode(errors="replace")
        if not report.startswith("0"):
            child.wait()
            detail = report.partition("\n")[2].strip() or f"exit status {child.returncode}"
            raise errors.NetworkError(f"Error starting userland proxy: {detail}")
        self.children[child.pid] = child
        m.proxy_pid = child.pid
        m.proxy_start = start_time(child.pid) or 0

    def stop(self, m: PortMapping) -> None:
        if proxy_alive(m):
            try:
                os.kill(m.proxy_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        child = self.children.pop(m.proxy_pid, None)
        if child is not None:
            child.wait(timeout=10)
        else:
            # Started by an earlier daemon: not our child, so wait for it to go away.
            deadline = time.monotonic() + 10
            while start_time(m.proxy_pid) == m.proxy_start and m.proxy_pid and time.monotonic() < deadline:
                time.sleep(0.02)
        m.proxy_pid = m.proxy_start = 0
