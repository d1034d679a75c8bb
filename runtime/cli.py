"""pyrunc's command line: runc's global flags and verbs, dispatched to one module per verb.

Verb modules are imported only when their verb runs: `pyrunc run` of a short-lived
container is dominated by interpreter start-up, so every import counts.
"""

from __future__ import annotations

import os
import sys

from runtime.argv import Flag, Namespace, Verb, parse_flags, parse_verb, switch, usage, verb_usage
from runtime.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

VERSION = "0.1.0"
DEFAULT_ROOT = "/run/pyrunc"

GLOBAL_FLAGS = [
    Flag("--root", "directory for the containers' state (default /run/pyrunc)", default=DEFAULT_ROOT),
    Flag("--log", "log file (default: stderr only)"),
    Flag("--log-format", "text or json", default="text"),
    switch("--debug", "log debug messages"),
    switch("--systemd-cgroup", "refused at create and run: pyrunc drives cgroupfs directly"),
    Flag("--rootless", "accepted for compatibility (auto|true|false)", default="auto"),
    Flag("--criu", "accepted for compatibility; checkpointing is not supported"),
    switch("--version,-v", "print the version"),
    switch("--help,-h", "show help"),
]

_CREATE_FLAGS = [
    Flag("--bundle,-b", "path to the bundle directory", default="."),
    Flag("--pid-file", "write the init's host pid here"),
    Flag("--console-socket", "unix socket that receives the pty master"),
    switch("--no-pivot", "use MS_MOVE and chroot instead of pivot_root"),
    switch("--no-new-keyring", "do not create a session keyring"),
    Flag("--preserve-fds", "pass N extra fds (3..3+N-1) into the container", default=0, convert=int),
    switch("--help,-h", "show help"),
]
_HELP = switch("--help,-h", "show help")
_UPDATE_NAMES = (
    "memory", "memory-reservation", "memory-swap", "kernel-memory", "cpu-shares", "cpu-quota", "cpu-period",
    "cpu-rt-runtime", "cpu-rt-period", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight",
)  # fmt: skip

VERBS = [
    Verb("create", "create a container (its init waits for `start`)", _CREATE_FLAGS, ["id"]),
    Verb(
        "run",
        "create and start a container, wait for it unless --detach",
        [
            *_CREATE_FLAGS,
            switch("--detach,-d", "do not wait"),
            switch("--keep", "keep the container after it exits"),
        ],
        ["id"],
    ),
    Verb("start", "start the user process of a created container", [_HELP], ["id"]),
    Verb("state", "print the state of a container as JSON", [_HELP], ["id"]),
    Verb(
        "kill",
        "send a signal to the container's init (default SIGTERM)",
        [switch("--all,-a", "signal every process"), _HELP],
        ["id", "signal?"],
    ),
    Verb(
        "delete",
        "delete a container and everything it holds",
        [switch("--force,-f", "kill it first if it runs"), _HELP],
        ["id"],
    ),
    Verb(
        "exec",
        "run a process inside a running container",
        [
            Flag("--process,-p", "process.json: the OCI process to run"),
            switch("--tty,-t", "allocate a pseudo-TTY"),
            switch("--detach,-d", "do not wait for the process"),
            Flag("--pid-file", "write the process's host pid here"),
            Flag("--console-socket", "unix socket that receives the pty master"),
            Flag("--cwd", "working directory"),
            Flag("--env,-e", "add an environment variable", repeat=True),
            Flag("--user,-u", "UID[:GID]"),
            Flag("--additional-gids,-g", "additional gid", repeat=True, convert=int),
            Flag("--cap,-c", "add a capability", repeat=True),
            switch("--no-new-privs", "set no_new_privs"),
            Flag("--apparmor", "accepted; AppArmor is not supported"),
            Flag("--process-label", "accepted; SELinux is not supported"),
            Flag("--preserve-fds", "pass N extra fds", default=0, convert=int),
            switch("--ignore-paused", "exec even into a paused container"),
            Flag("--cgroup", "accepted for compatibility", repeat=True),
            _HELP,
        ],
        ["id"],
        tail="command",
    ),
    Verb("pause", "freeze every process of a container", [_HELP], ["id"]),
    Verb("resume", "thaw a paused container", [_HELP], ["id"]),
    Verb(
        "ps",
        "list the processes of a container",
        [Flag("--format,-f", "table or json", default="table"), _HELP],
        ["id"],
        tail="ps_args",
    ),
    Verb(
        "list",
        "list containers",
        [Flag("--format,-f", "table or json", default="table"), switch("--quiet,-q", "ids only"), _HELP],
        [],
    ),
    Verb(
        "events",
        "print cgroup statistics and OOM notices",
        [
            switch("--stats", "print statistics once and exit"),
            Flag("--interval", "stats interval", default="5s"),
            _HELP,
        ],
        ["id"],
    ),
    Verb(
        "update",
        "update a container's resource limits",
        [
            Flag("--resources,-r", "LinuxResources JSON file, - for stdin"),
            *[Flag(f"--{n}") for n in _UPDATE_NAMES],
            _HELP,
        ],
        ["id"],
    ),
    Verb(
        "spec",
        "write a default config.json",
        [Flag("--bundle,-b", "directory to write it in"), switch("--rootless", "a rootless spec"), _HELP],
        [],
    ),
    Verb("features", "print the features this runtime supports, as JSON", [_HELP], []),
]


def _systemd_refusal(bundle: str) -> str:
    """Why --systemd-cgroup cannot create a container, in runc's order and words: a cgroupsPath
    not of the systemd driver's form, then systemd not being the init (runc, like sd_booted(3),
    looks for /run/systemd/system); otherwise that pyrunc has no systemd driver. Other verbs
    ignore the flag: a container's state records its cgroups."""
    path = _cgroups_path(bundle)
    if path and (path.startswith("/") or path.count(":") != 2):
        return f'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, got "{path}" instead'
    if not os.path.isdir("/run/systemd/system"):
        return "systemd not running on this host, cannot use systemd cgroups manager"
    return "--systemd-cgroup is not supported: pyrunc manages cgroups through cgroupfs"


def _cgroups_path(bundle: str) -> str:
    from common import fastjson

    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            linux = fastjson.loads(f.read()).get("linux") or {}
        return str(linux.get("cgroupsPath") or "")
    except (OSError, ValueError, AttributeError):
        return ""  # create itself says what is wrong with the bundle


def parse(argv: list[str]) -> Namespace:
    values, _, rest = parse_flags(argv, GLOBAL_FLAGS, "pyrunc", stop_at_positional=True)
    values["verb"] = None
    if rest:
        name = rest[0]
        verb = next((v for v in VERBS if v.name == name), None)
        if verb is None:
            raise PyruncError(f"pyrunc: no such command: {name}")
        if "--help" in rest[1:] or "-h" in rest[1:2]:
            values["verb_help"] = verb_usage("pyrunc", verb)
        else:
            values.update(vars(parse_verb(verb, rest[1:])))
        values["verb"] = name
    return Namespace(**values)


def _dispatch(args: Any) -> int:
    root = os.path.abspath(args.root)
    command = args.verb
    if getattr(args, "format", None) not in (None, "table", "json"):
        raise PyruncError(f"invalid --format {args.format!r}: want table or json")
    if command in ("create", "run"):
        from runtime.container_create import CreateOptions

        opts = CreateOptions(
            root=root,
            container_id=args.id,
            bundle=args.bundle,
            pid_file=args.pid_file,
            console_socket=args.console_socket,
            no_pivot=args.no_pivot,
            preserve_fds=args.preserve_fds,
            new_keyring=not args.no_new_keyring,
        )
        if command == "create":
            from runtime.container_create import create

            create(opts)
            return 0
        from runtime.container_run import run

        return run(opts, detach=args.detach, keep=args.keep)
    if command == "start":
        from runtime.container_start import start

        start(root, args.id)
    elif command == "state":
        from runtime.container_query import state

        state(root, args.id)
    elif command == "kill":
        from runtime import signals
        from runtime.container_kill import kill

        kill(root, args.id, signals.parse(args.signal or "SIGTERM"), args.all)
    elif command == "delete":
        from runtime.container_delete import delete

        delete(root, args.id, args.force)
    elif command == "exec":
        from runtime.container_exec import ExecOptions, exec_process

        return exec_process(
            ExecOptions(
                root=root,
                container_id=args.id,
                process_file=args.process,
                args=args.command,
                tty=args.tty,
                detach=args.detach,
                pid_file=args.pid_file,
                console_socket=args.console_socket,
                cwd=args.cwd,
                env=args.env,
                user=args.user,
                additional_gids=args.additional_gids,
                caps=args.cap,
                no_new_privs=args.no_new_privs,
                preserve_fds=args.preserve_fds,
                ignore_paused=args.ignore_paused,
            )
        )
    elif command in ("pause", "resume"):
        from runtime import container_pause

        getattr(container_pause, command)(root, args.id)
    elif command == "ps":
        from runtime.container_query import ps

        ps(root, args.id, args.format, [a for a in args.ps_args if a != "--"])
    elif command == "list":
        from runtime.container_query import list_containers

        list_containers(root, args.format, args.quiet)
    elif command == "events":
        import gc

        from runtime.container_events import events, parse_duration

        gc.enable()  # the launcher turns it off for short-lived verbs; this one may run for days

        events(root, args.id, args.stats, parse_duration(args.interval))
    elif command == "update":
        from runtime.container_update import update

        update(
            root,
            args.id,
            args.resources,
            {n.replace("-", "_"): getattr(args, n.replace("-", "_")) for n in _UPDATE_NAMES},
        )
    elif command == "spec":
        from runtime.container_spec import write_spec

        write_spec(args.bundle or ".", args.rootless)
    elif command == "features":
        from runtime.container_spec import features

        features()
    return 0


# What the verbs a shim runs (create, start, exec, kill, delete, pause, resume) import, including
# what they load late (a terminal, seccomp, the v1/v2 cgroup managers): a process that forks pyrunc
# instead of exec'ing it (pycontainerd-shim's template) imports these ahead, so that every fork
# finds them loaded (and shares them copy-on-write). Not `subprocess`, for hooks only (it brings
# `re`, `threading`, `locale`: 1 MiB more in every shim); a container with hooks imports it then.
FORK_PRELOAD = (
    "runtime.container_create",
    "runtime.container_start",
    "runtime.container_exec",
    "runtime.container_kill",
    "runtime.container_delete",
    "runtime.container_pause",
    "runtime.signals",
    "runtime.linux.console",
    "runtime.linux.seccomp",
    "runtime.linux.cgroups.devices",
    "runtime.linux.cgroups.manager",
    "runtime.linux.cgroups.v1",
    "runtime.linux.cgroups.v2",
)


def preload() -> None:
    """Import FORK_PRELOAD (see there)."""
    for name in FORK_PRELOAD:
        __import__(name)


def _version() -> str:
    from runtime.state import OCI_VERSION

    try:
        from runtime.linux import seccomp

        libseccomp = seccomp.libseccomp_version()
    except Exception:  # noqa: BLE001 - libseccomp missing is reported, not fatal
        libseccomp = "not available"
    return (
        f"pyrunc version {VERSION}\ncommit: pydocker-{VERSION}\nspec: {OCI_VERSION}\n"
        f"python: {sys.version.split()[0]}\nlibseccomp: {libseccomp}"
    )


def _verb_failure(verb: str, message: str) -> str:
    """runc 1.1's words for a container process that create or run could not start ("runc create
    failed: unable to start container process: ..."): callers quote them (dockerd's messages)."""
    if verb in ("create", "run") and message.startswith("unable to start container process: "):
        return f"runc {verb} failed: {message}"
    return message


def main(argv: list[str] | None = None) -> int:
    from runtime.linux import log

    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except PyruncError as exc:
        log.error(str(exc))
        return 1
    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        print(_version())
        return 0
    if args.verb is None or args.help:
        print(usage("pyrunc", GLOBAL_FLAGS, VERBS))
        return 0
    if getattr(args, "verb_help", None):
        print(args.verb_help)
        return 0
    try:
        if args.systemd_cgroup and args.verb in ("create", "run"):
            raise PyruncError(_systemd_refusal(getattr(args, "bundle", ".") or "."))
        if args.log_format not in ("text", "json"):
            raise PyruncError(f"invalid --log-format {args.log_format!r}: want text or json")
        return _dispatch(args)
    except PyruncError as exc:
        log.error(_verb_failure(args.verb, str(exc)))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the user gets one line; --debug logs the traceback
        if args.debug:
            import traceback

            log.debug(traceback.format_exc())
        log.error(f"internal error: {exc.__class__.__name__}: {exc}")
        return 1


def run_and_exit(argv: list[str] | None = None) -> NoReturn:
    """The launcher's entry point: main(), then exit at once.

    pyrunc lives for one verb; tearing the interpreter down (module by module, a last garbage
    collection) would only cost time. Everything it writes goes through os.write or closed files,
    but what print() buffered, which is flushed here.

    ARGV (without the program's name) is for a process that forks pyrunc instead of exec'ing it
    (pycontainerd-shim, shim/runtimefork.py): the child calls this as the launcher would have."""
    code = main(argv)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, as at interpreter exit
            code = code or 120
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
