"""Container lifecycle verbs: run, create, start, stop, kill, restart, rm, pause, unpause,
wait, rename, update, ps, inspect, port, container prune."""

from __future__ import annotations

import json
import os
import threading

from cli.client import APIError, Client, DaemonUnreachable, Response, encode_filters, quote_path, version_lt
from cli.commands.common import (
    FILTER,
    FORCE_PROMPT,
    PRUNE_FILTER,
    confirm,
    for_each,
    parse_filters,
    short_id,
    table_format,
)
from cli.context import CLIError, Context
from cli.flags import Command, Opt, UsageError, Values
from cli.formatting import go_time, human_size, print_json, render_rows, since
from cli.runopts import CREATE_SPEC, RUN_SPEC, build_create_body, parse_restart, ram_in_bytes
from cli.streams import (
    DEFAULT_DETACH_KEYS,
    DetachKeysError,
    PumpOptions,
    RawTerminal,
    parse_detach_keys,
    pump,
    terminal_size,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# docker restart takes docker stop's options: it stops the container the same way first
_STOP_OPTS = (
    Opt("signal", "s", "str", "Signal to send to the container"),
    Opt("time", "t", "int", "Seconds to wait before killing the container"),
)

SPECS: dict[str, Command] = {
    "run": RUN_SPEC,
    "create": CREATE_SPEC,
    "start": Command(
        "start", "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers",
        (
            Opt("attach", "a", "bool", "Attach STDOUT/STDERR and forward signals"),
            Opt("detach-keys", "", "str", "Override the key sequence for detaching a container"),
            Opt("interactive", "i", "bool", "Attach container's STDIN"),
        ),
        min_args=1,
    ),
    "stop": Command(
        "stop", "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
        _STOP_OPTS,
        min_args=1,
    ),
    "restart": Command(
        "restart", "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
        _STOP_OPTS,
        min_args=1,
    ),
    "kill": Command(
        "kill", "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
        (Opt("signal", "s", "str", "Signal to send to the container"),),
        min_args=1,
    ),
    "rm": Command(
        "rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
        (
            Opt("force", "f", "bool", "Force the removal of a running container (uses SIGKILL)"),
            Opt("link", "l", "bool", "Remove the specified link"),
            Opt("volumes", "v", "bool", "Remove anonymous volumes associated with the container"),
        ),
        min_args=1,
        aliases=("container rm", "container remove"),
    ),
    "pause": Command("pause", "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers", min_args=1),
    "unpause": Command("unpause", "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers", min_args=1),
    "wait": Command(
        "wait", "CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes",
        min_args=1,
    ),
    "rename": Command("rename", "CONTAINER NEW_NAME", "Rename a container", min_args=2, max_args=2),
    "update": Command(
        "update", "[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers",
        (
            Opt("blkio-weight", "", "int", "Block IO (relative weight), between 10 and 1000, or 0 to disable"),
            Opt("cpu-shares", "c", "int", "CPU shares (relative weight)"),
            Opt("cpus", "", "str", "Number of CPUs", metavar="decimal"),
            Opt("cpuset-cpus", "", "str", "CPUs in which to allow execution (0-3, 0,1)"),
            Opt("memory", "m", "str", "Memory limit", metavar="bytes"),
            Opt("memory-reservation", "", "str", "Memory soft limit", metavar="bytes"),
            Opt("memory-swap", "", "str", "Swap limit equal to memory plus swap: -1 to enable unlimited swap", metavar="bytes"),
            Opt("pids-limit", "", "int", "Tune container pids limit (set -1 for unlimited)"),
            Opt("restart", "", "str", "Restart policy to apply when a container exits"),
        ),
        min_args=1,
    ),
    "ps": Command(
        "ps", "[OPTIONS]", "List containers",
        (
            Opt("all", "a", "bool", "Show all containers (default shows just running)"),
            FILTER,
            Opt("format", "", "str", "Format output using a custom template:\n'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("last", "n", "int", "Show n last created containers (includes all states)", default=-1),
            Opt("latest", "l", "bool", "Show the latest created container (includes all states)"),
            Opt("no-trunc", "", "bool", "Don't truncate output"),
            Opt("quiet", "q", "bool", "Only display container IDs"),
            Opt("size", "s", "bool", "Display total file sizes"),
        ),
        max_args=0,
        aliases=("container ls", "container list", "container ps"),
    ),
    "container_inspect": Command(
        "container inspect", "[OPTIONS] CONTAINER [CONTAINER...]", "Display detailed information on one or more containers",
        (
            Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),
            Opt("size", "s", "bool", "Display total file sizes"),
        ),
        min_args=1,
    ),
    "inspect": Command(
        "inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Docker objects",
        (
            Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),
            Opt("size", "s", "bool", "Display total file sizes if the type is container"),
            Opt("type", "", "str", "Only inspect objects of the given type (container, image)"),
        ),
        min_args=1,
    ),
    "port": Command(
        "port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container",
        min_args=1, max_args=2,
    ),
    "prune": Command(
        "container prune", "[OPTIONS]", "Remove all stopped containers",
        (PRUNE_FILTER, FORCE_PROMPT),
        max_args=0,
    ),
}  # fmt: skip


# ---- run / create / start -----------------------------------------------------------------
def _split_ref(image: str) -> tuple[str, str]:
    """ "repo[:tag]" -> (repo, tag); a registry port ("host:5000/x") is not a tag."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def pull(ctx: Context, image: str) -> None:
    """POST /images/create?fromImage=... and show its progress messages."""
    from cli.commands.distribution import registry_auth_header, split_reference

    repo, tag = _split_ref(image)
    auth = registry_auth_header(ctx, split_reference(image)[0])  # saved by `pydocker login`
    resp = ctx.client.open("POST", "/images/create", {"fromImage": repo, "tag": tag}, headers=auth)
    try:
        for msg in resp.json_stream():
            if not isinstance(msg, dict):
                continue
            if msg.get("error"):
                raise APIError(resp.status, str(msg["error"]))
            if msg.get("status"):
                prefix = f"{msg['id']}: " if msg.get("id") else ""
                ctx.err(f"{prefix}{msg['status']}\n")
    finally:
        resp.close()


def create_container(ctx: Context, body: dict[str, Any], name: str, pull_policy: str) -> str:
    """Create; on a missing image pull it (unless --pull never) and try once more."""
    image = body["Image"]
    _check_api_features(ctx, body)
    if pull_policy not in ("missing", "always", "never"):
        raise CLIError(
            f'pydocker: invalid pull option: \'{pull_policy}\': must be one of "always", "missing" or "never"',
            125,
        )
    if pull_policy == "always":
        pull(ctx, image)
    params = {"name": name} if name else None
    try:
        created = ctx.client.post("/containers/create", params, body)
    except APIError as exc:
        if exc.status != 404 or pull_policy == "never" or "image" not in exc.message.lower():
            raise
        repo, tag = _split_ref(image)
        ctx.err(f"Unable to find image '{repo}:{tag}' locally\n")
        pull(ctx, image)
        created = ctx.client.post("/containers/create", params, body)
    for warning in created.get("Warnings") or []:
        ctx.err(f"WARNING: {warning}\n")
    return str(created["Id"])


def _check_api_features(ctx: Context, body: dict[str, Any]) -> None:
    """What the Docker CLI refuses before creating when the daemon's API is too old."""
    from cli.commands.common import require_api
    from cli.netopts import has_mac_address

    if (body.get("Healthcheck") or {}).get("StartInterval"):
        require_api(ctx, "--health-start-interval", "1.44")
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    version = ctx.client.version
    if has_mac_address(endpoints) and version_lt(version, "1.44"):
        raise ClientVersionError(
            f'"specify mac-address per network" requires API version 1.44, but the Docker daemon API version is {version}',
            1,
        )


class ClientVersionError(CLIError):
    """The Docker client library's refusal of a setting the daemon's API is too old for: a
    plain error for `create`, wrapped as `run` wraps the daemon's errors."""


def _run_error(spec: Command, exc: Exception, status: int = 125) -> CLIError:
    msg = str(exc) if isinstance(exc, DaemonUnreachable) else f"Error response from daemon: {exc}"
    return CLIError(f"pydocker: {msg}\n\nRun 'pydocker {spec.name} --help' for more information", status)


def start_failure_status(message: str) -> int:
    """Docker's classification of a failed start: 127 when the command does not exist, 126
    when it cannot be invoked, 125 for anything else."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def detach_keys(ctx: Context, flag: str) -> tuple[bytes, str]:
    """(bytes to watch for, value to pass the daemon or "" for its default)."""
    chosen = flag or ctx.config_str("detachKeys")
    try:
        return parse_detach_keys(chosen or DEFAULT_DETACH_KEYS), chosen
    except DetachKeysError as exc:
        raise CLIError(f"pydocker: {exc}", 125) from None


class Waiter:
    """POST /containers/{id}/wait sent before start (so `next-exit` sees the exit); the
    daemon answers headers at once and the body when the condition is met."""

    def __init__(self, client: Client, cid: str, condition: str) -> None:
        self._client = client
        self._cid = cid
        self._condition = condition
        self._headers = threading.Event()
        self._done = threading.Event()
        self.status = 0
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        # Daemons send the headers once the wait is registered; don't hang on one that doesn't.
        self._headers.wait(2.0)

    def _run(self) -> None:
        try:
            params = {"condition": self._condition}
            if version_lt(self._client.version, "1.30"):
                params = {}
            resp: Response = self._client.open("POST", f"/containers/{quote_path(self._cid)}/wait", params)
            self._headers.set()
            try:
                body = json.loads(resp.read() or b"{}")
            finally:
                resp.close()
            err = body.get("Error") if isinstance(body, dict) else None
            if err and err.get("Message"):
                self.error = APIError(0, str(err["Message"]))
                self.status = 125
            else:
                self.status = int(body.get("StatusCode", 0)) if isinstance(body, dict) else 0
        except Exception as exc:  # noqa: BLE001 - reported by result(), in the main thread
            self.error = exc
            self.status = 125
        finally:
            self._headers.set()
            self._done.set()

    def result(self) -> int:
        self._done.wait()
        return self.status


def resize(client: Client, path: str) -> None:
    size = terminal_size(1) or terminal_size(0)
    if size is None:
        return
    try:
        client.call("POST", path, {"h": size[0], "w": size[1]})
    except APIError:
        pass  # the process may already be gone; resizing is best effort


def attach_session(
    ctx: Context,
    cid: str,
    *,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    keys: tuple[bytes, str],
    sig_proxy: bool,
    start: bool,
    wait_condition: str | None,
    spec: Command,
    auto_remove: bool = False,
) -> int:
    """attach (hijacked) -> [wait registered] -> [start] -> pump I/O -> exit status."""
    client = ctx.client
    params: dict[str, Any] = {"stream": True, "stdin": stdin, "stdout": stdout, "stderr": stderr}
    if keys[1]:
        params["detachKeys"] = keys[1]
    conn = client.hijack(f"/containers/{quote_path(cid)}/attach", params)
    waiter = Waiter(client, cid, wait_condition) if wait_condition else None
    if start:
        try:
            client.post(f"/containers/{quote_path(cid)}/start")
        except APIError as exc:
            conn.close()
            if auto_remove:
                try:
                    client.call("DELETE", f"/containers/{quote_path(cid)}", {"force": True}, ok=(404, 409))
                except APIError:
                    pass
            raise _run_error(spec, exc, start_failure_status(exc.message)) from None
    raw = tty and stdin and os.isatty(0)
    on_resize = None
    if tty and (os.isatty(1) or os.isatty(0)):
        path = f"/containers/{quote_path(cid)}/resize"
        resize(client, path)
        on_resize = lambda: resize(client, path)  # noqa: E731

    def forward(signum: int) -> None:
        try:
            client.call("POST", f"/containers/{quote_path(cid)}/kill", {"signal": str(signum)})
        except APIError:
            pass

    opts = PumpOptions(
        tty=tty,
        stdin=stdin,
        detach_keys=keys[0] if stdin and tty else b"",  # as Docker: only a TTY session detaches
        on_resize=on_resize,
        on_signal=forward if sig_proxy and not tty else None,
    )
    try:
        if raw:
            with RawTerminal(0):
                result = pump(conn, opts)
        else:
            result = pump(conn, opts)
    finally:
        conn.close()
    if result.detached:
        return -1
    if waiter is None:
        return 0
    status = waiter.result()
    if waiter.error is not None:
        if isinstance(waiter.error, APIError | DaemonUnreachable):
            ctx.err(f"pydocker: Error response from daemon: {waiter.error}\n")
        else:
            ctx.err(f"pydocker: {waiter.error}\n")
    return status


def run(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    keys = detach_keys(ctx, opts.detach_keys)
    if opts.detach and opts.attach:
        raise UsageError("Conflicting options: -a and -d", spec)
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(0):
        raise CLIError("the input device is not a TTY", 1)
    body = build_create_body(spec, opts, args)
    client = ctx.client
    try:
        cid = create_container(ctx, body, opts.name, opts.pull)
        if opts.detach:
            try:
                client.post(f"/containers/{cid}/start")
            except APIError as exc:
                raise _run_error(spec, exc, start_failure_status(exc.message)) from None
            ctx.out(cid + "\n")
            return 0
    except ClientVersionError as exc:
        raise CLIError(
            f"pydocker: {exc.message}\n\nRun 'pydocker {spec.name} --help' for more information", 125
        ) from None
    except (APIError, DaemonUnreachable) as exc:
        raise _run_error(spec, exc) from None
    try:
        status = attach_session(
            ctx,
            cid,
            tty=opts.tty,
            stdin=bool(body.get("AttachStdin")),
            stdout=bool(body.get("AttachStdout")),
            stderr=bool(body.get("AttachStderr")),
            keys=keys,
            sig_proxy=opts.sig_proxy,
            start=True,
            wait_condition="removed" if opts.rm else "next-exit",
            spec=spec,
            auto_remove=opts.rm,
        )
    except (APIError, DaemonUnreachable) as exc:
        raise _run_error(spec, exc) from None
    return 0 if status == -1 else status


def create(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    body = build_create_body(spec, opts, args)
    try:
        cid = create_container(ctx, body, opts.name, opts.pull)
    except APIError as exc:
        # `create` reports the daemon's refusal as any command does (status 1); only `run` says 125
        raise CLIError(f"Error response from daemon: {exc.message}", 1) from None
    ctx.out(cid + "\n")
    return 0


def inspect_container(client: Client, name: str, size: bool = False) -> dict[str, Any]:
    data = client.get(f"/containers/{quote_path(name)}/json", {"size": True} if size else None)
    if not isinstance(data, dict):
        raise APIError(500, f"unexpected inspect answer for {name}")
    return data


def start(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise CLIError("pydocker: you cannot start and attach multiple containers at once", 1)
        keys = detach_keys(ctx, opts.detach_keys)
        info = inspect_container(client, args[0])
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = bool(opts.interactive and config.get("OpenStdin"))
        if tty and stdin and not os.isatty(0):
            raise CLIError("the input device is not a TTY", 1)
        auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
        status = attach_session(
            ctx,
            info["Id"],
            tty=tty,
            stdin=stdin,
            stdout=True,
            stderr=True,
            keys=keys,
            sig_proxy=True,
            start=True,
            wait_condition="removed" if auto_remove else "next-exit",
            spec=spec,
        )
        return 0 if status == -1 else status
    return for_each(ctx, args, lambda n: client.post(f"/containers/{quote_path(n)}/start"))


def stop(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params: dict[str, Any] = {}
    if "time" in opts.changed:
        params["t"] = opts.time
    if opts.signal:
        params["signal"] = opts.signal
    verb = "restart" if spec.name.endswith("restart") else "stop"
    client = ctx.client
    return for_each(ctx, args, lambda n: client.post(f"/containers/{quote_path(n)}/{verb}", params or None))


restart = stop


def kill(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params = {"signal": opts.signal} if opts.signal else None
    client = ctx.client
    return for_each(ctx, args, lambda n: client.post(f"/containers/{quote_path(n)}/kill", params))


def rm(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params = {"force": opts.force, "v": opts.volumes, "link": opts.link}
    client = ctx.client

    def remove(name: str) -> None:
        client.delete(f"/containers/{quote_path(name.lstrip('/') if not opts.link else name)}", params)

    return for_each(ctx, args, remove, missing_ok=bool(opts.force))


def pause(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    return for_each(ctx, args, lambda n: client.post(f"/containers/{quote_path(n)}/pause"))


def unpause(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    return for_each(ctx, args, lambda n: client.post(f"/containers/{quote_path(n)}/unpause"))


def wait(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client

    def wait_one(name: str) -> None:
        body = client.post(f"/containers/{quote_path(name)}/wait")
        ctx.out(f"{body.get('StatusCode', 0) if isinstance(body, dict) else body}\n")

    return for_each(ctx, args, wait_one, echo=False)


def rename(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    old, new = args
    if not new.strip():
        raise CLIError("pydocker: Error: Neither old nor new names may be empty", 1)
    ctx.client.post(f"/containers/{quote_path(old)}/rename", {"name": new})
    return 0


def update(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    body: dict[str, Any] = {}
    for flag, key in (
        ("memory", "Memory"),
        ("memory_reservation", "MemoryReservation"),
        ("memory_swap", "MemorySwap"),
    ):
        raw = opts.get(flag)
        if not raw:
            continue
        if flag == "memory_swap" and raw.strip() == "-1":
            body[key] = -1
            continue
        try:
            body[key] = ram_in_bytes(raw)
        except ValueError as exc:
            raise UsageError(
                f'invalid argument "{raw}" for "--{flag.replace("_", "-")}" flag: {exc}', spec
            ) from None
    if opts.cpus:
        try:
            body["NanoCpus"] = int(round(float(opts.cpus) * 1e9))
        except ValueError:
            raise UsageError(
                f'invalid argument "{opts.cpus}" for "--cpus" flag: failed to parse', spec
            ) from None
    if "cpu_shares" in opts.changed:
        body["CpuShares"] = opts.cpu_shares
    if opts.cpuset_cpus:
        body["CpusetCpus"] = opts.cpuset_cpus
    if "pids_limit" in opts.changed:
        body["PidsLimit"] = opts.pids_limit
    if "blkio_weight" in opts.changed:
        body["BlkioWeight"] = opts.blkio_weight
    if opts.restart:
        body["RestartPolicy"] = parse_restart(spec, opts.restart)
    if not body:
        raise CLIError("pydocker: you must provide one or more flags when using this command", 1)
    client = ctx.client

    def update_one(name: str) -> None:
        answer = client.post(f"/containers/{quote_path(name)}/update", None, body)
        for warning in (answer or {}).get("Warnings") or [] if isinstance(answer, dict) else []:
            ctx.err(f"WARNING: {warning}\n")

    return for_each(ctx, args, update_one)


# ---- ps -----------------------------------------------------------------------------------
PS_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Label": "LABEL", "Mounts": "MOUNTS", "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}  # fmt: skip
PS_DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _join_host_port(host: str, port: Any) -> str:
    """Go's net.JoinHostPort: IPv6 addresses in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{_join_host_port(ip, group)}->{group}"
    return f"{group}/{proto}"


def format_ports(ports: list[dict[str, Any]]) -> str:
    """The Docker CLI's PORTS column: consecutive ports of one kind grouped into ranges,
    mappings to another host port listed after the groups."""
    ordered = sorted(
        ports or [],
        key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", "")),
    )
    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []
    for p in ordered:
        current = int(p.get("PrivatePort", 0))
        key = str(p.get("Type", ""))
        if p.get("IP"):
            if p.get("PublicPort") != current:
                mappings.append(
                    f"{_join_host_port(p['IP'], p.get('PublicPort', 0))}->{current}/{p.get('Type', '')}"
                )
                continue
            key = f"{p['IP']}/{key}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
        elif current == group[1] + 1:
            group[1] = current
        else:
            result.append(_port_group(key, group[0], group[1]))
            groups[key] = [current, current]
    result += [_port_group(k, g[0], g[1]) for k, g in groups.items()]
    return ", ".join(result + mappings)


def ps_row(c: dict[str, Any], trunc: bool) -> dict[str, Any]:
    """A container summary as Docker's formatting context: computed, template-visible fields."""
    labels: dict[str, str] = c.get("Labels") or {}
    mounts: list[dict[str, Any]] = c.get("Mounts") or []

    def names() -> str:
        out = []
        for n in c.get("Names") or []:
            bare = n[1:] if n.startswith("/") else n
            if trunc and "/" in bare:
                continue  # a legacy link name, "other/alias"
            out.append(bare)
        return ",".join(out)

    def image() -> str:
        img = str(c.get("Image", ""))
        if trunc:
            if img.startswith("sha256:"):
                return short_id(img)
            img = img.split("@", 1)[0]
        return img

    def size() -> str:
        rw = human_size(c.get("SizeRw") or 0, 3)
        if not (c.get("SizeRootFs") or 0) > 0:
            return rw
        return f"{rw} (virtual {human_size(c['SizeRootFs'], 3)})"

    def mount_names() -> str:
        out = []
        for m in mounts:
            name = m.get("Name") or m.get("Source") or ""
            out.append(_ellipsis(name, 15) if trunc else name)
        return ",".join(out)

    networks = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    command = str(c.get("Command", ""))
    cid = str(c.get("Id", ""))
    return {
        "ID": lambda: cid[:12] if trunc else cid,
        "Image": image,
        "Command": lambda: json.dumps(_ellipsis(command, 20) if trunc else command, ensure_ascii=False),
        "CreatedAt": lambda: go_time(c.get("Created", 0)),
        "RunningFor": lambda: since(c.get("Created", 0)),
        "Ports": lambda: format_ports(c.get("Ports") or []),
        "State": lambda: c.get("State", ""),
        "Status": lambda: c.get("Status", ""),
        "Size": size,
        "Names": names,
        "Labels": lambda: ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": mount_names,
        "Networks": lambda: ",".join(networks),
        "LocalVolumes": lambda: str(sum(1 for m in mounts if m.get("Driver") == "local")),
    }


def _json_row(row: Any) -> dict[str, Any]:
    return {k: v() for k, v in sorted(row.items()) if k != "Label"}


def ps(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params: dict[str, Any] = {"all": opts.all or opts.latest or opts.last > 0, "size": opts.size}
    if opts.latest:
        params["limit"] = 1
    elif opts.last > 0:
        params["limit"] = opts.last
    filters = parse_filters(opts.filter)
    if filters:
        params["filters"] = encode_filters(filters)
    containers = ctx.client.get("/containers/json", params) or []
    trunc = not opts.no_trunc
    rows = [ps_row(c, trunc) for c in containers]
    if opts.quiet:
        ctx.out("".join(r["ID"]() + "\n" for r in rows))
        return 0
    fmt = table_format(opts.format or ctx.config_str("psFormat"), PS_DEFAULT)
    if opts.size and fmt == PS_DEFAULT:
        fmt += "\t{{.Size}}"
    ctx.out(render_rows(fmt, rows, PS_HEADERS, json_row=_json_row))
    return 0


# ---- inspect / port / prune -----------------------------------------------------------------
def format_objects(ctx: Context, objects: list[Any], fmt: str) -> None:
    if not fmt:
        ctx.out(print_json(objects))
        return
    if fmt == "json":
        for obj in objects:
            ctx.out(json.dumps(obj, ensure_ascii=False) + "\n")
        return
    from cli.template import Template

    tmpl = Template(fmt)
    for obj in objects:
        ctx.out(tmpl.execute(obj) + "\n")


def _inspect_many(ctx: Context, names: list[str], fetch: Any, missing: str, fmt: str) -> int:
    found: list[Any] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(fetch(name))
        except APIError as exc:
            if exc.status == 404:
                errors.append(f"{missing}: {name}")
            else:
                errors.append(f"Error response from daemon: {exc.message}")
    if found or not fmt:
        format_objects(ctx, found, fmt)
    for e in errors:
        ctx.err(f"Error: {e}\n" if not e.startswith("Error") else e + "\n")
    return 1 if errors else 0


def container_inspect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    return _inspect_many(
        ctx, args, lambda n: inspect_container(client, n, opts.size), "No such container", opts.format
    )


def inspect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    kind = opts.type
    if kind not in ("", "container", "image"):
        raise CLIError(f'pydocker: "{kind}" is not a valid value for --type', 1)

    def fetch(name: str) -> Any:
        if kind in ("", "container"):
            try:
                return inspect_container(client, name, opts.size)
            except APIError as exc:
                if exc.status != 404 or kind == "container":
                    raise
        return client.get(f"/images/{quote_path(name)}/json")

    missing = {"container": "No such container", "image": "No such image"}.get(kind, "No such object")
    return _inspect_many(ctx, args, fetch, missing, opts.format)


def port(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    from cli.commands.common import natural_key

    info = inspect_container(ctx.client, args[0])
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    out: list[str] = []
    if len(args) == 2:
        number, _, proto = args[1].partition("/")
        if not number.isdigit() or int(number) > 65535:
            why = "value out of range" if number.isdigit() else "invalid syntax"
            raise CLIError(f'Error: invalid port ({number}): strconv.ParseUint: parsing "{number}": {why}', 1)
        bindings = ports.get(f"{number}/{proto or 'tcp'}")
        if not bindings:
            raise CLIError(f"Error: No public port '{args[1]}' published for {args[0]}", 1)
        out = [_join_host_port(b.get("HostIp", ""), b.get("HostPort", "")) for b in bindings]
    else:
        for key, bindings in ports.items():
            out += [
                f"{key} -> {_join_host_port(b.get('HostIp', ''), b.get('HostPort', ''))}"
                for b in bindings or []
            ]
    out.sort(key=natural_key)
    if out:
        ctx.out("\n".join(out) + "\n")
    return 0


def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    if not opts.force and not confirm(ctx, "WARNING! This will remove all stopped containers."):
        return 0
    params = {}
    filters = parse_filters(opts.filter)
    if filters:
        params["filters"] = encode_filters(filters)
    report = ctx.client.post("/containers/prune", params or None) or {}
    deleted = report.get("ContainersDeleted") or []
    if deleted:
        ctx.out("Deleted Containers:\n" + "".join(d + "\n" for d in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
