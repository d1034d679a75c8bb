"""A small parser for runc's command-line shape: global flags, a verb, verb flags, positionals.

argparse costs more to import and build than a short-lived container takes to run, so
pyrunc uses this table-driven parser instead. It accepts what urfave/cli (runc's parser)
accepts: `--flag value`, `--flag=value`, `-f value`, single-dash long flags (`-root`),
bundled short booleans (`-dt`), and flags after positionals until `--` or the verb's
command tail begins.
"""

from __future__ import annotations

from runtime.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Flag:
    __slots__ = ("names", "dest", "takes_value", "repeat", "default", "help", "convert")

    def __init__(
        self,
        names: str,
        help: str = "",
        takes_value: bool = True,
        repeat: bool = False,
        default: Any = None,
        convert: Any = None,
    ) -> None:
        self.names = names.split(",")
        self.dest = self.names[0].lstrip("-").replace("-", "_")
        self.takes_value = takes_value
        self.repeat = repeat
        self.default: Any = (
            default if default is not None else ([] if repeat else (None if takes_value else False))
        )
        self.help = help
        self.convert = convert


def switch(names: str, help: str = "") -> Flag:
    return Flag(names, help, takes_value=False)


class Verb:
    __slots__ = ("name", "help", "flags", "positionals", "tail")

    def __init__(
        self, name: str, help: str, flags: list[Flag], positionals: list[str], tail: str | None = None
    ) -> None:
        self.name = name
        self.help = help
        self.flags = flags
        # A positional ending in "?" is optional; `tail` collects everything after the positionals.
        self.positionals = positionals
        self.tail = tail


class Namespace:
    """Parsed values as attributes, like argparse's namespace."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def _lookup(flags: list[Flag], token: str) -> Flag | None:
    # runc (Go flag parsing) treats -root and --root alike.
    stripped = token.lstrip("-")
    for flag in flags:
        for name in flag.names:
            if name.lstrip("-") == stripped:
                return flag
    return None


def _store(values: dict[str, Any], flag: Flag, raw: Any, where: str) -> None:
    if flag.convert is not None and raw is not None:
        try:
            raw = flag.convert(raw)
        except ValueError:
            raise PyruncError(f"{where}: invalid value {raw!r} for {flag.names[0]}") from None
    if flag.repeat:
        values[flag.dest].append(raw)
    else:
        values[flag.dest] = raw


def parse_flags(
    args: list[str], flags: list[Flag], where: str, stop_at_positional: bool
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Return (values, positionals, rest). With stop_at_positional, parsing ends at the first
    non-flag and everything from there on is `rest` (the global-flags case and exec's command)."""
    values: dict[str, Any] = {f.dest: (list(f.default) if f.repeat else f.default) for f in flags}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return values, positionals, args[i + 1 :]
        if token.startswith("-") and token != "-":
            name, eq, inline = token.partition("=")
            flag = _lookup(flags, name)
            if flag is None and not token.startswith("--") and len(token) > 2 and not eq:
                # Bundled short switches such as -dt.
                bundled = [_lookup(flags, "-" + ch) for ch in token[1:]]
                if all(f is not None and not f.takes_value for f in bundled):
                    for f in bundled:
                        assert f is not None
                        values[f.dest] = True
                    i += 1
                    continue
            if flag is None:
                raise PyruncError(f"{where}: flag provided but not defined: {token}")
            if flag.takes_value:
                if eq:
                    raw = inline
                elif i + 1 < len(args):
                    i += 1
                    raw = args[i]
                else:
                    raise PyruncError(f"{where}: flag needs an argument: {name}")
                _store(values, flag, raw, where)
            else:
                if eq and inline.lower() not in ("true", "false", "1", "0"):
                    raise PyruncError(f"{where}: invalid boolean value {inline!r} for {name}")
                values[flag.dest] = (inline.lower() in ("true", "1")) if eq else True
            i += 1
            continue
        if stop_at_positional:
            return values, positionals, args[i:]
        positionals.append(token)
        i += 1
    return values, positionals, []


def parse_verb(verb: Verb, args: list[str]) -> Namespace:
    where = f"pyrunc {verb.name}"
    required = [p for p in verb.positionals if not p.endswith("?")]
    if verb.tail is not None:
        # Flags, then the positionals, then a command whose own flags must not be parsed (exec, ps).
        values, positionals, rest = parse_flags(args, verb.flags, where, stop_at_positional=True)
        fixed = len(verb.positionals)
        if not rest and not positionals:
            raise PyruncError(
                f"{where}: missing required argument: {required[0] if required else 'arguments'}"
            )
        # Flags may also appear between the id and the command (`exec ID --tty sh`) only before the id.
        positionals, tail = rest[:fixed], rest[fixed:]
    else:
        values, positionals, tail = parse_flags(args, verb.flags, where, stop_at_positional=False)
        if tail:
            positionals += tail
            tail = []
    if len(positionals) < len(required):
        missing = required[len(positionals)]
        raise PyruncError(f"{where}: missing required argument: {missing}")
    if len(positionals) > len(verb.positionals):
        raise PyruncError(f"{where}: unexpected arguments: {' '.join(positionals[len(verb.positionals) :])}")
    for i, name in enumerate(verb.positionals):
        values[name.rstrip("?")] = positionals[i] if i < len(positionals) else None
    if verb.tail is not None:
        values[verb.tail] = tail
    return Namespace(**values)


def usage(prog: str, globals_: list[Flag], verbs: list[Verb]) -> str:
    lines = [f"usage: {prog} [global flags] COMMAND [flags] [arguments]", "", "commands:"]
    lines += [f"  {v.name:<10} {v.help}" for v in verbs]
    lines += ["", "global flags:"]
    lines += [f"  {', '.join(f.names):<24} {f.help}" for f in globals_]
    return "\n".join(lines)


def verb_usage(prog: str, verb: Verb) -> str:
    pos = " ".join(p if not p.endswith("?") else f"[{p[:-1]}]" for p in verb.positionals)
    tail = f" {verb.tail.upper()}..." if verb.tail else ""
    lines = [f"usage: {prog} {verb.name} [flags] {pos}{tail}", "", verb.help, "", "flags:"]
    lines += [f"  {', '.join(f.names):<24} {f.help}" for f in verb.flags]
    return "\n".join(lines)
