"""`pydocker`: global options, command dispatch, error reporting and exit codes.

Start-up matters (every command is a fresh interpreter): this module imports only `os`
and `sys`; a command's module, and with it http.client and json, is loaded only once the
command is known, and `--version` loads nothing else at all.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs a few ms to import; mypy still honours this name
if TYPE_CHECKING:
    from typing import Any

    from cli.context import Context
    from cli.flags import Command

# command path -> (module, function). Top-level verbs are shortcuts for group commands.
_C = "cli.commands.containers"
_IO = "cli.commands.container_io"
_IM = "cli.commands.images"
_SY = "cli.commands.system"
_DI = "cli.commands.distribution"
_NW = "cli.commands.networks"
_VO = "cli.commands.volumes"
_BU = "cli.commands.build"
_CM = "cli.commands.commit"
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        "attach": (_IO, "attach"),
        "commit": (_CM, "commit"),
        "cp": (_IO, "cp"),
        "create": (_C, "create"),
        "diff": (_IO, "diff"),
        "exec": (_IO, "exec_"),
        "export": (_IO, "export"),
        "inspect": (_C, "container_inspect"),
        "kill": (_C, "kill"),
        "logs": (_IO, "logs"),
        "ls": (_C, "ps"),
        "pause": (_C, "pause"),
        "port": (_C, "port"),
        "prune": (_C, "prune"),
        "rename": (_C, "rename"),
        "restart": (_C, "restart"),
        "rm": (_C, "rm"),
        "run": (_C, "run"),
        "start": (_C, "start"),
        "stats": (_IO, "stats"),
        "stop": (_C, "stop"),
        "top": (_IO, "top"),
        "unpause": (_C, "unpause"),
        "update": (_C, "update"),
        "wait": (_C, "wait"),
    },
    "image": {
        "build": (_BU, "build"),
        "history": (_IM, "history"),
        "import": (_IM, "import_"),
        "inspect": (_IM, "image_inspect"),
        "load": (_IM, "load"),
        "ls": (_IM, "images"),
        "prune": (_IM, "prune"),
        "pull": (_DI, "pull"),
        "push": (_DI, "push"),
        "rm": (_IM, "rmi"),
        "save": (_IM, "save"),
        "tag": (_IM, "tag"),
    },
    "network": {
        "connect": (_NW, "connect"),
        "create": (_NW, "create"),
        "disconnect": (_NW, "disconnect"),
        "inspect": (_NW, "inspect"),
        "ls": (_NW, "ls"),
        "prune": (_NW, "prune"),
        "rm": (_NW, "rm"),
    },
    "volume": {
        "create": (_VO, "create"),
        "inspect": (_VO, "inspect"),
        "ls": (_VO, "ls"),
        "prune": (_VO, "prune"),
        "rm": (_VO, "rm"),
    },
    "builder": {
        "build": (_BU, "build"),
        "prune": (_BU, "prune"),
    },
    "system": {
        "df": (_SY, "df"),
        "events": (_SY, "events"),
        "info": (_SY, "info"),
        "prune": (_SY, "prune"),
    },
}
GROUP_SUMMARIES = {
    "builder": "Manage builds",
    "container": "Manage containers",
    "image": "Manage images",
    "network": "Manage networks",
    "system": "Manage Docker",
    "volume": "Manage volumes",
}
SUBCOMMAND_ALIASES = {
    "container": {"ps": "ls", "list": "ls", "remove": "rm"},
    "image": {"list": "ls", "remove": "rm", "rmi": "rm"},
    "network": {"list": "ls", "remove": "rm"},
    "volume": {"list": "ls", "remove": "rm"},
}
TOP_LEVEL: dict[str, tuple[str, str]] = {
    **{
        verb: GROUPS["container"][verb]
        for verb in (
            "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause", "port",
            "rename", "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "update", "wait",
        )
    },
    "ps": GROUPS["container"]["ls"],
    "images": GROUPS["image"]["ls"],
    "rmi": GROUPS["image"]["rm"],
    "tag": GROUPS["image"]["tag"],
    "load": GROUPS["image"]["load"],
    "save": GROUPS["image"]["save"],
    "import": GROUPS["image"]["import"],
    "history": GROUPS["image"]["history"],
    "build": GROUPS["image"]["build"],
    "events": GROUPS["system"]["events"],
    "info": GROUPS["system"]["info"],
    "inspect": (_C, "inspect"),
    "version": (_SY, "version"),
    "pull": (_DI, "pull"),
    "push": (_DI, "push"),
    "login": (_DI, "login"),
    "logout": (_DI, "logout"),
}  # fmt: skip
COMMON_VERBS = ("run", "exec", "ps", "build", "images", "logs", "inspect", "version", "info")


class GlobalOptions:
    def __init__(self) -> None:
        self.host: str | None = None
        self.config_dir: str | None = None
        self.debug = False
        self.log_level = "info"
        self.tls = False
        self.tlsverify = False
        self.tlscacert: str | None = None
        self.tlscert: str | None = None
        self.tlskey: str | None = None


_GLOBAL_VALUED = {
    "-H": "host", "--host": "host", "--config": "config_dir", "-l": "log_level", "--log-level": "log_level",
    "--tlscacert": "tlscacert", "--tlscert": "tlscert", "--tlskey": "tlskey", "--context": "context", "-c": "context",
}  # fmt: skip
_GLOBAL_BOOL = {"-D": "debug", "--debug": "debug", "--tls": "tls", "--tlsverify": "tlsverify"}

VERSION_TEXT = "pydocker version {version}, build python\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    _ensure_std_fds()
    # The one path that must stay import-free: `pydocker --version` / `-v`.
    if args and args[0] in ("-v", "--version"):
        from cli import __version__

        sys.stdout.write(VERSION_TEXT.format(version=__version__))
        return 0
    try:
        return _main(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`pydocker logs -f x | head`): stop quietly with the status
        # of a process killed by SIGPIPE, as Docker's CLI ends.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _ensure_std_fds() -> None:
    """Started with stdin/stdout/stderr closed (`<&-`), the first socket we open would take
    fd 0 and be read as the user's input: put /dev/null there first."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    # Python left these None for fds that were closed at start-up.
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)


def _usage_error(message: str) -> int:
    sys.stderr.write(f"pydocker: {message}\n\nRun 'pydocker --help' for more information\n")
    return 125


def _main(args: list[str]) -> int:
    gopts = GlobalOptions()
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("-") or word == "-":
            break
        i += 1
        name, eq, inline = word.partition("=")
        if name in _GLOBAL_VALUED:
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                return _usage_error(f"flag needs an argument: {name}")
            dest = _GLOBAL_VALUED[name]
            if dest == "context":
                return _usage_error("contexts are not supported; use -H or DOCKER_HOST")
            setattr(gopts, dest, value)
        elif word[:2] in _GLOBAL_VALUED and len(word) > 2 and not word.startswith("--"):
            setattr(gopts, _GLOBAL_VALUED[word[:2]], word[2:])
        elif name in _GLOBAL_BOOL:
            setattr(gopts, _GLOBAL_BOOL[name], inline not in ("false", "0") if eq else True)
        elif name in ("-v", "--version"):
            from cli import __version__

            sys.stdout.write(VERSION_TEXT.format(version=__version__))
            return 0
        elif name in ("-h", "--help"):
            sys.stdout.write(top_help())
            return 0
        else:
            if word.startswith("--"):
                return _usage_error(f"unknown flag: {name}")
            return _usage_error(f"unknown shorthand flag: '{word[1:2]}' in {word}")
    rest = args[i:]
    if not rest:
        sys.stdout.write(top_help())
        return 0
    verb, rest = rest[0], rest[1:]
    if verb == "help":
        if not rest:
            sys.stdout.write(top_help())
            return 0
        verb, rest = rest[0], [*rest[1:], "--help"]
    if verb in GROUPS:
        sub_table = GROUPS[verb]
        if not rest or rest[0] in ("-h", "--help", "help"):
            sys.stdout.write(group_help(verb))
            return 0
        sub = SUBCOMMAND_ALIASES.get(verb, {}).get(rest[0], rest[0])
        if sub not in sub_table:
            sys.stderr.write(
                f"pydocker: unknown command: pydocker {verb} {rest[0]}\n\n"
                f"Run 'pydocker {verb} --help' for more information\n"
            )
            return 1
        target = sub_table[sub]
        path = f"{verb} {rest[0]}"
        rest = rest[1:]
    elif verb in TOP_LEVEL:
        target = TOP_LEVEL[verb]
        path = verb
    else:
        sys.stderr.write(
            f"pydocker: unknown command: pydocker {verb}\n\nRun 'pydocker --help' for more information\n"
        )
        return 1
    return _dispatch(gopts, path, target, rest)


def _dispatch(gopts: GlobalOptions, path: str, target: tuple[str, str], argv: list[str]) -> int:
    import importlib

    from cli.client import APIError, DaemonUnreachable
    from cli.context import CLIError, Context
    from cli.flags import UsageError, error_text, help_text, parse
    from cli.template import TemplateError

    module = importlib.import_module(target[0])
    spec: Command = module.SPECS[target[1]].renamed(path)
    handler: Any = getattr(module, target[1])
    try:
        parsed = parse(spec, argv)
    except UsageError as exc:
        sys.stderr.write(error_text(exc))
        return exc.status
    if parsed.opts.help:
        sys.stdout.write(help_text(spec))
        return 0
    ctx: Context | None = None
    try:
        ctx = Context.create(gopts)
        return int(handler(ctx, parsed.opts, parsed.args, spec) or 0)
    except UsageError as exc:
        sys.stderr.write(error_text(exc))
        return exc.status
    except CLIError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        return exc.status
    except DaemonUnreachable as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    except APIError as exc:
        sys.stderr.write(f"Error response from daemon: {exc.message}\n")
        return 1
    except TemplateError as exc:
        sys.stderr.write(f"template parsing error: {exc}\n")
        return 1
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        sys.stderr.write(f"pydocker: {exc.strerror or exc}{where}\n")
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line for users, the traceback with -D
        if gopts.debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"pydocker: unexpected error: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        if ctx is not None:
            ctx.close()


def top_help() -> str:
    lines = [
        "Usage:  pydocker [OPTIONS] COMMAND",
        "",
        "A container engine in Python: the client of pydockerd (Docker Engine API).",
        "",
        "Common Commands:",
    ]
    lines += [f"  {verb:<11}{_summary(TOP_LEVEL[verb])}" for verb in COMMON_VERBS]
    lines += ["", "Management Commands:"]
    lines += [f"  {g:<11}{GROUP_SUMMARIES[g]}" for g in GROUPS]
    lines += ["", "Commands:"]
    lines += [
        f"  {verb:<11}{_summary(TOP_LEVEL[verb])}" for verb in sorted(TOP_LEVEL) if verb not in COMMON_VERBS
    ]
    lines += [
        "",
        "Global Options:",
        '      --config string      Location of client config files (default "~/.pydocker")',
        "  -D, --debug              Enable debug mode",
        "  -H, --host string        Daemon socket to connect to (unix:///path or tcp://host:port)",
        '  -l, --log-level string   Set the logging level (default "info")',
        "      --tls                Use TLS; implied by --tlsverify",
        "      --tlscacert string   Trust certs signed only by this CA",
        "      --tlscert string     Path to TLS certificate file",
        "      --tlskey string      Path to TLS key file",
        "      --tlsverify          Use TLS and verify the remote",
        "  -v, --version            Print version information and quit",
        "",
        "Run 'pydocker COMMAND --help' for more information on a command.",
    ]
    return "\n".join(lines) + "\n"


def group_help(group: str) -> str:
    lines = [f"Usage:  pydocker {group} COMMAND", "", GROUP_SUMMARIES[group], "", "Commands:"]
    width = max(11, *(len(sub) for sub in GROUPS[group])) + 1  # cobra's name padding
    lines += [f"  {sub:<{width}}{_summary(target)}" for sub, target in sorted(GROUPS[group].items())]
    lines += ["", f"Run 'pydocker {group} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _summary(target: tuple[str, str]) -> str:
    import importlib

    return str(importlib.import_module(target[0]).SPECS[target[1]].summary)


if __name__ == "__main__":
    sys.exit(main())
