"""A Dockerfile's text to stages of typed instructions, with dockerd's refusals.

The grammar is Docker's own: the `dockerfile` package (PyPI) wraps moby/buildkit's Go parser
(directives, line continuations, the escape character, JSON and shell forms, heredocs). What
the Go parser itself refuses is dockerd's "failed to parse Dockerfile: ..."; what the
instruction checks here refuse (argument counts, flags, stage names, an unknown instruction)
is "dockerfile parse error line N: ...", both 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from dockerd.builder import gotext
from dockerd.builder import instructions as ins
from dockerd.builder.errors import BuildRequestError

if TYPE_CHECKING:
    # Loaded by the first parse: the Go runtime in its shared object is 3.3 MiB resident, which
    # an idle daemon need not hold.
    import dockerfile as goparser

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_HEREDOC_ONLY = re.compile(r"""^<<-?(["']?)([A-Za-z0-9_]+)\1\s*$""")
# BuildKit-only flags the classic builder names when refusing them.
_BUILDKIT_ONLY = {"mount", "security", "link", "parents", "exclude", "checksum", "keep-git-dir"}


class _LineError(Exception):
    pass


def parse_dockerfile(text: str, name: str = "Dockerfile") -> ins.Dockerfile:
    """Parse TEXT; BuildRequestError (400) with dockerd's message when it is no Dockerfile."""
    if not text.strip():
        raise BuildRequestError(f"the Dockerfile ({name}) cannot be empty")
    import dockerfile as goparser

    try:
        commands = goparser.parse_string(text)
    except goparser.GoParseError as exc:
        raise BuildRequestError(f"failed to parse Dockerfile: {exc}") from None
    if not commands:
        raise BuildRequestError(f"file with no instructions: {name}")
    escape = _escape_directive(text)
    meta_args: list[ins.Arg] = []
    stages: list[ins.Stage] = []
    for command in commands:
        try:
            instruction = to_instruction(command)
        except _LineError as exc:
            raise BuildRequestError(f"dockerfile parse error line {command.start_line}: {exc}") from None
        if isinstance(instruction, ins.From):
            stages.append(ins.Stage(len(stages), instruction))
        elif not stages:
            if not isinstance(instruction, ins.Arg):
                raise BuildRequestError("no build stage in current context")
            meta_args.append(instruction)
        else:
            stages[-1].commands.append(instruction)
    if not stages:
        raise BuildRequestError("no build stage in current context")
    return ins.Dockerfile(meta_args, stages, escape)


def _escape_directive(text: str) -> str:
    for line in text.splitlines():
        match = _DIRECTIVE.match(line)
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            return match.group(2)
    return "\\"


def _flags(raw: Sequence[str], allowed: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw:
        name, eq, value = item[2:].partition("=")
        if name not in allowed:
            if name in _BUILDKIT_ONLY:
                raise _LineError(
                    f"the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                    "to learn how to build images with BuildKit enabled"
                )
            raise _LineError(f"Unknown flag: {name}")
        if name in out:
            raise _LineError(f"Duplicate flag specified: {name}")
        if not eq:
            raise _LineError(f"Missing a value on flag: {name}")
        out[name] = value
    return out


def _heredocs(command: goparser.Command) -> tuple[ins.Heredoc, ...]:
    return tuple(ins.Heredoc(h.name, h.content) for h in command.heredocs)


def _pairs(values: Sequence[str], what: str) -> tuple[tuple[str, str], ...]:
    if not values:
        raise _LineError(f"{what} requires at least one argument")
    if len(values) % 2:
        raise _LineError(f"{what} must have two arguments")
    pairs = tuple((values[i], values[i + 1]) for i in range(0, len(values), 2))
    if any(not key for key, _ in pairs):
        raise _LineError(f"{what} names can not be blank")
    return pairs


def _one(values: Sequence[str], what: str) -> str:
    if len(values) != 1:
        raise _LineError(f"{what} requires exactly one argument")
    return values[0]


def _from(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    flags = _flags(c.flags, ("platform",), "FROM")
    value = c.value
    if len(value) not in (1, 3) or (len(value) == 3 and value[1].lower() != "as"):
        raise _LineError("FROM requires either one or three arguments")
    name = value[2].lower() if len(value) == 3 else ""
    if name and not _STAGE_NAME.match(name):
        raise _LineError(
            f"invalid name for build stage: {gotext.quote(value[2])}, name can't start with a number or contain symbols"
        )
    return ins.From(line, original, value[0], name, flags.get("platform", ""))


def _arg(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    if not c.value:
        raise _LineError("ARG requires exactly one argument")
    args: list[tuple[str, str | None]] = []
    for word in c.value:
        key, eq, default = word.partition("=")
        if not key:
            raise _LineError("ARG names can not be blank")
        args.append((key, default if eq else None))
    return ins.Arg(line, original, tuple(args))


def _run(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    flags = _flags(c.flags, ("network",), "RUN")
    network = flags.get("network", "")
    if network and network not in ("default", "none", "host"):
        raise _LineError(f"unsupported network mode {gotext.quote(network)}")
    if not c.value and not c.heredocs:
        raise _LineError("RUN requires at least one argument")
    return ins.Run(line, original, tuple(c.value), bool(c.json), _heredocs(c), network)


def _copy(c: goparser.Command, line: int, original: str, add: bool) -> ins.Instruction:
    what = "ADD" if add else "COPY"
    allowed = ("chown", "chmod") if add else ("from", "chown", "chmod")
    flags = _flags(c.flags, allowed, what)
    if len(c.value) < 2:
        raise _LineError(f"{what} requires at least two arguments")
    chmod = flags.get("chmod", "")
    if chmod and not re.fullmatch(r"[0-7]{1,4}", chmod):
        raise _LineError(f"invalid chmod parameter {chmod}: only octal modes are supported")
    return ins.Copy(
        line,
        original,
        tuple(c.value[:-1]),
        c.value[-1],
        add,
        flags.get("from", ""),
        flags.get("chown", ""),
        chmod,
        _heredocs(c),
    )


def _command(c: goparser.Command, line: int, original: str, entrypoint: bool) -> ins.Instruction:
    return ins.Command(line, original, tuple(c.value), bool(c.json), entrypoint)


def _healthcheck(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    flags = _flags(
        c.flags, ("interval", "timeout", "start-period", "start-interval", "retries"), "HEALTHCHECK"
    )
    if not c.value:
        raise _LineError("HEALTHCHECK requires at least one argument")
    kind = c.value[0].upper()
    if kind == "NONE":
        if len(c.value) > 1 or flags:
            raise _LineError("HEALTHCHECK NONE takes no arguments")
        return ins.Healthcheck(line, original, ("NONE",))
    if kind != "CMD":
        raise _LineError(f"Unknown type {gotext.quote(kind)} in HEALTHCHECK (try CMD)")
    args = tuple(c.value[1:])
    test = ("CMD", *args) if c.json else ("CMD-SHELL", " ".join(args))
    durations: dict[str, int] = {}
    for flag in ("interval", "timeout", "start-period", "start-interval"):
        if flag in flags:
            try:
                value = gotext.parse_duration(flags[flag])
            except ValueError as exc:
                raise _LineError(str(exc)) from None
            if value and value < 10**6:
                raise _LineError(f"Interval {flag} cannot be less than 1ms")
            if value < 0:
                raise _LineError(f"Interval {flag} cannot be negative")
            durations[flag] = value
    retries = 0
    if "retries" in flags:
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise _LineError(
                f"strconv.ParseInt: parsing {gotext.quote(flags['retries'])}: invalid syntax"
            ) from None
        if retries < 0:
            raise _LineError("--retries cannot be negative")
    return ins.Healthcheck(
        line, original, test, durations.get("interval", 0), durations.get("timeout", 0),
        durations.get("start-period", 0), durations.get("start-interval", 0), retries,
    )  # fmt: skip


def _onbuild(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    expression = original.split(None, 1)[1] if len(original.split(None, 1)) > 1 else ""
    if not expression.strip():
        raise _LineError("ONBUILD requires at least one argument")
    trigger = (c.sub_cmd or expression.split(None, 1)[0]).upper()
    if trigger in ("ONBUILD", "FROM", "MAINTAINER"):
        raise _LineError(f"{trigger} isn't allowed as an ONBUILD trigger")
    return ins.OnBuild(line, original, expression.strip())


def _shell(c: goparser.Command, line: int, original: str) -> ins.Instruction:
    if not c.json:
        raise _LineError("SHELL requires the arguments to be in JSON form")
    if not c.value:
        raise _LineError("SHELL requires at least one argument")
    return ins.Shell(line, original, tuple(c.value))


def _list(values: Sequence[str], what: str) -> tuple[str, ...]:
    if not values:
        raise _LineError(f"{what} requires at least one argument")
    return tuple(values)


_Builder = Callable[["goparser.Command", int, str], ins.Instruction]
_TABLE: dict[str, _Builder] = {
    "FROM": _from,
    "ARG": _arg,
    "ENV": lambda c, line, o: ins.Env(line, o, _pairs(c.value, "ENV")),
    "LABEL": lambda c, line, o: ins.Label(line, o, _pairs(c.value, "LABEL")),
    "RUN": _run,
    "COPY": lambda c, line, o: _copy(c, line, o, add=False),
    "ADD": lambda c, line, o: _copy(c, line, o, add=True),
    "WORKDIR": lambda c, line, o: ins.Workdir(line, o, _one(c.value, "WORKDIR")),
    "USER": lambda c, line, o: ins.User(line, o, _one(c.value, "USER")),
    "EXPOSE": lambda c, line, o: ins.Expose(line, o, _list(c.value, "EXPOSE")),
    "VOLUME": lambda c, line, o: ins.Volume(line, o, _list(c.value, "VOLUME")),
    "CMD": lambda c, line, o: _command(c, line, o, entrypoint=False),
    "ENTRYPOINT": lambda c, line, o: _command(c, line, o, entrypoint=True),
    "HEALTHCHECK": _healthcheck,
    "SHELL": _shell,
    "STOPSIGNAL": lambda c, line, o: ins.StopSignal(line, o, _one(c.value, "STOPSIGNAL")),
    "ONBUILD": _onbuild,
    "MAINTAINER": lambda c, line, o: ins.Maintainer(line, o, _one(c.value, "MAINTAINER")),
}


def to_instruction(command: goparser.Command) -> ins.Instruction:
    """One parsed command as an instruction; _LineError when dockerd would refuse it."""
    keyword = command.cmd.upper()
    builder = _TABLE.get(keyword)
    if builder is None:
        raise _LineError(f"unknown instruction: {command.cmd.upper()}")
    if keyword not in ("RUN", "COPY", "ADD", "FROM", "HEALTHCHECK") and command.flags:
        _flags(command.flags, (), keyword)
    return builder(command, command.start_line, command.original)


def parse_line(text: str, line: int = 0) -> ins.Instruction:
    """One instruction (an ONBUILD trigger, a commit's --change); BuildFailed-style errors as
    BuildRequestError with dockerd's wording."""
    import dockerfile as goparser

    try:
        commands = goparser.parse_string(text + "\n")
    except goparser.GoParseError as exc:
        raise BuildRequestError(f"failed to parse Dockerfile: {exc}") from None
    if len(commands) != 1:
        raise BuildRequestError(f"expected one instruction, got {len(commands)}: {text!r}")
    try:
        instruction = to_instruction(commands[0])
    except _LineError as exc:
        raise BuildRequestError(str(exc)) from None
    return type(instruction)(**{**instruction.__dict__, "line": line})


def heredoc_script(run: ins.Run) -> str:
    """The shell script a shell-form RUN with heredocs stands for: a command that is only a
    heredoc runs the heredoc's text (BuildKit's rule); otherwise the shell gets the command
    line and the heredoc bodies, and does the redirection itself."""
    first = run.command[0] if run.command else ""
    if len(run.heredocs) == 1 and _HEREDOC_ONLY.match(first.strip()):
        return run.heredocs[0].content
    body = "".join(h.content + h.name + "\n" for h in run.heredocs)
    return f"{first}\n{body}"
