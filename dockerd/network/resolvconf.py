"""A container's /etc/resolv.conf, as dockerd (libnetwork 20.10) writes it.

Without the embedded DNS server (default bridge, none): the host's file with loopback
nameservers taken out (a 127.x resolver is the host's, unreachable from the container), and
Google's 8.8.8.8/8.8.4.4 when nothing is left; --dns/--dns-search/--dns-option replace
their lines. On a user-defined network: `nameserver 127.0.0.11` (the embedded server), the
host's or the given search and options, and `ndots:0` unless an ndots option is given; the
real upstreams go to the embedded server instead (`upstreams`), loopback ones included.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from dockerd.network.model import DNSConfig

EMBEDDED = "127.0.0.11"
DEFAULT_IPV4_DNS = ["8.8.8.8", "8.8.4.4"]
SYSTEMD_RESOLVED = Path("/run/systemd/resolve/resolv.conf")
_LOCALHOST_NS = re.compile(r"(?m)^\s*nameserver\s*((127\.([0-9]{1,3}\.){2}[0-9]{1,3})|(::1))\s*\n*")
_IPV6_NS = re.compile(r"(?m)^\s*nameserver\s*[0-9a-fA-F:]*:[0-9a-fA-F:]*\s*\n*")


def host_content(path: Path) -> str:
    """The host's resolv.conf; systemd-resolved's real one when the host's names only its stub."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    if nameservers(text) == ["127.0.0.53"] and SYSTEMD_RESOLVED.exists():
        return SYSTEMD_RESOLVED.read_text()
    return text


def _lines(text: str, key: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words and words[0] == key:
            found.append(" ".join(words[1:]))
    return found


def nameservers(text: str) -> list[str]:
    return [v.split()[0] for v in _lines(text, "nameserver") if v]


def search(text: str) -> list[str]:
    found = _lines(text, "search") or _lines(text, "domain")
    return found[-1].split() if found else []


def options(text: str) -> list[str]:
    return [o for v in _lines(text, "options") for o in v.split()]


def filter_host(text: str) -> str:
    """FilterResolvDNS: loopback and IPv6 nameservers out, Google's in if none is left."""
    cleaned = _IPV6_NS.sub("", _LOCALHOST_NS.sub("", text))
    if not nameservers(cleaned):
        cleaned += "\n" + "\n".join(f"nameserver {ip}" for ip in DEFAULT_IPV4_DNS)
    return cleaned


def build(servers: list[str], search_list: list[str], opts: list[str]) -> str:
    out = ""
    if search_list and " ".join(search_list).strip() != ".":
        out += "search " + " ".join(search_list) + "\n"
    out += "".join(f"nameserver {s}\n" for s in servers)
    if opts and " ".join(opts).strip():
        out += "options " + " ".join(opts) + "\n"
    return out


def render(host: str, dns: DNSConfig, embedded: bool) -> str:
    """The file for a sandbox, from the host's content HOST and the container's DNS settings."""
    filtered = filter_host(host)
    search_list = dns.search or search(filtered)
    opts = dns.options or options(filtered)
    if embedded:
        if not any(o.startswith("ndots") for o in opts):
            opts = [*opts, "ndots:0"]
        return build([EMBEDDED], search_list, opts)
    if dns.servers or dns.search or dns.options:
        servers = [s.split(":")[0] if s.count(":") == 1 else s for s in dns.servers] or nameservers(filtered)
        return build(servers, search_list, opts)
    return filtered


def upstreams(host: str, dns: DNSConfig) -> list[tuple[str, int]]:
    """Where the embedded server forwards (IPv4 and IPv6): --dns (IP, IP:PORT, [IPv6]:PORT), else the host's servers, loopback
    ones included (the server forwards from the daemon's namespace, where they answer: Docker 26's
    "host loopback" forwarding), Google's when the host names none."""
    found = []
    for server in dns.servers or nameservers(host) or DEFAULT_IPV4_DNS:
        if server.startswith("[") and "]:" in server:  # [IPv6]:PORT (tests' upstreams)
            ip, _, port = server[1:].partition("]:")
        else:
            ip, _, port = server.partition(":") if server.count(":") == 1 else (server, "", "")
        try:
            ipaddress.ip_address(ip)
            found.append((ip, int(port or 53)))
        except ValueError:
            continue
    return found
