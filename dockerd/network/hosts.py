"""A container's /etc/hosts, as dockerd writes it.

Docker's fixed localhost and IPv6 lines, then --add-host entries (`host-gateway` is the
default bridge's gateway), legacy --link entries, then one line per endpoint address with
the container's hostname (`fqdn short` when it has a domain).
"""

from __future__ import annotations

DEFAULT = [
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
]


def extra_host_records(extra_hosts: list[str], host_gateway: str) -> list[tuple[str, str]]:
    """--add-host NAME:IP (IP may be `host-gateway`) as (ip, name) records."""
    records = []
    for entry in extra_hosts:
        name, _, ip = entry.partition(":")
        records.append((host_gateway if ip == "host-gateway" else ip, name))
    return records


def host_names(hostname: str, domainname: str) -> str:
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short = fqdn.split(".", 1)[0]
    return f"{fqdn} {short}" if "." in fqdn else fqdn


def render(addresses: list[str], hostname: str, domainname: str, extra: list[tuple[str, str]]) -> str:
    lines = [f"{ip}\t{names}" for ip, names in DEFAULT + extra]
    lines += [f"{ip}\t{host_names(hostname, domainname)}" for ip in addresses]
    return "\n".join(lines) + "\n"
