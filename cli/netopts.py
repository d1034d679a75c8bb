"""`run`/`create` networking options, as the Docker CLI turns them into the create body:
`-p/--publish` (go-connections' port specs and the `published=,target=` long form),
`-P`, `--expose`, `--network` (and its `name=...,alias=...` form), `--network-alias`,
`--ip`, `--ip6`, `--mac-address`, `--link`, `--dns*`, `--add-host`.

Every check here is the CLI's own (bad syntax never reaches the daemon), with its wording.
"""

from __future__ import annotations

import re

from cli.flags import Command, Opt, UsageError, Values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NETWORK_OPTIONS: tuple[Opt, ...] = (
    Opt("add-host", "", "list", "Add a custom host-to-IP mapping (host:ip)"),
    Opt("dns", "", "list", "Set custom DNS servers"),
    Opt("dns-opt", "", "list", "Set DNS options", hidden=True, dest="dns_option"),
    Opt("dns-option", "", "list", "Set DNS options"),
    Opt("dns-search", "", "list", "Set custom DNS search domains"),
    Opt("expose", "", "list", "Expose a port or a range of ports"),
    Opt("ip", "", "str", "IPv4 address (e.g., 172.30.100.104)"),
    Opt("ip6", "", "str", "IPv6 address (e.g., 2001:db8::33)"),
    Opt("link", "", "list", "Add link to another container"),
    Opt("link-local-ip", "", "list", "Container IPv4/IPv6 link-local addresses"),
    Opt("mac-address", "", "str", "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    Opt(
        "net", "", "list", "Connect a container to a network", metavar="network", hidden=True, dest="network"
    ),
    Opt(
        "net-alias",
        "",
        "list",
        "Add network-scoped alias for the container",
        hidden=True,
        dest="network_alias",
    ),
    Opt("network", "", "list", "Connect a container to a network", metavar="network"),
    Opt("network-alias", "", "list", "Add network-scoped alias for the container"),
    Opt("publish", "p", "list", "Publish a container's port(s) to the host"),
    Opt("publish-all", "P", "bool", "Publish all exposed ports to random ports"),
)

PROTOCOLS = ("tcp", "udp", "sctp")
_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-])(?:[0-9a-fA-F]{2}\1){4}[0-9a-fA-F]{2}$")
_DOMAIN = re.compile(
    r"^(:?(?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
    r"(:?\.(?:[a-zA-Z0-9]|(?:[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$"
)
# The default network modes: anything else names a user-defined network.
_BUILTIN_MODES = ("default", "bridge", "host", "none")


class PortError(ValueError):
    """A bad port spec, with go-connections' wording."""


def _flag_error(spec: Command, flag: str, value: str, why: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}', spec)


def _brief(spec: Command, message: str) -> UsageError:
    """The CLI's errors found after flag parsing: "docker: MESSAGE" and the help hint."""
    return UsageError(message, spec, brief=True)


# ---- ports ------------------------------------------------------------------------------------
def _uint16(text: str) -> int:
    if not text.isdigit():
        raise PortError(text)
    value = int(text)
    if value > 65535:
        raise PortError(text)
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """ "80" -> (80, 80), "8000-8010" -> (8000, 8010); go-connections' ParsePortRange."""
    if not text:
        raise PortError("empty string specified for ports")
    if "-" not in text:
        port = _uint16(text)
        return port, port
    parts = text.split("-")
    start, end = _uint16(parts[0]), _uint16(parts[1])
    if end < start:
        raise PortError(f"invalid range specified for port: {text}")
    return start, end


def split_proto_port(raw: str) -> tuple[str, str]:
    """ "80/udp" -> ("udp", "80"); no protocol means tcp."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    if not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    n = len(parts)
    if n == 1:
        return "", "", parts[0]
    if n == 2:
        return "", parts[0], parts[1]
    if n == 3:
        return parts[0], parts[1], parts[2]
    return ":".join(parts[: n - 2]), parts[n - 2], parts[n - 1]


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """One `-p` value -> [("80/tcp", {"HostIp": ..., "HostPort": ...}), ...]."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    if ip.startswith("["):
        inner = ip[1:]
        if not inner.endswith("]") or "]" in inner[:-1]:
            raise PortError(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        ip = inner[:-1]
    if ip and not _is_ip(ip):
        raise PortError(f"invalid IP address: {ip}")
    if not container_port:
        raise PortError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except PortError:
        raise PortError(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except PortError:
            raise PortError(f"invalid hostPort: {host_port}") from None
    if host_port and (end - start) != (host_end - host_start) and end != start:
        raise PortError(
            f"invalid ranges specified for container and host Ports: {container_port} and {host_port}"
        )
    if proto.lower() not in PROTOCOLS:
        raise PortError(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        hp = str(host_start + i) if host_port else ""
        if start == end and host_start != host_end:
            # one container port and a host range: the daemon picks a free one in it
            hp = f"{hp}-{host_end}"
        out.append((f"{start + i}/{proto.lower()}", {"HostIp": ip, "HostPort": hp}))
    return out


def to_standard_notation(spec: Command, items: list[str]) -> list[str]:
    """`published=8080,target=80,protocol=udp` -> "8080:80/udp"; other values unchanged."""
    out = []
    for item in items:
        if "=" not in item:
            out.append(item)
            continue
        params = {"protocol": "tcp"}
        for param in item.split(","):
            key, eq, value = param.partition("=")
            if not eq or not key:
                raise _brief(spec, f"invalid publish opts format (should be name=value but got '{param}')")
            params[key] = value
        out.append(f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}")
    return out


def parse_ports(
    spec: Command, publish: list[str], expose: list[str]
) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """(Config.ExposedPorts, HostConfig.PortBindings) for `-p` and `--expose` values."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for raw in to_standard_notation(spec, publish):
        try:
            mappings = parse_port_spec(raw)
        except PortError as exc:
            raise _brief(spec, str(exc)) from None
        for port, binding in mappings:
            exposed.setdefault(port, {})
            bindings.setdefault(port, []).append(binding)
    for item in expose:
        if ":" in item:
            raise _brief(spec, f"invalid port format for --expose: {item}")
        proto, port = split_proto_port(item)
        try:
            start, end = parse_port_range(port)
        except PortError as exc:
            why = (
                str(exc)
                if str(exc).startswith(("invalid range", "empty"))
                else (f'strconv.ParseUint: parsing "{exc}": invalid syntax')
            )
            raise _brief(spec, f"invalid range format for --expose: {item}, error: {why}") from None
        for number in range(start, end + 1):
            exposed.setdefault(f"{number}/{proto}", {})
    return exposed, bindings


# ---- DNS and hosts ----------------------------------------------------------------------------
def canonical_ip(text: str) -> str | None:
    """Go's net.ParseIP(...).String(): the canonical text of an address, or None."""
    import ipaddress

    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def validate_dns(spec: Command, value: str) -> str:
    ip = canonical_ip(value)
    if ip is None:
        raise _flag_error(spec, "--dns", value, f"IP address is not correctly formatted: {value}")
    return ip


def validate_dns_search(spec: Command, value: str) -> str:
    value = value.strip(" ")
    if value == ".":
        return value
    m = _DOMAIN.match(value)
    if not re.search("[a-zA-Z]", value) or m is None or len(m.group(1)) >= 255:
        raise _flag_error(spec, "--dns-search", value, f"{value} is not a valid domain")
    return m.group(1)


def validate_extra_host(spec: Command, value: str) -> str:
    """host:ip or host=ip (IPv6 in brackets allowed, or `host-gateway`) -> "host:ip"."""
    key, eq, addr = value.partition("=")
    if not eq:
        key, eq, addr = value.partition(":")
    if not eq or not key or ":" in key:
        raise _flag_error(spec, "--add-host", value, f'bad format for add-host: "{value}"')
    if addr != "host-gateway":
        if len(addr) > 2 and addr.startswith("[") and addr.endswith("]"):
            addr = addr[1:-1]
        if canonical_ip(addr) is None:
            raise _flag_error(spec, "--add-host", value, f'invalid IP address in add-host: "{addr}"')
    return f"{key}:{addr}"


def validate_link(spec: Command, value: str) -> str:
    parts = value.split(":", 2)
    if not value:
        raise _flag_error(spec, "--link", value, "empty string specified for links")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1]):
        raise _flag_error(spec, "--link", value, f"bad format for links: {value}")
    return value


# ---- networks -----------------------------------------------------------------------------------
class Attachment:
    """One `--network` value: a network and the endpoint settings given with it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.aliases: list[str] = []
        self.links: list[str] = []
        self.driver_opts: dict[str, str] = {}
        self.ipv4 = ""
        self.ipv6 = ""
        self.mac = ""
        self.link_local: list[str] = []
        self.gw_priority = 0


_LONG_NETWORK = re.compile(r"\w+=\w+(,\w+=\w+)*")


def parse_network_value(spec: Command, value: str) -> Attachment:
    """`--network NAME` or the CSV form `name=N,alias=A,ip=...,driver-opt=k=v,...`."""
    if not _LONG_NETWORK.search(value):
        return Attachment(value)
    import csv

    fields = next(csv.reader([value]), [])
    att = Attachment("")
    for field in fields:
        key, eq, val = field.partition("=")
        if not eq:
            raise _flag_error(spec, "--network", value, f"invalid field {field}")
        key, val = key.strip().lower(), val.strip()
        if key == "name":
            att.target = val
        elif key == "alias":
            att.aliases.append(val)
        elif key == "ip":
            att.ipv4 = val
        elif key == "ip6":
            att.ipv6 = val
        elif key == "mac-address":
            att.mac = val
        elif key == "link-local-ip":
            att.link_local.append(val)
        elif key == "driver-opt":
            dk, deq, dv = val.partition("=")
            if not deq:
                raise _flag_error(spec, "--network", value, "invalid key value pair format in driver options")
            att.driver_opts[dk.strip().lower()] = dv.strip().lower()
        elif key == "gw-priority":
            try:
                att.gw_priority = int(val)
            except ValueError:
                raise _flag_error(spec, "--network", value, f"invalid gw-priority value {val}") from None
        else:
            raise _flag_error(spec, "--network", value, f"invalid field key {key}")
    if not att.target:
        raise _flag_error(spec, "--network", value, "network name/id is not specified")
    return att


def is_user_defined(mode: str) -> bool:
    return mode not in _BUILTIN_MODES and not mode.startswith("container:")


def _apply_container_options(spec: Command, att: Attachment, opts: Values) -> None:
    """The plain flags (--network-alias, --link, --ip...) belong to the first network."""
    aliases = opts.network_alias
    for mine, flag, what in (
        (att.aliases and aliases, "--network-alias", "per-network alias"),
        (att.links and opts.link, "--link", "per-network links"),
        (att.ipv4 and opts.ip, "--ip", "per-network IPv4 address"),
        (att.ipv6 and opts.ip6, "--ip6", "per-network IPv6 address"),
        (att.mac and opts.mac_address, "--mac-address", "per-network MAC address"),
        (att.link_local and opts.link_local_ip, "--link-local-ip", "per-network link-local IP addresses"),
    ):
        if mine:
            raise _brief(spec, f"conflicting options: cannot specify both {flag} and {what}")
    if aliases:
        att.aliases = list(aliases)
    if is_user_defined(att.target) and opts.link:
        att.links = list(opts.link)
    att.ipv4 = att.ipv4 or opts.ip
    att.ipv6 = att.ipv6 or opts.ip6
    att.mac = att.mac or opts.mac_address
    att.link_local = att.link_local or list(opts.link_local_ip)


def _endpoint(spec: Command, att: Attachment) -> dict[str, Any]:
    if not att.target.strip():
        raise _brief(spec, "no name set for network")
    if not is_user_defined(att.target):
        if att.aliases:
            raise _brief(spec, "network-scoped aliases are only supported for user-defined networks")
        if att.links:
            raise _brief(spec, "links are only supported for user-defined networks")
    ep: dict[str, Any] = {}
    if att.aliases:
        ep["Aliases"] = list(att.aliases)
    if att.driver_opts:
        ep["DriverOpts"] = dict(att.driver_opts)
    if att.links:
        ep["Links"] = list(att.links)
    if att.ipv4 or att.ipv6 or att.link_local:
        ipam: dict[str, Any] = {}
        if att.ipv4:
            ipam["IPv4Address"] = att.ipv4
        if att.ipv6:
            ipam["IPv6Address"] = att.ipv6
        if att.link_local:
            ipam["LinkLocalIPs"] = list(att.link_local)
        ep["IPAMConfig"] = ipam
    if att.mac:
        if not _MAC.match(att.mac.strip()):
            raise _brief(spec, f"{att.mac} is not a valid mac address")
        ep["MacAddress"] = att.mac.strip().lower().replace("-", ":")
    if att.gw_priority:
        ep["GwPriority"] = att.gw_priority
    return ep


def network_endpoints(spec: Command, opts: Values) -> tuple[str, dict[str, Any]]:
    """(HostConfig.NetworkMode, NetworkingConfig.EndpointsConfig) as the Docker CLI makes them."""
    attachments = [parse_network_value(spec, v) for v in opts.network]
    endpoints: dict[str, Any] = {}
    if not attachments:
        att = Attachment("default")
        _apply_container_options(spec, att, opts)
        ep = _endpoint(spec, att)
        if ep:
            endpoints["default"] = ep
        return "default", endpoints
    user_defined = builtin = False
    for i, att in enumerate(attachments):
        if is_user_defined(att.target):
            user_defined = True
        else:
            builtin = True
        if i == 0:
            _apply_container_options(spec, att, opts)
        ep = _endpoint(spec, att)
        if att.target in endpoints:
            raise _brief(spec, f'network "{att.target}" is specified multiple times')
        if i == 0 and len(attachments) == 1 and not ep:
            continue  # a single network without settings: the daemon makes the endpoint
        endpoints[att.target] = ep
    if user_defined and builtin:
        raise _brief(
            spec, "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        )
    return attachments[0].target, endpoints


def has_mac_address(endpoints: dict[str, Any]) -> bool:
    return any(ep.get("MacAddress") for ep in endpoints.values())


def apply(spec: Command, opts: Values, config: dict[str, Any], host: dict[str, Any]) -> dict[str, Any]:
    """Fill config/host with the networking options; return NetworkingConfig.EndpointsConfig."""
    if opts.mac_address and not _MAC.match(opts.mac_address.strip()):
        raise _brief(spec, f"{opts.mac_address} is not a valid mac address")
    exposed, bindings = parse_ports(spec, opts.publish, opts.expose)
    if exposed:
        config["ExposedPorts"] = exposed
    if bindings:
        host["PortBindings"] = bindings
    if opts.publish_all:
        host["PublishAllPorts"] = True
    dns = [validate_dns(spec, v) for v in opts.dns]
    search = [validate_dns_search(spec, v) for v in opts.dns_search]
    dns_options = opts.dns_option
    if dns:
        host["Dns"] = dns
    if search:
        host["DnsSearch"] = search
    if dns_options:
        host["DnsOptions"] = list(dns_options)
    hosts = [validate_extra_host(spec, v) for v in opts.add_host]
    if hosts:
        host["ExtraHosts"] = hosts
    links = [validate_link(spec, v) for v in opts.link]
    if links:
        host["Links"] = links
    mode, endpoints = network_endpoints(spec, opts)
    host["NetworkMode"] = mode
    return endpoints
