"""System verbs: version, info, events, system df, system prune."""

from __future__ import annotations

import json
import platform
import sys
import time

from cli import API_VERSION, __version__
from cli.client import APIError, DaemonUnreachable, encode_filters
from cli.commands.common import FILTER, PRUNE_FILTER, api_timestamp, confirm, parse_filters, table_format
from cli.context import CLIError, Context
from cli.flags import Command, Opt, Values
from cli.formatting import bytes_size, human_size, render_rows, tabulate
from cli.template import Template

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPECS: dict[str, Command] = {
    "version": Command(
        "version", "[OPTIONS]", "Show the Docker version information",
        (Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),),
        max_args=0,
    ),
    "info": Command(
        "info", "[OPTIONS]", "Display system-wide information",
        (Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),),
        max_args=0,
        aliases=("system info",),
    ),
    "events": Command(
        "events", "[OPTIONS]", "Get real time events from the server",
        (
            FILTER,
            Opt("format", "", "str", "Format output using a custom template: 'json' or a Go template"),
            Opt("since", "", "str", "Show all events created since timestamp"),
            Opt("until", "", "str", "Stream events until this timestamp"),
        ),
        max_args=0,
        aliases=("system events",),
    ),
    "df": Command(
        "system df", "[OPTIONS]", "Show docker disk usage",
        (
            Opt("format", "", "str", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("verbose", "v", "bool", "Show detailed information on space usage"),
        ),
        max_args=0,
    ),
    "prune": Command(
        "system prune", "[OPTIONS]", "Remove unused data",
        (
            Opt("all", "a", "bool", "Remove all unused images not just dangling ones"),
            PRUNE_FILTER,
            Opt("force", "f", "bool", "Do not prompt for confirmation"),
            Opt("volumes", "", "bool", "Prune anonymous volumes"),
        ),
        max_args=0,
    ),
}  # fmt: skip


def _format_data(fmt: str, data: Any) -> str:
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False) + "\n"
    return Template(fmt).execute(data) + "\n"


# ---- version --------------------------------------------------------------------------------
def version(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client_info: dict[str, Any] = {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "DefaultAPIVersion": API_VERSION,
        "PythonVersion": platform.python_version(),
        "GitCommit": "",
        "BuildTime": "",
        "Os": sys.platform,
        "Arch": platform.machine(),
    }
    server: dict[str, Any] | None = None
    error: Exception | None = None
    try:
        server = ctx.client.get("/version")
        client_info["ApiVersion"] = ctx.client.version
    except (APIError, DaemonUnreachable) as exc:
        error = exc
    if opts.format:
        ctx.out(_format_data(opts.format, {"Client": client_info, "Server": server}))
    else:
        negotiated = client_info["ApiVersion"]
        api_line = (
            negotiated if negotiated == API_VERSION else f"{negotiated} (downgraded from {API_VERSION})"
        )
        lines = [
            "Client:",
            f" Version:           {__version__}",
            f" API version:       {api_line}",
            f" Python version:    {client_info['PythonVersion']}",
            f" OS/Arch:           {'linux' if sys.platform.startswith('linux') else sys.platform}/{_arch()}",
        ]
        if server is not None:
            lines += ["", "Server:"]
            lines += _server_version_lines(server)
        ctx.out("\n".join(lines) + "\n")
    if error is not None:
        msg = str(error) if isinstance(error, DaemonUnreachable) else f"Error response from daemon: {error}"
        raise CLIError(msg, 1)
    return 0


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _server_version_lines(server: dict[str, Any]) -> list[str]:
    engine = {
        "Version": server.get("Version", ""),
        "API version": f"{server.get('ApiVersion', '')} (minimum version {server.get('MinAPIVersion', '')})",
        "Go version": server.get("GoVersion", ""),
        "Git commit": server.get("GitCommit", ""),
        "Built": server.get("BuildTime", ""),
        "OS/Arch": f"{server.get('Os', '')}/{server.get('Arch', '')}",
        "Experimental": str(bool(server.get("Experimental"))).lower(),
    }
    lines = [" Engine:"]
    lines += [f"  {k + ':':<18}{v}".rstrip() for k, v in engine.items()]
    for comp in server.get("Components") or []:
        if comp.get("Name") in ("Engine", None):
            continue
        lines.append(f" {comp['Name']}:")
        lines.append(f"  {'Version:':<18}{comp.get('Version', '')}".rstrip())
        for key, value in sorted((comp.get("Details") or {}).items()):
            if key in (
                "ApiVersion",
                "MinAPIVersion",
                "Os",
                "Arch",
                "GoVersion",
                "KernelVersion",
                "BuildTime",
                "Experimental",
            ):
                continue
            lines.append(f"  {key + ':':<18}{value}".rstrip())
    return lines


# ---- info -----------------------------------------------------------------------------------
def info(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    data = ctx.client.get("/info") or {}
    if opts.format:
        client_info = {"Version": __version__, "Debug": ctx.debug}
        ctx.out(_format_data(opts.format, {**data, "ClientInfo": client_info}))
        return 0
    lines = [
        "Client:",
        f" Version:    {__version__}",
        f" Debug Mode: {str(ctx.debug).lower()}",
        "",
        "Server:",
    ]
    lines += [
        f" Containers: {data.get('Containers', 0)}",
        f"  Running: {data.get('ContainersRunning', 0)}",
        f"  Paused: {data.get('ContainersPaused', 0)}",
        f"  Stopped: {data.get('ContainersStopped', 0)}",
        f" Images: {data.get('Images', 0)}",
        f" Server Version: {data.get('ServerVersion', '')}",
    ]
    if data.get("Driver"):
        lines.append(f" Storage Driver: {data['Driver']}")
        for pair in data.get("DriverStatus") or []:
            if len(pair) == 2:
                lines.append(f"  {pair[0]}: {pair[1]}")
    for key, label in (
        ("LoggingDriver", "Logging Driver"),
        ("CgroupDriver", "Cgroup Driver"),
        ("CgroupVersion", "Cgroup Version"),
    ):
        if data.get(key):
            lines.append(f" {label}: {data[key]}")
    runtimes = data.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    if data.get("DefaultRuntime"):
        lines.append(f" Default Runtime: {data['DefaultRuntime']}")
    if data.get("InitBinary"):
        lines.append(f" Init Binary: {data['InitBinary']}")
    for key, label in (("ContainerdCommit", "containerd version"), ("RuncCommit", "runc version")):
        commit = data.get(key) or {}
        if commit.get("ID"):
            lines.append(f" {label}: {commit['ID']}")
    if data.get("SecurityOptions"):
        lines.append(" Security Options:")
        for opt in data["SecurityOptions"]:
            fields = dict(item.partition("=")[::2] for item in opt.split(","))
            lines.append(f"  {fields.get('name', '')}")
            if fields.get("profile"):  # the one option the Docker CLI shows ("name=seccomp,profile=default")
                lines.append(f"   Profile: {fields['profile']}")
    for key, label in (("KernelVersion", "Kernel Version"), ("OperatingSystem", "Operating System"), ("OSType", "OSType"),
                       ("Architecture", "Architecture"), ("NCPU", "CPUs")):  # fmt: skip
        if data.get(key) not in (None, ""):
            lines.append(f" {label}: {data[key]}")
    if data.get("MemTotal"):
        lines.append(f" Total Memory: {bytes_size(data['MemTotal'])}")
    for key, label in (("Name", "Name"), ("ID", "ID"), ("DockerRootDir", "Docker Root Dir")):
        if data.get(key):
            lines.append(f" {label}: {data[key]}")
    lines.append(f" Debug Mode: {str(bool(data.get('Debug'))).lower()}")
    lines.append(f" Experimental: {str(bool(data.get('ExperimentalBuild'))).lower()}")
    lines.append(f" Live Restore Enabled: {str(bool(data.get('LiveRestoreEnabled'))).lower()}")
    ctx.out("\n".join(lines) + "\n")
    for warning in data.get("Warnings") or []:
        ctx.err(f"{warning}\n")
    return 0


# ---- events ---------------------------------------------------------------------------------
def _event_time(ev: dict[str, Any]) -> str:
    nanos = ev.get("timeNano") or int(ev.get("time", 0)) * 1_000_000_000
    secs, frac = divmod(int(nanos), 1_000_000_000)
    t = time.localtime(secs)
    offset = time.strftime("%z", t)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}{zone}"


def format_event(ev: dict[str, Any]) -> str:
    """Docker's event line: TIME TYPE ACTION ID (attr=value, ...)."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    line = f"{_event_time(ev)} {ev.get('Type', '')} {ev.get('Action', ev.get('status', ''))} {actor.get('ID', ev.get('id', ''))}"
    if attrs:
        line += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return line + "\n"


def events(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params: dict[str, Any] = {}
    if opts.since:
        params["since"] = api_timestamp(opts.since)
    if opts.until:
        params["until"] = api_timestamp(opts.until)
    filters = parse_filters(opts.filter)
    if filters:
        params["filters"] = encode_filters(filters)
    tmpl = Template(opts.format) if opts.format and opts.format != "json" else None
    resp = ctx.client.open("GET", "/events", params)
    try:
        for ev in resp.json_stream():
            if not isinstance(ev, dict):
                continue
            if opts.format == "json":
                ctx.out(json.dumps(ev, ensure_ascii=False) + "\n")
            elif tmpl is not None:
                ctx.out(tmpl.execute(ev) + "\n")
            else:
                ctx.out(format_event(ev))
    except KeyboardInterrupt:
        return 0
    finally:
        resp.close()
    return 0


# ---- df -------------------------------------------------------------------------------------
DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}
DF_DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _percent(part: int, total: int) -> str:
    return f"{human_size(part)} ({part * 100 // total}%)" if total > 0 else human_size(part)


def df(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    data = ctx.client.get("/system/df") or {}
    imgs = data.get("Images") or []
    conts = data.get("Containers") or []
    vols = data.get("Volumes") or []
    cache = data.get("BuildCache") or []
    layers = int(data.get("LayersSize") or 0)
    used = sum(
        (i.get("Size") or 0) - (i.get("SharedSize") or 0)
        for i in imgs
        if i.get("Containers") and (i.get("SharedSize") or 0) != -1
    )
    cont_size = sum(c.get("SizeRw") or 0 for c in conts)
    cont_free = sum(c.get("SizeRw") or 0 for c in conts if c.get("State") != "running")
    vol_size = sum(
        ((v.get("UsageData") or {}).get("Size") or 0)
        for v in vols
        if ((v.get("UsageData") or {}).get("Size") or 0) > 0
    )
    vol_free = sum(
        ((v.get("UsageData") or {}).get("Size") or 0)
        for v in vols
        if ((v.get("UsageData") or {}).get("RefCount") or 0) == 0
    )
    cache_size = sum(b.get("Size") or 0 for b in cache)
    cache_free = sum(b.get("Size") or 0 for b in cache if not b.get("InUse") and not b.get("Shared"))
    summary = [
        ("Images", len(imgs), sum(1 for i in imgs if i.get("Containers")), human_size(layers), _percent(max(layers - used, 0), layers)),
        ("Containers", len(conts), sum(1 for c in conts if c.get("State") == "running"), human_size(cont_size), _percent(cont_free, cont_size)),
        ("Local Volumes", len(vols), sum(1 for v in vols if ((v.get("UsageData") or {}).get("RefCount") or 0) > 0),
         human_size(vol_size), _percent(vol_free, vol_size)),
        ("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), human_size(cache_size), human_size(cache_free)),
    ]  # fmt: skip
    rows = [
        {"Type": t, "TotalCount": str(n), "Active": str(a), "Size": s, "Reclaimable": r}
        for t, n, a, s, r in summary
    ]
    if opts.verbose and not opts.format:
        # The Docker CLI's "Build cache usage" adds up the records that are not shared (not
        # the daemon's BuilderSize).
        return _df_verbose(
            ctx, imgs, conts, vols, cache, sum(b.get("Size") or 0 for b in cache if not b.get("Shared"))
        )
    fmt = table_format(opts.format, DF_DEFAULT)
    ctx.out(render_rows(fmt, rows, DF_HEADERS))
    return 0


def _df_verbose(
    ctx: Context,
    imgs: list[dict[str, Any]],
    conts: list[dict[str, Any]],
    vols: list[dict[str, Any]],
    cache: list[dict[str, Any]],
    builder_size: int,
) -> int:
    from cli.commands.containers import ps_row
    from cli.commands.images import image_rows

    out = ["Images space usage:", ""]
    out.append(
        render_rows(
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
            image_rows(imgs, True),
            {
                "Repository": "REPOSITORY",
                "Tag": "TAG",
                "ID": "IMAGE ID",
                "CreatedSince": "CREATED",
                "Size": "SIZE",
                "SharedSize": "SHARED SIZE",
                "UniqueSize": "UNIQUE SIZE",
                "Containers": "CONTAINERS",
            },  # fmt: skip
        )
    )
    out += ["Containers space usage:", ""]
    out.append(
        render_rows(
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
            [ps_row({**c, "SizeRootFs": 0}, True) for c in conts],  # Docker leaves the virtual size out here
            {
                "ID": "CONTAINER ID",
                "Image": "IMAGE",
                "Command": "COMMAND",
                "LocalVolumes": "LOCAL VOLUMES",
                "Size": "SIZE",
                "RunningFor": "CREATED",
                "Status": "STATUS",
                "Names": "NAMES",
            },  # fmt: skip
        )
    )
    out += ["Local Volumes space usage:", ""]
    vol_lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for v in vols:
        usage = v.get("UsageData") or {}
        size = usage.get("Size")
        shown = "N/A" if size is None or size == -1 else human_size(size)
        vol_lines.append(f"{v.get('Name', '')}\t{usage.get('RefCount', 0)}\t{shown}")
    out.append(tabulate(vol_lines))
    out += [f"Build cache usage: {human_size(builder_size)}", ""]
    out.append(
        render_rows(
            "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
            [_cache_row(b) for b in cache],
            {
                "ID": "CACHE ID",
                "CacheType": "CACHE TYPE",
                "Size": "SIZE",
                "CreatedSince": "CREATED",
                "LastUsedSince": "LAST USED",
                "UsageCount": "USAGE",
                "Shared": "SHARED",
            },  # fmt: skip
        )
    )
    ctx.out("\n".join(out))
    return 0


def _cache_row(b: dict[str, Any]) -> dict[str, Any]:
    """A build cache record as the Docker CLI's df table shows it (an entry in use is starred)."""
    from cli.formatting import parse_rfc3339, since

    cid = str(b.get("ID", ""))[:12] + ("*" if b.get("InUse") else "")
    last = b.get("LastUsedAt")
    return {
        "ID": lambda: cid,
        "CacheType": lambda: str(b.get("Type", "")),
        "Size": lambda: human_size(b.get("Size") or 0, 3),
        "CreatedSince": lambda: since(parse_rfc3339(str(b.get("CreatedAt", "")))),
        "LastUsedSince": lambda: since(parse_rfc3339(str(last))) if last else "",
        "UsageCount": lambda: str(b.get("UsageCount", 0)),
        "Shared": lambda: "true" if b.get("Shared") else "false",
    }


# ---- system prune ---------------------------------------------------------------------------
def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    items = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append(
        "all images without at least one container associated to them" if opts.all else "all dangling images"
    )
    items.append("unused build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not opts.force and not confirm(ctx, warning.rstrip("\n")):
        return 0
    client = ctx.client
    filters = parse_filters(opts.filter)
    params = {"filters": encode_filters(filters)} if filters else None
    reclaimed = 0
    report = client.post("/containers/prune", params) or {}
    reclaimed += report.get("SpaceReclaimed") or 0
    if report.get("ContainersDeleted"):
        ctx.out("Deleted Containers:\n" + "".join(c + "\n" for c in report["ContainersDeleted"]) + "\n")
    for path, key, title in (("/networks/prune", "NetworksDeleted", "Deleted Networks:"),
                             ("/volumes/prune", "VolumesDeleted", "Deleted Volumes:")):  # fmt: skip
        if path == "/volumes/prune" and not opts.volumes:
            continue
        try:
            report = client.post(path, params) or {}
        except APIError as exc:
            if exc.status in (404, 501):
                continue  # a daemon without networks/volumes support yet
            raise
        reclaimed += report.get("SpaceReclaimed") or 0
        if report.get(key):
            ctx.out(title + "\n" + "".join(n + "\n" for n in report[key]) + "\n")
    image_filters = dict(filters)
    image_filters["dangling"] = ["false" if opts.all else "true"]
    report = client.post("/images/prune", {"filters": encode_filters(image_filters)}) or {}
    reclaimed += report.get("SpaceReclaimed") or 0
    lines = []
    for item in report.get("ImagesDeleted") or []:
        for key in ("Untagged", "Deleted"):
            if item.get(key):
                lines.append(f"{key.lower()}: {item[key]}\n")
    if lines:
        ctx.out("Deleted Images:\n" + "".join(lines) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
