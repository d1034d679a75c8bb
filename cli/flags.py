"""A small POSIX/pflag-style option parser with Docker's conventions and help layout.

Why not argparse: Docker's grammar differs in ways users rely on (`-it`, `-e=X`, `--rm=false`,
options after positionals for most verbs but not for `run`/`exec`, `-h` meaning
`--hostname` for `run`), and building only the one command's spec keeps start-up cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "pydocker"


class UsageError(Exception):
    """A command line that cannot be parsed; Docker exits 125 for these."""

    def __init__(
        self,
        message: str,
        spec: Command | None = None,
        status: int = 125,
        brief: bool = False,
        see: bool = False,
    ) -> None:
        super().__init__(message)
        self.spec = spec
        self.status = status
        # Docker's reportError layout (an option's value refused after parsing): no usage line.
        self.brief = brief
        self.see = see  # the hint line starts "See" (cobra's minimum-arguments check) instead of "Run"


class Opt:
    """One option. kind: bool, str, int, float, list (repeatable strings).

    Plain classes rather than dataclasses here and in the other start-up modules: importing
    dataclasses (and with it inspect) costs about 20 ms, a tenth of a command's budget."""

    __slots__ = ("long", "short", "kind", "help", "default", "metavar", "hidden", "_dest")

    def __init__(
        self,
        long: str,
        short: str = "",
        kind: str = "bool",
        help: str = "",
        default: Any = None,
        metavar: str = "",
        hidden: bool = False,
        dest: str = "",  # another option's value this one sets too (--dns-opt is --dns-option)
    ) -> None:
        self._dest = dest
        self.long = long
        self.short = short
        self.kind = kind
        self.help = help
        self.default = default
        self.metavar = metavar
        self.hidden = hidden

    @property
    def dest(self) -> str:
        return self._dest or self.long.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == "list":
            return list(self.default or [])
        if self.default is not None:
            return self.default
        return {"bool": False, "str": "", "int": 0, "float": 0.0}.get(self.kind)


class Command:
    """A verb: its usage line, one-line summary, options and how many arguments it takes."""

    __slots__ = ("name", "usage", "summary", "options", "min_args", "max_args", "interspersed", "aliases")

    def __init__(
        self,
        name: str,  # e.g. "container run"
        usage: str,  # e.g. "[OPTIONS] IMAGE [COMMAND] [ARG...]"
        summary: str,
        options: tuple[Opt, ...] = (),
        min_args: int = 0,
        max_args: int | None = None,
        interspersed: bool = True,  # False: options stop at the first positional (run, exec)
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.usage = usage
        self.summary = summary
        self.options = options
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed
        self.aliases = aliases

    def renamed(self, name: str) -> Command:
        """The same command as invoked under another path ("container ls" for "ps")."""
        return Command(
            name,
            self.usage,
            self.summary,
            self.options,
            self.min_args,
            self.max_args,
            self.interspersed,
            self.aliases,
        )

    def find_long(self, name: str) -> Opt | None:
        for opt in self.options:
            if opt.long == name:
                return opt
        return None

    def find_short(self, letter: str) -> Opt | None:
        for opt in self.options:
            if opt.short == letter:
                return opt
        return None


class Values:
    """Parsed option values by attribute (`opts.detach`), plus which ones the user set."""

    def __init__(self, spec: Command) -> None:
        self._values: dict[str, Any] = {opt.dest: opt.initial() for opt in spec.options}
        self.changed: set[str] = set()
        self.help = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def set(self, dest: str, value: Any) -> None:
        self._values[dest] = value
        self.changed.add(dest)

    def get(self, dest: str) -> Any:
        return self._values[dest]


class Parsed:
    __slots__ = ("opts", "args")

    def __init__(self, opts: Values, args: list[str]) -> None:
        self.opts = opts
        self.args = args


_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def _flag_label(opt: Opt) -> str:
    return f"-{opt.short}, --{opt.long}" if opt.short else f"--{opt.long}"


def _convert(spec: Command, opt: Opt, raw: str) -> Any:
    try:
        if opt.kind == "int":
            return int(raw, 0) if raw.strip().lower().startswith(("0x", "0o", "0b")) else int(raw)
        if opt.kind == "float":
            return float(raw)
        if opt.kind == "bool":
            if raw in _TRUE:
                return True
            if raw in _FALSE:
                return False
            raise ValueError(raw)
    except ValueError:
        what = {"int": "strconv.ParseInt", "float": "strconv.ParseFloat", "bool": "strconv.ParseBool"}[
            opt.kind
        ]
        raise UsageError(
            f'invalid argument "{raw}" for "{_flag_label(opt)}" flag: {what}: parsing "{raw}": invalid syntax',
            spec,
        ) from None
    return raw


def _store(values: Values, spec: Command, opt: Opt, raw: str) -> None:
    if opt.kind == "list":
        current = values.get(opt.dest) if opt.dest in values.changed else []
        values.set(opt.dest, [*current, raw])
    else:
        values.set(opt.dest, _convert(spec, opt, raw))


def parse(spec: Command, argv: list[str]) -> Parsed:
    """Parse argv (the words after the command name) against spec; raise UsageError."""
    values = Values(spec)
    args: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args.extend(argv[i:])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, inline = word[2:].partition("=")
            opt = spec.find_long(name)
            if opt is None:
                if name == "help":
                    values.help = True
                    continue
                raise UsageError(f"unknown flag: --{name}", spec)
            if opt.kind == "bool":
                values.set(opt.dest, _convert(spec, opt, inline) if eq else True)
            elif eq:
                _store(values, spec, opt, inline)
            elif i < len(argv):
                _store(values, spec, opt, argv[i])
                i += 1
            else:
                raise UsageError(f"flag needs an argument: --{name}", spec)
            continue
        if word.startswith("-") and len(word) > 1:
            letters = word[1:]
            j = 0
            while j < len(letters):
                letter = letters[j]
                j += 1
                opt = spec.find_short(letter)
                if opt is None:
                    if letter == "h":
                        values.help = True
                        continue
                    raise UsageError(f"unknown shorthand flag: '{letter}' in -{letters}", spec)
                rest = letters[j:]
                if opt.kind == "bool":
                    if rest.startswith("="):
                        values.set(opt.dest, _convert(spec, opt, rest[1:]))
                        break
                    values.set(opt.dest, True)
                    continue
                if rest:
                    _store(values, spec, opt, rest[1:] if rest.startswith("=") else rest)
                elif i < len(argv):
                    _store(values, spec, opt, argv[i])
                    i += 1
                else:
                    raise UsageError(f"flag needs an argument: '{letter}' in -{letter}", spec)
                break
            continue
        args.append(word)
        if not spec.interspersed:
            args.extend(argv[i:])
            break
    if not values.help:
        _check_count(spec, args)
    return Parsed(values, args)


def _plural(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


def _check_count(spec: Command, args: list[str]) -> None:
    """cobra's argument checks with the Docker CLI's wording (cli/required.go)."""
    full = f"{PROG} {spec.name}"
    lo, hi, n = spec.min_args, spec.max_args, len(args)
    if hi == 0 and args:
        raise UsageError(f"'{full}' accepts no arguments", spec, status=1)
    if hi is not None and hi == lo and n != lo:
        raise UsageError(f"'{full}' requires {_plural(lo)}", spec, status=1)
    if hi is not None and lo > 0 and (n < lo or n > hi):
        raise UsageError(f"'{full}' requires at least {lo} and at most {_plural(hi)}", spec, status=1)
    if n < lo:
        # the one check whose hint says "See" rather than "Run" in the Docker CLI
        raise UsageError(f"'{full}' requires at least {_plural(lo)}", spec, status=1, brief=False, see=True)
    if hi is not None and n > hi:
        raise UsageError(f"'{full}' requires at most {_plural(hi)}", spec, status=1)


def _metavar(opt: Opt) -> str:
    if opt.metavar:
        return opt.metavar
    return {"bool": "", "str": "string", "int": "int", "float": "decimal", "list": "list"}[opt.kind]


def usage_line(spec: Command) -> str:
    return f"Usage:  {PROG} {spec.name} {spec.usage}".rstrip()


def help_text(spec: Command) -> str:
    """The `--help` page: usage, summary, aliases, options table."""
    lines = [usage_line(spec), "", spec.summary]
    if spec.aliases:
        names = dict.fromkeys((spec.name, *spec.aliases))
        lines += ["", "Aliases:", "  " + ", ".join(f"{PROG} {a}" for a in names)]
    rows = []
    for opt in spec.options:
        if opt.hidden:
            continue
        left = (f"-{opt.short}, " if opt.short else "    ") + f"--{opt.long}"
        meta = _metavar(opt)
        if meta:
            left += f" {meta}"
        text = opt.help
        if opt.default not in (None, "", False, 0, [], ()) and opt.kind != "list":
            text += (
                f' (default "{opt.default}")'
                if opt.kind == "str"
                else f" (default {str(opt.default).lower()})"
            )
        elif meta == "map":
            text += " (default map[])"  # how pflag shows an empty map option
        rows.append((left, text))
    rows.append(("    --help", "Print usage"))
    width = max(len(left) for left, _ in rows) + 3
    lines += ["", "Options:"]
    lines += [f"  {left.ljust(width)}{text}".rstrip() for left, text in rows]
    return "\n".join(lines) + "\n"


def error_text(err: UsageError) -> str:
    """Docker's layout for a bad command line: message, usage, where to get help."""
    if err.spec is None:
        return f"{PROG}: {err}\n\nRun '{PROG} --help' for more information\n"
    if err.brief:
        return f"{PROG}: {err}\n\nRun '{PROG} {err.spec.name} --help' for more information\n"
    if err.status == 1:
        return (
            f"{PROG}: {err}\n\n{usage_line(err.spec)}\n\n"
            f"{'See' if err.see else 'Run'} '{PROG} {err.spec.name} --help' for more information\n"
        )
    return f"{err}\n\n{usage_line(err.spec)}\n\nRun '{PROG} {err.spec.name} --help' for more information\n"
