"""Image verbs: images (image ls), rmi, image inspect, history, tag, load, save, import,
image prune."""

from __future__ import annotations

import os

from cli.client import Response, encode_filters, quote_path
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
from cli.commands.container_io import save_body
from cli.commands.containers import _inspect_many
from cli.context import CLIError, Context
from cli.flags import Command, Opt, Values
from cli.formatting import go_time, human_size, render_rows, since

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SPECS: dict[str, Command] = {
    "images": Command(
        "images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images",
        (
            Opt("all", "a", "bool", "Show all images (default hides intermediate images)"),
            Opt("digests", "", "bool", "Show digests"),
            FILTER,
            Opt("format", "", "str", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("no-trunc", "", "bool", "Don't truncate output"),
            Opt("quiet", "q", "bool", "Only show image IDs"),
        ),
        max_args=1,
        aliases=("image ls", "image list"),
    ),
    "rmi": Command(
        "rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images",
        (
            Opt("force", "f", "bool", "Force removal of the image"),
            Opt("no-prune", "", "bool", "Do not delete untagged parents"),
        ),
        min_args=1,
        aliases=("image rm", "image remove"),
    ),
    "image_inspect": Command(
        "image inspect", "[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images",
        (Opt("format", "f", "str", "Format output using a custom template: 'json' or a Go template"),),
        min_args=1,
    ),
    "history": Command(
        "history", "[OPTIONS] IMAGE", "Show the history of an image",
        (
            Opt("format", "", "str", "Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template"),
            Opt("human", "H", "bool", "Print sizes and dates in human readable format", default=True),
            Opt("no-trunc", "", "bool", "Don't truncate output"),
            Opt("quiet", "q", "bool", "Only show image IDs"),
        ),
        min_args=1, max_args=1,
    ),
    "tag": Command("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", min_args=2, max_args=2),
    "load": Command(
        "load", "[OPTIONS]", "Load an image from a tar archive or STDIN",
        (
            Opt("input", "i", "str", "Read from tar archive file, instead of STDIN"),
            Opt("quiet", "q", "bool", "Suppress the load output"),
        ),
        max_args=0,
    ),
    "save": Command(
        "save", "[OPTIONS] IMAGE [IMAGE...]", "Save one or more images to a tar archive (streamed to STDOUT by default)",
        (Opt("output", "o", "str", "Write to a file, instead of STDOUT"),),
        min_args=1,
    ),
    "import_": Command(
        "import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]", "Import the contents from a tarball to create a filesystem image",
        (
            Opt("change", "c", "list", "Apply Dockerfile instruction to the created image"),
            Opt("message", "m", "str", "Set commit message for imported image"),
            Opt("platform", "", "str", "Set platform if server is multi-platform capable"),
        ),
        min_args=1, max_args=2,
    ),
    "prune": Command(
        "image prune", "[OPTIONS]", "Remove unused images",
        (
            Opt("all", "a", "bool", "Remove all unused images, not just dangling ones"),
            PRUNE_FILTER,
            FORCE_PROMPT,
        ),
        max_args=0,
    ),
}  # fmt: skip

IMAGES_HEADERS = {
    "Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
}  # fmt: skip
IMAGES_DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def split_tag(ref: str) -> tuple[str, str]:
    """ "repo:tag" -> (repo, tag); "host:5000/repo" has no tag."""
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def image_rows(images: list[dict[str, Any]], trunc: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for img in images:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        entries: list[tuple[str, str, str]] = []
        if tags:
            for t in tags:
                repo, tag = split_tag(t)
                digest = next((d.split("@", 1)[1] for d in digests if d.split("@", 1)[0] == repo), "<none>")
                entries.append((repo, tag or "<none>", digest))
        elif digests:
            entries = [(d.split("@", 1)[0], "<none>", d.split("@", 1)[1]) for d in digests]
        else:
            entries = [("<none>", "<none>", "<none>")]
        for repo, tag, digest in entries:
            rows.append(_image_row(img, repo, tag, digest, trunc))
    return rows


def _na(value: Any) -> str:
    return "N/A" if value is None or value == -1 else human_size(value)


def _image_row(img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool) -> dict[str, Any]:
    iid = str(img.get("Id", ""))
    size = img.get("Size") or 0
    shared = img.get("SharedSize")
    containers = img.get("Containers")
    return {
        "ID": lambda: short_id(iid) if trunc else iid,
        "Repository": lambda: repo,
        "Tag": lambda: tag,
        "Digest": lambda: digest,
        "CreatedSince": lambda: since(img.get("Created") or 0),
        "CreatedAt": lambda: go_time(img.get("Created") or 0),
        "Size": lambda: human_size(size, 3),
        "VirtualSize": lambda: human_size(img.get("VirtualSize", size) or 0),
        "SharedSize": lambda: _na(shared),
        "UniqueSize": lambda: "N/A" if shared is None or shared == -1 else human_size(size - shared),
        "Containers": lambda: "N/A" if containers is None or containers == -1 else str(containers),
    }


def images(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    params: dict[str, Any] = {"all": opts.all}
    filters = parse_filters(opts.filter)
    if args:
        filters.setdefault("reference", []).append(args[0])
    if filters:
        params["filters"] = encode_filters(filters)
    if opts.digests:
        params["digests"] = True
    listed = ctx.client.get("/images/json", params) or []
    listed.sort(key=lambda i: i.get("Created") or 0, reverse=True)
    rows = image_rows(listed, not opts.no_trunc)
    if opts.quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"]() not in seen:
                seen.append(r["ID"]())
        ctx.out("".join(i + "\n" for i in seen))
        return 0
    fmt = table_format(
        opts.format or ctx.config_str("imagesFormat"), IMAGES_DIGESTS if opts.digests else IMAGES_DEFAULT
    )
    ctx.out(render_rows(fmt, rows, IMAGES_HEADERS, json_row=lambda r: {k: v() for k, v in sorted(r.items())}))
    return 0


def rmi(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    params = {"force": opts.force, "noprune": opts.no_prune}

    def remove(name: str) -> None:
        for item in client.delete(f"/images/{quote_path(name)}", params) or []:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    ctx.out(f"{key}: {item[key]}\n")

    return for_each(ctx, args, remove, echo=False)


def image_inspect(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    client = ctx.client
    return _inspect_many(
        ctx, args, lambda n: client.get(f"/images/{quote_path(n)}/json"), "No such image", opts.format
    )


HISTORY_HEADERS = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE",
    "Comment": "COMMENT",
}  # fmt: skip
HISTORY_DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def history(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    entries = ctx.client.get(f"/images/{quote_path(args[0])}/history") or []
    trunc = not opts.no_trunc
    human = opts.human

    def row(h: dict[str, Any]) -> dict[str, Any]:
        hid = str(h.get("Id", ""))
        created = h.get("Created") or 0
        created_by = str(h.get("CreatedBy", "")).replace("\t", " ")
        if trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        size = h.get("Size") or 0
        return {
            "ID": lambda: hid if hid == "<missing>" or not trunc else short_id(hid),
            "CreatedSince": lambda: since(created) if human else go_time(created),
            "CreatedAt": lambda: go_time(created),
            "CreatedBy": lambda: created_by,
            "Size": lambda: human_size(size, 3) if human else str(size),
            "Comment": lambda: str(h.get("Comment", "")),
        }

    rows = [row(h) for h in entries]
    if opts.quiet:
        ctx.out("".join(r["ID"]() + "\n" for r in rows))
        return 0
    fmt = table_format(opts.format, HISTORY_DEFAULT)
    ctx.out(
        render_rows(fmt, rows, HISTORY_HEADERS, json_row=lambda r: {k: v() for k, v in sorted(r.items())})
    )
    return 0


def tag(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    source, target = args
    repo, tag_name = split_tag(target)
    if "@" in target:
        raise CLIError(f"pydocker: refusing to create a tag with a digest reference: {target}", 1)
    ctx.client.post(f"/images/{quote_path(source)}/tag", {"repo": repo, "tag": tag_name or "latest"})
    return 0


def _file_chunks(fd: int) -> Iterator[bytes]:
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            return
        yield data


def _print_json_messages(ctx: Context, resp: Response, quiet: bool = False) -> int:
    """Show a JSON-message stream (load, import, pull); exit 1 on an error message."""
    ctype = resp.headers.get("Content-Type", "")
    if "json" not in ctype:
        for chunk in resp.chunks():
            ctx.out(chunk.decode(errors="replace"))
        return 0
    status = 0
    for msg in resp.json_stream():
        if not isinstance(msg, dict):
            continue
        if msg.get("error") or msg.get("errorDetail"):
            detail = msg.get("errorDetail") or {}
            ctx.err(f"{msg.get('error') or detail.get('message')}\n")
            status = 1
            continue
        if quiet:
            continue
        if msg.get("stream"):
            ctx.out(str(msg["stream"]))
        elif msg.get("status"):
            prefix = f"{msg['id']}: " if msg.get("id") else ""
            progress = f" {msg['progress']}" if msg.get("progress") else ""
            ctx.out(f"{prefix}{msg['status']}{progress}\n")
    return status


def load(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    if opts.input:
        try:
            fd = os.open(opts.input, os.O_RDONLY)
        except OSError as exc:
            raise CLIError(f"pydocker: open {opts.input}: {(exc.strerror or str(exc)).lower()}", 1) from None
    else:
        if os.isatty(0):
            raise CLIError("pydocker: requested load from stdin, but stdin is empty", 1)
        fd = 0
    try:
        resp = ctx.client.open(
            "POST",
            "/images/load",
            # like Docker: progress bars only for a terminal; "Loaded image" lines always
            {"quiet": opts.quiet or not os.isatty(1)},
            body=_file_chunks(fd),
            headers={"Content-Type": "application/x-tar"},
        )
        try:
            return _print_json_messages(ctx, resp, quiet=False)
        finally:
            resp.close()
    finally:
        if fd != 0:
            os.close(fd)


def save(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    if not opts.output and os.isatty(1):
        raise CLIError("pydocker: cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    resp = ctx.client.open("GET", "/images/get", {"names": list(args)})
    try:
        save_body(resp.chunks(), opts.output)
    finally:
        resp.close()
    return 0


def import_(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    source = args[0]
    params: dict[str, Any] = {"fromSrc": "-"}
    if len(args) == 2:
        repo, tag_name = split_tag(args[1])
        params["repo"] = repo
        if tag_name:
            params["tag"] = tag_name
    if opts.message:
        params["message"] = opts.message
    if opts.change:
        params["changes"] = list(opts.change)
    if opts.platform:
        params["platform"] = opts.platform
    fd: int | None = None
    body: Iterator[bytes] | None = None
    if source == "-":
        body = _file_chunks(0)
    elif "://" in source:
        params["fromSrc"] = source
    else:
        try:
            fd = os.open(source, os.O_RDONLY)
        except OSError as exc:
            raise CLIError(f"pydocker: open {source}: {(exc.strerror or str(exc)).lower()}", 1) from None
        body = _file_chunks(fd)
    try:
        resp = ctx.client.open(
            "POST",
            "/images/create",
            params,
            body=body,
            headers={"Content-Type": "application/x-tar"} if body else None,
        )
        try:
            return _print_json_messages(ctx, resp)
        finally:
            resp.close()
    finally:
        if fd is not None:
            os.close(fd)


def prune(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if opts.all
        else "WARNING! This will remove all dangling images."
    )
    if not opts.force and not confirm(ctx, warning):
        return 0
    filters = parse_filters(opts.filter)
    filters["dangling"] = ["false" if opts.all else "true"]
    report = ctx.client.post("/images/prune", {"filters": encode_filters(filters)}) or {}
    lines = []
    for item in report.get("ImagesDeleted") or []:
        for key in ("Untagged", "Deleted"):
            if item.get(key):
                lines.append(f"{key.lower()}: {item[key]}\n")
    if lines:
        ctx.out("Deleted Images:\n" + "".join(lines) + "\n")
    ctx.out(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    return 0
