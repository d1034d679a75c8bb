"""`network` verbs: create, ls, inspect, rm, prune, connect, disconnect, with the Docker
CLI's request bodies (IPAM consolidated client-side), table columns and wording."""

from __future__ import annotations

from cli.client import APIError, encode_filters, quote_path
from cli.commands.common import (
    FORCE_PROMPT,
    confirm,
    go_time_string,
    inspect_each,
    kv_map,
    natural_key,
    parse_filters,
    require_api,
    split_strings,
    table_format,
)
from cli.context import CLIError, Context
from cli.flags import Command, Opt, Values
from cli.formatting import render_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FORMAT_HELP = "Format output using a custom template:\n'table', 'table TEMPLATE', 'json', or a Go template"

SPECS: dict[str, Command] = {
    "create": Command(
        "network create", "[OPTIONS] NETWORK", "Create a network",
        (
            Opt("attachable", "", "bool", "Enable manual container attachment"),
            Opt("aux-address", "", "list", "Auxiliary IPv4 or IPv6 addresses used by Network driver", metavar="map"),
            Opt("config-from", "", "str", "The network from which to copy the configuration"),
            Opt("config-only", "", "bool", "Create a configuration only network"),
            Opt("driver", "d", "str", "Driver to manage the Network", default="bridge"),
            Opt("gateway", "", "list", "IPv4 or IPv6 Gateway for the master subnet", metavar="strings"),
            Opt("ingress", "", "bool", "Create swarm routing-mesh network"),
            Opt("internal", "", "bool", "Restrict external access to the network"),
            Opt("ip-range", "", "list", "Allocate container ip from a sub-range", metavar="strings"),
            Opt("ipam-driver", "", "str", "IP Address Management Driver", default="default"),
            Opt("ipam-opt", "", "list", "Set IPAM driver specific options", metavar="map"),
            Opt("ipv4", "", "bool", "Enable or disable IPv4 address assignment (default true)"),
            Opt("ipv6", "", "bool", "Enable or disable IPv6 address assignment"),
            Opt("label", "", "list", "Set metadata on a network"),
            Opt("opt", "o", "list", "Set driver specific options", metavar="map"),
            Opt("scope", "", "str", "Control the network's scope"),
            Opt("subnet", "", "list", "Subnet in CIDR format that represents a network segment", metavar="strings"),
        ),
        min_args=1, max_args=1,
    ),
    "ls": Command(
        "network ls", "[OPTIONS]", "List networks",
        (
            Opt("filter", "f", "list", 'Provide filter values (e.g. "driver=bridge")', metavar="filter"),
            Opt("format", "", "str", FORMAT_HELP),
            Opt("no-trunc", "", "bool", "Do not truncate the output"),
            Opt("quiet", "q", "bool", "Only display network IDs"),
        ),
        max_args=0,
        aliases=("network ls", "network list"),
    ),
    "inspect": Command(
        "network inspect", "[OPTIONS] NETWORK [NETWORK...]", "Display detailed information on one or more networks",
        (
            Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),
            Opt("verbose", "v", "bool", "Verbose output for diagnostics"),
        ),
        min_args=1,
    ),
    "rm": Command(
        "network rm", "NETWORK [NETWORK...]", "Remove one or more networks",
        (Opt("force", "f", "bool", "Do not error if the network does not exist"),),
        min_args=1,
        aliases=("network rm", "network remove"),
    ),
    "prune": Command(
        "network prune", "[OPTIONS]", "Remove all unused networks",
        (Opt("filter", "", "list", 'Provide filter values (e.g. "until=<timestamp>")', metavar="filter"), FORCE_PROMPT),
        max_args=0,
    ),
    "connect": Command(
        "network connect", "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network",
        (
            Opt("alias", "", "list", "Add network-scoped alias for the container", metavar="strings"),
            Opt("driver-opt", "", "list", "driver options for the network", metavar="strings"),
            Opt("gw-priority", "", "int", "Highest gw-priority provides the default gateway. Accepts positive and negative values."),
            Opt("ip", "", "str", 'IPv4 address (e.g., "172.30.100.104")'),
            Opt("ip6", "", "str", 'IPv6 address (e.g., "2001:db8::33")'),
            Opt("link", "", "list", "Add link to another container"),
            Opt("link-local-ip", "", "list", "Add a link-local address for the container", metavar="strings"),
        ),
        min_args=2, max_args=2,
    ),
    "disconnect": Command(
        "network disconnect", "[OPTIONS] NETWORK CONTAINER", "Disconnect a container from a network",
        (Opt("force", "f", "bool", "Force the container to disconnect from a network"),),
        min_args=2, max_args=2,
    ),
}  # fmt: skip


# ---- create -------------------------------------------------------------------------------------
def _network(text: str, what: str) -> Any:
    import ipaddress

    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise CLIError(f"{what}invalid CIDR address: {text}", 1) from None


def _contains(subnet: str, data: str) -> bool:
    """net.ParseCIDR(subnet).Contains(data's IP), as the CLI's subnetMatches."""
    import ipaddress

    net = _network(subnet, "invalid subnet: ")
    if "/" in data:
        try:
            addr = ipaddress.ip_interface(data).ip
        except ValueError:
            raise CLIError(f"invalid CIDR address: {data}", 1) from None
    else:
        try:
            addr = ipaddress.ip_address(data)
        except ValueError:
            return False
    return addr.version == net.version and addr in net


def ipam_config(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """The CLI's consolidation of --subnet/--ip-range/--gateway/--aux-address per subnet."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise CLIError("every ip-range or gateway must have a corresponding subnet", 1)
    data: dict[str, dict[str, Any]] = {}
    for s in subnets:
        for k in data:
            if _contains(s, k) or _contains(k, s):
                raise CLIError("multiple overlapping subnet configuration is not supported", 1)
        data[s] = {"Subnet": s}
    for key, flag, what in (("IPRange", ranges, "range"), ("Gateway", gateways, "gateway")):
        for value in flag:
            match = False
            for s in subnets:
                if not _contains(s, value):
                    continue
                if data[s].get(key):
                    kind = "ranges" if key == "IPRange" else "gateways"
                    where = "on the same subnet" if key == "IPRange" else "for the same subnet"
                    raise CLIError(
                        f"cannot configure multiple {kind} ({value}, {data[s][key]}) {where} ({s})", 1
                    )
                data[s][key] = value
                match = True
            if not match:
                raise CLIError(f"no matching subnet for {what} {value}", 1)
    for name, addr in aux.items():
        match = False
        for s in subnets:
            if _contains(s, addr):
                data[s].setdefault("AuxiliaryAddresses", {})[name] = addr
                match = True
        if not match:
            raise CLIError(f"no matching subnet for aux-address {addr}", 1)
    return list(data.values())


def create(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    name = args[0]
    config = ipam_config(
        split_strings(opts.subnet),
        split_strings(opts.ip_range),
        split_strings(opts.gateway),
        kv_map(opts.aux_address),
    )
    body: dict[str, Any] = {
        "Name": name,
        "Driver": opts.driver,
        "Scope": opts.scope,
        "Internal": opts.internal,
        "Attachable": opts.attachable,
        "Ingress": opts.ingress,
        "ConfigOnly": opts.config_only,
        "ConfigFrom": {"Network": opts.config_from} if opts.config_from else None,
        "IPAM": {"Driver": opts.ipam_driver, "Config": config, "Options": kv_map(opts.ipam_opt)},
        "Options": kv_map(opts.opt),
        "Labels": kv_map(opts.label),
    }
    if "ipv6" in opts.changed:
        body["EnableIPv6"] = opts.ipv6
    if "ipv4" in opts.changed:
        body["EnableIPv4"] = (
            opts.ipv4
        )  # daemons before API 1.48 ignore it; the Docker CLI sends it all the same
    from cli.client import version_lt

    if version_lt(ctx.client.version, "1.44"):
        body["CheckDuplicate"] = True  # what the Docker CLI asks of daemons before API 1.44
    created = ctx.client.post("/networks/create", None, body) or {}
    for warning in created.get("Warning", "").splitlines() if isinstance(created.get("Warning"), str) else []:
        ctx.err(f"WARNING: {warning}\n")
    ctx.out(f"{created.get('Id', '')}\n")
    return 0


# ---- ls -----------------------------------------------------------------------------------------
NETWORK_HEADERS = {
    "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6",
    "Internal": "INTERNAL", "Labels": "LABELS", "Label": "LABEL", "CreatedAt": "CREATED AT",
}  # fmt: skip
NETWORK_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


def _bool_text(value: Any) -> str:
    return "true" if value else "false"


def network_row(n: dict[str, Any], trunc: bool) -> dict[str, Any]:
    nid = str(n.get("Id", ""))
    labels: dict[str, str] = n.get("Labels") or {}
    return {
        "ID": lambda: nid[:12] if trunc else nid,
        "Name": lambda: str(n.get("Name", "")),
        "Driver": lambda: str(n.get("Driver", "")),
        "Scope": lambda: str(n.get("Scope", "")),
        "IPv4": lambda: _bool_text(n.get("EnableIPv4")),
        "IPv6": lambda: _bool_text(n.get("EnableIPv6")),
        "Internal": lambda: _bool_text(n.get("Internal")),
        "Labels": lambda: ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "CreatedAt": lambda: go_time_string(str(n.get("Created", ""))),
    }


def ls(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    filters = parse_filters(opts.filter)
    params = {"filters": encode_filters(filters)} if filters else None
    networks = ctx.client.get("/networks", params) or []
    networks.sort(key=lambda n: natural_key(str(n.get("Name", ""))))
    trunc = not opts.no_trunc
    rows = [network_row(n, trunc) for n in networks]
    if opts.quiet:
        ctx.out("".join(r["ID"]() + "\n" for r in rows))
        return 0
    fmt = table_format(opts.format or ctx.config_str("networksFormat"), NETWORK_DEFAULT)
    ctx.out(
        render_rows(
            fmt,
            rows,
            NETWORK_HEADERS,
            json_row=lambda r: {k: v() for k, v in sorted(r.items()) if k != "Label"},
        )
    )
    return 0


# ---- inspect / rm / prune -------------------------------------------------------------------------
def inspect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    params = {"verbose": "true"} if opts.verbose else None
    return inspect_each(ctx, args, lambda n: client.get(f"/networks/{quote_path(n)}", params), opts.format)


def rm(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    failed = False
    for name in args:
        try:
            ctx.client.delete(f"/networks/{quote_path(name)}")
        except APIError as exc:
            if opts.force and exc.status == 404:
                continue
            ctx.err(f"Error response from daemon: {exc.message}\n")
            failed = True
            continue
        ctx.out(name + "\n")
    if failed:
        raise CLIError("exit status 1", 1)  # the Docker CLI's status error without a message
    return 0


def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    warning = "WARNING! This will remove all custom networks not used by at least one container."
    if not opts.force and not confirm(ctx, warning):
        return 0
    filters = parse_filters(opts.filter)
    params = {"filters": encode_filters(filters)} if filters else None
    report = ctx.client.post("/networks/prune", params) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.out("Deleted Networks:\n" + "".join(n + "\n" for n in deleted) + "\n")
    return 0


# ---- connect / disconnect --------------------------------------------------------------------------
def connect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    network, container = args
    driver_opts: dict[str, str] = {}
    for item in split_strings(opts.driver_opt):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CLIError("invalid key/value pair format in driver options", 1)
        driver_opts[key.strip()] = value.strip()
    ipam: dict[str, Any] = {}
    if opts.ip:
        ipam["IPv4Address"] = opts.ip
    if opts.ip6:
        ipam["IPv6Address"] = opts.ip6
    link_local = split_strings(opts.link_local_ip)
    if link_local:
        ipam["LinkLocalIPs"] = link_local
    endpoint: dict[str, Any] = {
        "IPAMConfig": ipam,
        "Links": list(opts.link) or None,
        "Aliases": split_strings(opts.alias) or None,
        "DriverOpts": driver_opts,
    }
    if "gw_priority" in opts.changed:
        require_api(ctx, "--gw-priority", "1.48")
        endpoint["GwPriority"] = opts.gw_priority
    ctx.client.post(
        f"/networks/{quote_path(network)}/connect", None, {"Container": container, "EndpointConfig": endpoint}
    )
    return 0


def disconnect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    network, container = args
    ctx.client.post(
        f"/networks/{quote_path(network)}/disconnect", None, {"Container": container, "Force": opts.force}
    )
    return 0
