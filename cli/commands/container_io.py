"""Verbs that move bytes in or out of a container: attach, exec, logs, cp, export, diff,
top, stats."""

from __future__ import annotations

import os
import sys

from cli.client import APIError, quote_path
from cli.commands.common import api_timestamp, table_format
from cli.commands.containers import detach_keys, inspect_container, resize
from cli.context import CLIError, Context
from cli.flags import Command, Opt, UsageError, Values
from cli.formatting import bytes_size, human_size, render_rows, tabulate
from cli.runopts import expand_env, read_kv_file
from cli.streams import PumpOptions, RawTerminal, copy_stream, pump, write_fd
from common import atomicfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPECS: dict[str, Command] = {
    "attach": Command(
        "attach", "[OPTIONS] CONTAINER", "Attach local standard input, output, and error streams to a running container",
        (
            Opt("detach-keys", "", "str", "Override the key sequence for detaching a container"),
            Opt("no-stdin", "", "bool", "Do not attach STDIN"),
            Opt("sig-proxy", "", "bool", "Proxy all received signals to the process", default=True),
        ),
        min_args=1, max_args=1,
    ),
    "exec_": Command(
        "exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
        (
            Opt("detach", "d", "bool", "Detached mode: run command in the background"),
            Opt("detach-keys", "", "str", "Override the key sequence for detaching a container"),
            Opt("env", "e", "list", "Set environment variables"),
            Opt("env-file", "", "list", "Read in a file of environment variables"),
            Opt("interactive", "i", "bool", "Keep STDIN open even if not attached"),
            Opt("privileged", "", "bool", "Give extended privileges to the command"),
            Opt("tty", "t", "bool", "Allocate a pseudo-TTY"),
            Opt("user", "u", "str", "Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
            Opt("workdir", "w", "str", "Working directory inside the container"),
        ),
        min_args=2, interspersed=False,
    ),
    "logs": Command(
        "logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container",
        (
            Opt("details", "", "bool", "Show extra details provided to logs"),
            Opt("follow", "f", "bool", "Follow log output"),
            Opt("since", "", "str", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)"),
            Opt("tail", "n", "str", "Number of lines to show from the end of the logs", default="all"),
            Opt("timestamps", "t", "bool", "Show timestamps"),
            Opt("until", "", "str", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)"),
        ),
        min_args=1, max_args=1,
    ),
    "cp": Command(
        "cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tpydocker cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        "Copy files/folders between a container and the local filesystem",
        (
            Opt("archive", "a", "bool", "Archive mode (copy all uid/gid information)"),
            Opt("follow-link", "L", "bool", "Always follow symbol link in SRC_PATH"),
            Opt("quiet", "q", "bool", "Suppress progress output during copy"),
        ),
        min_args=2, max_args=2,
    ),
    "export": Command(
        "export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive",
        (Opt("output", "o", "str", "Write to a file, instead of STDOUT"),),
        min_args=1, max_args=1,
    ),
    "diff": Command(
        "diff", "CONTAINER", "Inspect changes to files or directories on a container's filesystem", min_args=1, max_args=1,
    ),
    "top": Command("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container", min_args=1, interspersed=False),
    "stats": Command(
        "stats", "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics",
        (
            Opt("all", "a", "bool", "Show all containers (default shows just running)"),
            Opt("format", "", "str", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("no-stream", "", "bool", "Disable streaming stats and only pull the first result"),
            Opt("no-trunc", "", "bool", "Do not truncate output"),
        ),
    ),
}  # fmt: skip


# ---- attach / exec ------------------------------------------------------------------------
def attach(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    from cli.commands.containers import attach_session

    client = ctx.client
    keys = detach_keys(ctx, opts.detach_keys)
    info = inspect_container(client, args[0])
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first", 1)
    if state.get("Restarting"):
        raise CLIError("You cannot attach to a restarting container, wait until it is running", 1)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = not opts.no_stdin and bool(config.get("OpenStdin"))
    if tty and stdin and not os.isatty(0):
        raise CLIError("the input device is not a TTY", 1)
    status = attach_session(
        ctx,
        info["Id"],
        tty=tty,
        stdin=stdin,
        stdout=True,
        stderr=True,
        keys=keys,
        sig_proxy=opts.sig_proxy,
        start=False,
        wait_condition=None,
        spec=spec,
    )
    if status == -1:
        ctx.err("read escape sequence\n")
        return 1
    # The stream ended: the container exited (or closed its output); report its status.
    try:
        body = client.post(f"/containers/{quote_path(info['Id'])}/wait")
    except APIError:
        return 0
    return int(body.get("StatusCode", 0)) if isinstance(body, dict) else 0


def exec_(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    container, cmd = args[0], args[1:]
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(0):
        raise CLIError("the input device is not a TTY", 1)
    keys = detach_keys(ctx, opts.detach_keys)
    env: list[str] = []
    for path in opts.env_file:
        env.extend(read_kv_file(path, "env"))
    env.extend(expand_env(opts.env))
    if opts.workdir and not opts.workdir.startswith("/"):
        raise UsageError(
            f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path", spec
        )
    body: dict[str, Any] = {
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach,
        "Tty": opts.tty,
        "Cmd": cmd,
    }
    if env:
        body["Env"] = env
    if opts.workdir:
        body["WorkingDir"] = opts.workdir
    if opts.user:
        body["User"] = opts.user
    if opts.privileged:
        body["Privileged"] = True
    if keys[1]:
        body["DetachKeys"] = keys[1]
    created = client.post(f"/containers/{quote_path(container)}/exec", None, body)
    exec_id = str(created["Id"])
    if opts.detach:
        client.post(f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": opts.tty})
        return 0
    conn = client.hijack(f"/exec/{exec_id}/start", None, {"Detach": False, "Tty": opts.tty})
    on_resize = None
    if opts.tty and (os.isatty(1) or os.isatty(0)):
        path = f"/exec/{exec_id}/resize"
        resize(client, path)
        on_resize = lambda: resize(client, path)  # noqa: E731
    popts = PumpOptions(
        tty=opts.tty,
        stdin=opts.interactive,
        detach_keys=keys[0] if opts.interactive and opts.tty else b"",
        on_resize=on_resize,
    )
    try:
        if opts.tty and opts.interactive and os.isatty(0):
            with RawTerminal(0):
                result = pump(conn, popts)
        else:
            result = pump(conn, popts)
    finally:
        conn.close()
    if result.detached:
        return 0
    return _exec_exit_code(ctx, exec_id)


def _exec_exit_code(ctx: Context, exec_id: str) -> int:
    import time

    deadline = time.monotonic() + 10
    while True:
        info = ctx.client.get(f"/exec/{exec_id}/json") or {}
        if not info.get("Running") or time.monotonic() > deadline:
            code = info.get("ExitCode")
            return int(code) if code is not None else 126
        time.sleep(0.05)


# ---- logs ---------------------------------------------------------------------------------
def logs(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    info = inspect_container(client, args[0])
    params: dict[str, Any] = {
        "stdout": True,
        "stderr": True,
        "follow": opts.follow,
        "timestamps": opts.timestamps,
        "details": opts.details,
        "tail": opts.tail,
    }
    if opts.since:
        params["since"] = api_timestamp(opts.since)
    if opts.until:
        params["until"] = api_timestamp(opts.until)
    resp = client.open("GET", f"/containers/{quote_path(info['Id'])}/logs", params)
    try:
        copy_stream(resp.chunks(), tty=bool((info.get("Config") or {}).get("Tty")))
    finally:
        resp.close()
    return 0


# ---- cp -------------------------------------------------------------------------------------
def _split_container_path(arg: str) -> tuple[str, str] | None:
    """ "name:/path" -> (name, path); local paths (absolute, ./, or without ':') -> None."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None
    name, _, path = arg.partition(":")
    if "/" in name:
        return None
    return name, path


def cp(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    from cli.commands import copy

    src, dst = args
    src_c, dst_c = _split_container_path(src), _split_container_path(dst)
    if src_c and dst_c:
        raise CLIError("pydocker: copying between containers is not supported", 1)
    if not src_c and not dst_c:
        raise CLIError("pydocker: must specify at least one container source", 1)
    if src_c:
        copy.from_container(ctx, src_c[0], src_c[1], dst, follow=opts.follow_link, quiet=opts.quiet)
    else:
        assert dst_c is not None
        copy.to_container(
            ctx, src, dst_c[0], dst_c[1], follow=opts.follow_link, archive=opts.archive, quiet=opts.quiet
        )
    return 0


# ---- export / diff / top --------------------------------------------------------------------
def export(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    if not opts.output and os.isatty(1):
        raise CLIError("pydocker: cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    resp = ctx.client.open("GET", f"/containers/{quote_path(args[0])}/export")
    save_body(resp.chunks(), opts.output)
    resp.close()
    return 0


def save_body(chunks: Any, output: str) -> None:
    """Write a streamed body to a file (atomically renamed into place) or stdout."""
    if not output:
        for chunk in chunks:
            write_fd(1, chunk)
        return
    try:
        with atomicfile.Replacing(output, 0o644) as f:
            for chunk in chunks:
                f.write(chunk)
    except OSError as exc:
        raise CLIError(f"pydocker: failed to save to {output}: {exc.strerror or exc}", 1) from None


def diff(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    changes = ctx.client.get(f"/containers/{quote_path(args[0])}/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    ctx.out("".join(f"{kinds.get(c.get('Kind'), '?')} {c.get('Path')}\n" for c in changes))
    return 0


def top(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    data = ctx.client.get(f"/containers/{quote_path(args[0])}/top", params) or {}
    lines = ["\t".join(data.get("Titles") or [])]
    lines += ["\t".join(str(c) for c in proc) for proc in data.get("Processes") or []]
    ctx.out(tabulate(lines, minwidth=20, padding=1))
    return 0


# ---- stats ----------------------------------------------------------------------------------
STATS_HEADERS = {
    "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
}  # fmt: skip
STATS_DEFAULT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)


def _cpu_percent(s: dict[str, Any]) -> float:
    cpu = s.get("cpu_stats") or {}
    pre = s.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if total > 0 and system > 0:
        return float(total / system * online * 100.0)
    return 0.0


def _mem_usage(mem: dict[str, Any]) -> float:
    """Usage without the page cache that the kernel can reclaim (v1: total_inactive_file,
    v2: inactive_file), the figure Docker shows."""
    usage = float(mem.get("usage") or 0)
    st = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in st and st[key] < usage:
            return float(usage - st[key])
    return usage


def stats_row(s: dict[str, Any], fallback_name: str, trunc: bool) -> dict[str, Any]:
    mem = s.get("memory_stats") or {}
    usage = _mem_usage(mem)
    limit = float(mem.get("limit") or 0)
    rx = tx = 0
    for net in (s.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    cid = str(s.get("id") or "")
    name = str(s.get("name") or fallback_name).lstrip("/")
    pids = (s.get("pids_stats") or {}).get("current")
    return {
        "Container": lambda: fallback_name,
        "ID": lambda: cid[:12] if trunc else cid,
        "Name": lambda: name,
        "CPUPerc": lambda: f"{_cpu_percent(s):.2f}%",
        "MemUsage": lambda: f"{bytes_size(usage)} / {bytes_size(limit)}",
        "MemPerc": lambda: f"{(usage / limit * 100.0 if limit else 0.0):.2f}%",
        "NetIO": lambda: f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": lambda: f"{human_size(read)} / {human_size(write)}",
        "PIDs": lambda: str(pids if pids is not None else 0),
    }


def _one_stats(ctx: Context, name: str) -> dict[str, Any]:
    data = ctx.client.get(f"/containers/{quote_path(name)}/stats", {"stream": False})
    if not isinstance(data, dict):
        raise APIError(500, f"unexpected stats answer for {name}")
    return data


def stats(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    import threading
    import time

    client = ctx.client
    names = list(args)
    if not names:
        params = {"all": True} if opts.all else None
        names = [c["Id"] for c in client.get("/containers/json", params) or []]
    fmt = table_format(opts.format or ctx.config_str("statsFormat"), STATS_DEFAULT)
    trunc = not opts.no_trunc
    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def collect_once(name: str) -> None:
        try:
            data = _one_stats(ctx, name)
        except APIError as exc:
            with lock:
                errors.append(f"Error response from daemon: {exc.message}")
            return
        with lock:
            results[name] = data

    def render() -> str:
        with lock:
            rows = [stats_row(results[n], n, trunc) for n in names if n in results]
        return render_rows(fmt, rows, STATS_HEADERS, json_row=lambda r: {k: v() for k, v in r.items()})

    if opts.no_stream:
        # One sample per container, gathered in parallel (each takes about a second).
        threads = [threading.Thread(target=collect_once, args=(n,), daemon=True) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e in errors:
            ctx.err(e + "\n")
        if errors and not results:
            return 1
        ctx.out(render())
        return 1 if errors else 0

    def follow(name: str) -> None:
        try:
            resp = client.open("GET", f"/containers/{quote_path(name)}/stats", {"stream": True})
            for data in resp.json_stream():
                with lock:
                    results[name] = data
        except APIError as exc:
            with lock:
                errors.append(f"Error response from daemon: {exc.message}")

    for n in names:
        threading.Thread(target=follow, args=(n,), daemon=True).start()
    try:
        while True:
            time.sleep(1.0)
            sys.stdout.write("\033[2J\033[H" + render())
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
