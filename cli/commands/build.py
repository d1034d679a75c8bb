"""`build` through the classic builder (POST /build with the context as a tar, the JSON
stream printed as the Docker CLI's legacy builder prints it) and `builder prune`."""

from __future__ import annotations

import json
import os
import sys

from cli.client import APIError, encode_filters
from cli.commands.common import kv_map, parse_filters, split_strings
from cli.context import CLIError, Context
from cli.flags import Command, Opt, UsageError, Values
from cli.formatting import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any

    from cli.client import Response

SPECS: dict[str, Command] = {
    "build": Command(
        "build", "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile",
        (
            Opt("add-host", "", "list", 'Add a custom host-to-IP mapping ("host:ip")'),
            Opt("build-arg", "", "list", "Set build-time variables"),
            Opt("cache-from", "", "list", "Images to consider as cache sources", metavar="strings"),
            Opt("cgroup-parent", "", "str", 'Set the parent cgroup for the "RUN" instructions during build'),
            Opt("compress", "", "bool", "Compress the build context using gzip"),
            Opt("cpu-period", "", "int", "Limit the CPU CFS (Completely Fair Scheduler) period"),
            Opt("cpu-quota", "", "int", "Limit the CPU CFS (Completely Fair Scheduler) quota"),
            Opt("cpu-shares", "c", "int", "CPU shares (relative weight)"),
            Opt("cpuset-cpus", "", "str", "CPUs in which to allow execution (0-3, 0,1)"),
            Opt("cpuset-mems", "", "str", "MEMs in which to allow execution (0-3, 0,1)"),
            Opt("file", "f", "str", 'Name of the Dockerfile (Default is "PATH/Dockerfile")'),
            Opt("force-rm", "", "bool", "Always remove intermediate containers"),
            Opt("iidfile", "", "str", "Write the image ID to the file"),
            Opt("isolation", "", "str", "Container isolation technology"),
            Opt("label", "", "list", "Set metadata for an image"),
            Opt("memory", "m", "str", "Memory limit", metavar="bytes"),
            Opt("memory-swap", "", "str", "Swap limit equal to memory plus swap: -1 to enable unlimited swap", metavar="bytes"),
            Opt("network", "", "str", "Set the networking mode for the RUN instructions during build", default="default"),
            Opt("no-cache", "", "bool", "Do not use cache when building the image"),
            Opt("platform", "", "str", "Set platform if server is multi-platform capable"),
            Opt("progress", "", "str", "Set type of progress output (auto, plain, tty, quiet); the classic builder's output is plain", default="auto"),
            Opt("pull", "", "bool", "Always attempt to pull a newer version of the image"),
            Opt("quiet", "q", "bool", "Suppress the build output and print image ID on success"),
            Opt("rm", "", "bool", "Remove intermediate containers after a successful build", default=True),
            Opt("security-opt", "", "list", "Security options", metavar="strings"),
            Opt("shm-size", "", "str", 'Size of "/dev/shm"', metavar="bytes"),
            Opt("tag", "t", "list", 'Name and optionally a tag in the "name:tag" format'),
            Opt("target", "", "str", "Set the target build stage to build."),
            Opt("ulimit", "", "list", "Ulimit options", metavar="ulimit"),
        ),
        min_args=1, max_args=1,
        aliases=("image build", "build", "builder build"),
    ),
    "prune": Command(
        "builder prune", "", "Remove build cache",
        (
            Opt("all", "a", "bool", "Remove all unused build cache, not just dangling ones"),
            Opt("filter", "", "list", 'Provide filter values (e.g. "until=24h")', metavar="filter"),
            Opt("force", "f", "bool", "Do not prompt for confirmation"),
            Opt("keep-storage", "", "str", "Amount of disk space to keep for cache", metavar="bytes"),
        ),
        max_args=0,
    ),
}  # fmt: skip

PROGRESS_MODES = ("auto", "plain", "tty", "quiet", "rawjson")
_URL_PREFIXES = ("http://", "https://", "git://", "git@", "github.com/")


class BuildContext:
    """What is sent: a file holding the (possibly compressed) tar, and the Dockerfile's name in it."""

    def __init__(self, body: IO[bytes], dockerfile: str) -> None:
        self.body = body
        self.dockerfile = dockerfile

    def size(self) -> int:
        self.body.seek(0, os.SEEK_END)
        n = self.body.tell()
        self.body.seek(0)
        return n


def _spool() -> IO[bytes]:
    import tempfile  # (imported here: it weighs a third of the command's start-up)

    return tempfile.TemporaryFile(prefix="pydocker-build-")


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read()


def _prepare(opts: Values, where: str) -> BuildContext:
    """The Docker CLI's context preparation (cli/command/image/build.go, classic builder)."""
    from cli import buildcontext as bc

    if where == "-":
        if opts.file == "-":
            raise CLIError("invalid argument: can't use stdin for both build context and dockerfile", 1)
        data = _read_stdin()
        out = _spool()
        if bc.is_archive(data[:512]):
            out.write(data)
            return BuildContext(out, opts.file)
        bc.dockerfile_only(data, out)
        return BuildContext(out, bc.DEFAULT_DOCKERFILE)
    if where.startswith(_URL_PREFIXES):
        raise CLIError(
            f"unable to prepare context: pydocker builds from a local directory or stdin, not from a URL: {where}",
            1,
        )
    if not os.path.exists(where):
        raise CLIError(f'unable to prepare context: path "{where}" not found', 1)
    try:
        context_dir = bc.resolve_context_dir(where)
        rel = bc.dockerfile_rel_path(context_dir, opts.file)
        extra: bytes | None = None
        if opts.file == "-":
            extra = _read_stdin()
        elif rel.startswith("../"):
            try:
                with open(opts.file, "rb") as f:
                    extra = f.read()
            except OSError as exc:
                raise bc.ContextError(f"unable to open Dockerfile: {exc.strerror}") from None
        excludes = bc.trim_build_files(bc.read_dockerignore(context_dir), rel, opts.file == "-")
        tar = _spool()
        bc.tar_directory(context_dir, excludes, tar)
    except bc.ContextError as exc:
        message = str(exc)
        if not message.startswith("error checking context"):
            message = f"unable to prepare context: {message}"
        raise CLIError(message, 1) from None
    if extra is None:
        return BuildContext(tar, rel)
    tar.seek(0)
    out = _spool()
    name = bc.add_dockerfile(tar, extra, out)
    tar.close()
    return BuildContext(out, name)


def _compress(ctx_: BuildContext) -> BuildContext:
    import gzip
    import shutil

    out = _spool()
    ctx_.body.seek(0)
    with gzip.GzipFile(fileobj=out, mode="wb") as gz:
        shutil.copyfileobj(ctx_.body, gz)
    ctx_.body.close()
    return BuildContext(out, ctx_.dockerfile)


def _bytes(spec: Command, flag: str, raw: str) -> int:
    from cli.runopts import ram_in_bytes

    if flag == "--memory-swap" and raw.strip() == "-1":
        return -1
    try:
        return ram_in_bytes(raw)
    except ValueError as exc:
        raise UsageError(f'invalid argument "{raw}" for "{flag}" flag: {exc}', spec) from None


def _build_args(items: list[str]) -> dict[str, str | None]:
    """--build-arg KEY=VALUE, or KEY alone: its value from our environment (null if unset)."""
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if eq:
            out[key] = value
        else:
            out[key] = os.environ.get(key)
    return out


def build_query(spec: Command, opts: Values) -> dict[str, Any]:
    """POST /build's query as the Docker client encodes it (keys sorted, zero values left out)."""
    from cli.runopts import parse_ulimit

    q: dict[str, Any] = {}
    args = _build_args(opts.build_arg)
    if args:
        q["buildargs"] = json.dumps(args, sort_keys=True, separators=(",", ":"))
    cache_from = split_strings(opts.cache_from)
    if cache_from:
        q["cachefrom"] = json.dumps(cache_from, separators=(",", ":"))
    for key, value in (("cgroupparent", opts.cgroup_parent), ("cpuperiod", opts.cpu_period),
                       ("cpuquota", opts.cpu_quota), ("cpusetcpus", opts.cpuset_cpus),
                       ("cpusetmems", opts.cpuset_mems), ("cpushares", opts.cpu_shares)):  # fmt: skip
        if value:
            q[key] = value
    if opts.add_host:
        from cli.netopts import validate_extra_host

        q["extrahosts"] = [validate_extra_host(spec, h) for h in opts.add_host]
    if opts.force_rm:
        q["forcerm"] = 1
    if opts.isolation and opts.isolation != "default":
        q["isolation"] = opts.isolation
    if opts.label:
        q["labels"] = json.dumps(kv_map(opts.label), sort_keys=True, separators=(",", ":"))
    if opts.memory:
        q["memory"] = _bytes(spec, "-m, --memory", opts.memory)
    if opts.memory_swap:
        q["memswap"] = _bytes(spec, "--memory-swap", opts.memory_swap)
    if opts.network and opts.network != "default":
        q["networkmode"] = opts.network
    if opts.no_cache:
        q["nocache"] = 1
    if opts.platform:
        q["platform"] = opts.platform.lower()
    if opts.pull:
        q["pull"] = 1
    if opts.quiet:
        q["q"] = 1
    if not opts.rm:
        q["rm"] = 0
    security = split_strings(opts.security_opt)
    if security:
        q["securityopt"] = security
    if opts.shm_size:
        q["shmsize"] = _bytes(spec, "--shm-size", opts.shm_size)
    if opts.tag:
        q["t"] = list(opts.tag)
    if opts.target:
        q["target"] = opts.target
    if opts.ulimit:
        limits = [parse_ulimit(spec, u) for u in opts.ulimit]
        q["ulimits"] = json.dumps([{"Name": u["Name"], "Hard": u["Hard"], "Soft": u["Soft"]} for u in limits],
                                  separators=(",", ":"))  # fmt: skip
    q["version"] = "1"
    return q


def _check_tags(spec: Command, tags: list[str]) -> None:
    from cli.reference import ReferenceError, parse_normalized_named

    for tag in tags:
        try:
            parse_normalized_named(tag)
        except ReferenceError as exc:
            raise UsageError(f'invalid argument "{tag}" for "-t, --tag" flag: {exc}', spec) from None


def _upload(context: BuildContext, progress: Callable[[str], Any]) -> Iterator[bytes]:
    """The context in chunks; once all is sent, the legacy builder's one progress line."""
    sent = 0
    while True:
        chunk = context.body.read(1 << 16)
        if not chunk:
            break
        sent += len(chunk)
        yield chunk
    progress(f"Sending build context to Docker daemon  {human_size(sent)}\r\r\n")


class StreamResult:
    def __init__(self) -> None:
        self.image_id = ""
        self.error = ""
        self.code = 0


def show_stream(resp: Response, out: Any) -> StreamResult:
    """Print a build's JSON messages as jsonmessage does on a non-terminal; keep the aux
    image ID and the first error."""
    result = StreamResult()
    for msg in resp.json_stream():
        if not isinstance(msg, dict):
            continue
        if msg.get("errorDetail") or msg.get("error"):
            detail = msg.get("errorDetail") or {}
            result.error = str(detail.get("message") or msg.get("error") or "")
            result.code = int(detail.get("code") or 0) or 1
            break
        aux = msg.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            result.image_id = str(aux["ID"])
            continue
        if msg.get("stream") is not None:
            out(str(msg["stream"]))
        elif msg.get("status"):
            prefix = f"{msg['id']}: " if msg.get("id") else ""
            progress = f" {msg['progress']}" if msg.get("progress") else ""
            out(f"{prefix}{msg['status']}{progress}\n")
    return result


def build(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    _check_tags(spec, opts.tag)
    if opts.progress not in PROGRESS_MODES:
        raise UsageError(
            f'invalid argument "{opts.progress}" for "--progress" flag: must be one of {", ".join(PROGRESS_MODES)}',
            spec,
        )
    quiet = opts.quiet or opts.progress == "quiet"
    if quiet:
        opts.set("quiet", True)
    query = build_query(spec, opts)
    if opts.iidfile:
        try:
            os.remove(opts.iidfile)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CLIError(f"Could not remove previous iidfile: {exc.strerror}", 1) from None
    context = _prepare(opts, args[0])
    if opts.compress:
        context = _compress(context)
    if context.dockerfile:
        query["dockerfile"] = context.dockerfile
    query = dict(sorted(query.items()))
    # -q: the progress and the stream are kept, and shown (on stderr) only if the build fails
    buffered: list[str] = []
    out = buffered.append if quiet else ctx.out
    try:
        context.body.seek(0)
        resp = ctx.client.open(
            "POST", "/build", query, body=_upload(context, out), headers={"Content-Type": "application/x-tar"}
        )
        try:
            result = show_stream(resp, out)
        finally:
            resp.close()
    except APIError as exc:
        if quiet:
            ctx.err("".join(buffered))
        raise CLIError(f"Error response from daemon: {exc.message}", 1) from None
    finally:
        context.body.close()
    if result.error:
        if quiet:
            ctx.err("".join(buffered))
        raise CLIError(result.error, result.code)
    image_id = result.image_id
    if quiet:
        # what the daemon printed is the ID (its newline kept, in the iidfile too, as Docker does)
        image_id = "".join(buffered[1:])
        ctx.out(image_id)
    if opts.iidfile:
        if not image_id:
            raise CLIError(f"Server did not provide an image ID. Cannot write {opts.iidfile}", 1)
        try:
            with open(opts.iidfile, "w", encoding="utf-8") as f:
                f.write(image_id)
        except OSError as exc:
            raise CLIError(f"Cannot write iidfile: {exc.strerror}", 1) from None
    return 0


def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    warning = "all build cache" if opts.all else "all dangling build cache"
    if not opts.force:
        ctx.out(f"WARNING! This will remove {warning}. Are you sure you want to continue? [y/N] ")
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    filters = parse_filters(opts.filter)
    params: dict[str, Any] = {}
    if opts.all:
        params["all"] = True
    params["filters"] = encode_filters(filters) if filters else ""
    if opts.keep_storage:
        params["keep-storage"] = _bytes(spec, "--keep-storage", opts.keep_storage)
    report = ctx.client.post("/build/prune", params) or {}
    deleted = report.get("CachesDeleted") or []
    if deleted:
        ctx.out("Deleted build cache objects:\n" + "".join(d + "\n" for d in deleted) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
