"""`--security-opt` as the Docker CLI handles it before the request: every option needs a value
(but no-new-privileges), `seccomp=FILE` sends the file's compacted JSON, and
`systempaths=unconfined` becomes empty MaskedPaths/ReadonlyPaths instead of an option."""

from __future__ import annotations

import json

from cli.flags import Command, UsageError
from common import gojson

# Names the daemon knows itself: no file is read for them.
_BUILTIN_PROFILES = ("builtin", "unconfined")


def _profile(spec: Command, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UsageError(
            f"opening seccomp profile ({path}) failed: open {path}: {reason}", spec, brief=True
        ) from None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"compacting json for seccomp profile ({path}) failed: {gojson.syntax_error(text, exc)}",
            spec,
            brief=True,
        ) from None
    return gojson.compact(text)


def parse_security_opts(spec: Command, opts: list[str]) -> tuple[list[str], bool]:
    """The options to send, and whether systempaths=unconfined asked for no masked or
    read-only paths."""
    out: list[str] = []
    unconfined_paths = False
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq and key != "no-new-privileges":
            key, eq, value = opt.partition(":")
        if (not eq or not value) and key != "no-new-privileges":
            raise UsageError(
                f"Invalid --security-opt: {json.dumps(opt, ensure_ascii=False)}", spec, brief=True
            )
        if key == "seccomp" and value not in _BUILTIN_PROFILES:
            opt = f"seccomp={_profile(spec, value)}"
        if opt == "systempaths=unconfined":
            unconfined_paths = True
            continue
        out.append(opt)
    return out, unconfined_paths
