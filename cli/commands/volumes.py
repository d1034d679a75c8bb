"""`volume` verbs: create, ls, inspect, rm, prune, with the Docker CLI's bodies, columns and
wording (local volumes; Docker's cluster-volume options are swarm's and not offered)."""

from __future__ import annotations

from cli.client import APIError, encode_filters, quote_path
from cli.commands.common import (
    FORCE_PROMPT,
    confirm,
    inspect_each,
    kv_map,
    natural_key,
    parse_filters,
    require_api,
    table_format,
)
from cli.context import CLIError, Context
from cli.flags import Command, Opt, Values, usage_line
from cli.formatting import human_size, render_rows

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPECS: dict[str, Command] = {
    "create": Command(
        "volume create", "[OPTIONS] [VOLUME]", "Create a volume",
        (
            Opt("driver", "d", "str", "Specify volume driver name", default="local"),
            Opt("label", "", "list", "Set metadata for a volume"),
            Opt("name", "", "str", "Specify volume name", hidden=True),
            Opt("opt", "o", "list", "Set driver specific options", metavar="map"),
        ),
    ),
    "ls": Command(
        "volume ls", "[OPTIONS]", "List volumes",
        (
            Opt("filter", "f", "list", 'Provide filter values (e.g. "dangling=true")', metavar="filter"),
            Opt("format", "", "str", "Format output using a custom template:\n'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("quiet", "q", "bool", "Only display volume names"),
        ),
        max_args=0,
        aliases=("volume ls", "volume list"),
    ),
    "inspect": Command(
        "volume inspect", "[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes",
        (Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),),
        min_args=1,
    ),
    "rm": Command(
        "volume rm", "[OPTIONS] VOLUME [VOLUME...]",
        "Remove one or more volumes. You cannot remove a volume that is in use by a container.",
        (Opt("force", "f", "bool", "Force the removal of one or more volumes"),),
        min_args=1,
        aliases=("volume rm", "volume remove"),
    ),
    "prune": Command(
        "volume prune", "[OPTIONS]", "Remove unused local volumes",
        (
            Opt("all", "a", "bool", "Remove all unused volumes, not just anonymous ones"),
            Opt("filter", "", "list", 'Provide filter values (e.g. "label=<label>")', metavar="filter"),
            FORCE_PROMPT,
        ),
        max_args=0,
    ),
}  # fmt: skip


def create(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    if len(args) > 1:
        # The Docker CLI's own check for this verb, its stray "S" included (cli/command/volume/create.go).
        raise CLIError(
            f"pydocker: 'pydocker {spec.name}' requires at most 1 argument\n\n{usage_line(spec)}\n\n"
            f"SRun 'pydocker {spec.name} --help' for more information",
            1,
        )
    name = opts.name
    if args:
        if name and name != args[0]:
            raise CLIError(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg",
                1,
            )
        name = args[0]
    body: dict[str, Any] = {"Driver": opts.driver}
    if opts.opt:
        body["DriverOpts"] = kv_map(opts.opt)
    if opts.label:
        body["Labels"] = kv_map(opts.label)
    if name:
        body["Name"] = name
    created = ctx.client.post("/volumes/create", None, body) or {}
    ctx.out(f"{created.get('Name', '')}\n")
    return 0


VOLUME_HEADERS = {
    "Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS",
    "Label": "LABEL", "Links": "LINKS", "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
    "Status": "STATUS",
}  # fmt: skip
VOLUME_DEFAULT = "table {{.Driver}}\t{{.Name}}"


def volume_row(v: dict[str, Any]) -> dict[str, Any]:
    labels: dict[str, str] = v.get("Labels") or {}
    usage = v.get("UsageData")
    cluster = v.get("ClusterVolume")
    return {
        "Name": lambda: str(v.get("Name", "")),
        "Driver": lambda: str(v.get("Driver", "")),
        "Scope": lambda: str(v.get("Scope", "")),
        "Mountpoint": lambda: str(v.get("Mountpoint", "")),
        "Labels": lambda: ",".join(f"{k}={val}" for k, val in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "Links": lambda: "N/A" if usage is None else str(usage.get("RefCount", 0)),
        "Size": lambda: "N/A" if usage is None else human_size(usage.get("Size") or 0),
        "Group": lambda: "N/A" if cluster is None else str((cluster.get("Spec") or {}).get("Group", "")),
        "Availability": lambda: (
            "N/A" if cluster is None else str((cluster.get("Spec") or {}).get("Availability", ""))
        ),
        "Status": lambda: "N/A",
    }


def ls(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    filters = parse_filters(opts.filter)
    params = {"filters": encode_filters(filters)} if filters else None
    answer = ctx.client.get("/volumes", params) or {}
    volumes = answer.get("Volumes") or []
    volumes.sort(key=lambda v: natural_key(str(v.get("Name", ""))))
    rows = [volume_row(v) for v in volumes]
    if opts.quiet:
        ctx.out("".join(r["Name"]() + "\n" for r in rows))
        return 0
    fmt = table_format(opts.format or ctx.config_str("volumesFormat"), VOLUME_DEFAULT)
    ctx.out(
        render_rows(
            fmt,
            rows,
            VOLUME_HEADERS,
            json_row=lambda r: {k: v() for k, v in sorted(r.items()) if k != "Label"},
        )
    )
    return 0


def inspect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    return inspect_each(ctx, args, lambda n: client.get(f"/volumes/{quote_path(n)}"), opts.format)


def rm(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params = {"force": True} if opts.force else None
    errors = []
    for name in args:
        try:
            ctx.client.delete(f"/volumes/{quote_path(name)}", params)
        except APIError as exc:
            errors.append(f"Error response from daemon: {exc.message}")
            continue
        ctx.out(name + "\n")
    if errors:
        raise CLIError("\n".join(errors), 1)
    return 0


def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    filters = parse_filters(opts.filter)
    which = "all local volumes" if opts.all else "anonymous local volumes"
    if not opts.force and not confirm(
        ctx, f"WARNING! This will remove {which} not used by at least one container."
    ):
        return 0
    if opts.all:
        require_api(ctx, "--all", "1.42")
        filters["all"] = ["true"]
    params = {"filters": encode_filters(filters)} if filters else None
    report = ctx.client.post("/volumes/prune", params) or {}
    deleted = report.get("VolumesDeleted") or []
    if deleted:
        ctx.out("Deleted Volumes:\n" + "".join(v + "\n" for v in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
