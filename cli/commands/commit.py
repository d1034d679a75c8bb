"""`commit`: a new image from a container's changes (POST /commit), the reference
normalized client-side as the Docker client does."""

from __future__ import annotations

from cli.context import CLIError, Context
from cli.flags import Command, Opt, Values

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPECS: dict[str, Command] = {
    "commit": Command(
        "commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
        (
            Opt("author", "a", "str", 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
            Opt("change", "c", "list", "Apply Dockerfile instruction to the created image"),
            Opt("message", "m", "str", "Commit message"),
            Opt("pause", "p", "bool", "Pause container during commit", default=True),
        ),
        min_args=1, max_args=2,
        aliases=("container commit", "commit"),
    ),
}  # fmt: skip


def commit(ctx: Context, opts: Values, args: list[str], spec: Command) -> int:
    from cli.reference import ReferenceError, parse_normalized_named, tag_name_only

    repo = tag = ""
    if len(args) == 2:
        try:
            ref = parse_normalized_named(args[1])
        except ReferenceError as exc:
            raise CLIError(str(exc), 1) from None
        if ref.digest:
            raise CLIError("refusing to create a tag with a digest reference", 1)
        ref = tag_name_only(ref)
        repo, tag = ref.name, ref.tag
    # The Docker client's query (url.Values: keys sorted, the empty ones sent too).
    params: dict[str, Any] = {"author": opts.author}
    if opts.change:
        params["changes"] = list(opts.change)
    params.update({"comment": opts.message, "container": args[0]})
    if not opts.pause:
        params["pause"] = "0"
    params.update({"repo": repo, "tag": tag})
    answer = ctx.client.post("/commit", params) or {}
    ctx.out(f"{answer.get('Id', '')}\n")
    return 0
