"""pyrunc's command line: runc's global flags and verbs, dispatched to one module per verb.

Verb modules are imported only when their verb runs: `pyrunc run` of a short-lived
container is dominated by interpreter start-up, so every import counts.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, NoReturn

from runtime.errors import PyruncError

VERSION = "0.1.0"
DEFAULT_ROOT = "/run/pyrunc"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 1, like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyrunc", description="An OCI runtime with runc's command line, in Python.")
    p.add_argument("--root", default=DEFAULT_ROOT, help="directory for the containers' state (default %(default)s)")
    p.add_argument("--log", default=None, help="log file (default: stderr only)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="not supported: pyrunc drives cgroupfs directly")
    p.add_argument("--rootless", default="auto", help="accepted for compatibility (auto|true|false)")
    p.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="verb", parser_class=_Parser)

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text)

    c = cmd("create", "create a container (its init waits for `start`)")
    _create_flags(c)
    c = cmd("run", "create and start a container, wait for it unless --detach")
    _create_flags(c)
    c.add_argument("-d", "--detach", action="store_true")
    c.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    c.add_argument("--no-subreaper", action="store_true", help=argparse.SUPPRESS)
    c = cmd("start", "start the user process of a created container")
    c.add_argument("id")
    c = cmd("state", "print the state of a container as JSON")
    c.add_argument("id")
    c = cmd("kill", "send a signal to the container's init (default SIGTERM)")
    c.add_argument("-a", "--all", action="store_true", help="signal every process of the container")
    c.add_argument("id")
    c.add_argument("signal", nargs="?", default="SIGTERM")
    c = cmd("delete", "delete a container and everything it holds")
    c.add_argument("-f", "--force", action="store_true", help="kill it first if it still runs")
    c.add_argument("id")
    c = cmd("exec", "run a process inside a running container")
    c.add_argument("--process", "-p", default=None, help="process.json: the OCI process to run")
    c.add_argument("-t", "--tty", action="store_true")
    c.add_argument("-d", "--detach", action="store_true")
    c.add_argument("--pid-file", default=None)
    c.add_argument("--console-socket", default=None)
    c.add_argument("--cwd", default=None)
    c.add_argument("-e", "--env", action="append", default=[])
    c.add_argument("-u", "--user", default=None, help="UID[:GID]")
    c.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    c.add_argument("-c", "--cap", action="append", default=[])
    c.add_argument("--no-new-privs", action="store_true")
    c.add_argument("--apparmor", default=None)
    c.add_argument("--process-label", default=None)
    c.add_argument("--preserve-fds", type=int, default=0)
    c.add_argument("--ignore-paused", action="store_true")
    c.add_argument("--cgroup", action="append", default=[], help=argparse.SUPPRESS)
    c.add_argument("id")
    c.add_argument("command", nargs=argparse.REMAINDER)
    for name, text in (("pause", "freeze every process of a container"), ("resume", "thaw a paused container")):
        c = cmd(name, text)
        c.add_argument("id")
    c = cmd("ps", "list the processes of a container")
    c.add_argument("-f", "--format", default="table", choices=["table", "json"])
    c.add_argument("id")
    c.add_argument("ps_args", nargs=argparse.REMAINDER)
    c = cmd("list", "list containers")
    c.add_argument("-f", "--format", default="table", choices=["table", "json"])
    c.add_argument("-q", "--quiet", action="store_true")
    c = cmd("events", "print cgroup statistics and OOM notices")
    c.add_argument("--stats", action="store_true", help="print statistics once and exit")
    c.add_argument("--interval", default="5s")
    c.add_argument("id")
    c = cmd("update", "update a container's resource limits")
    c.add_argument("-r", "--resources", default=None, help="LinuxResources JSON file, - for stdin")
    for flag in (
        "memory", "memory-reservation", "memory-swap", "kernel-memory", "cpu-shares", "cpu-quota", "cpu-period",
        "cpu-rt-runtime", "cpu-rt-period", "cpuset-cpus", "cpuset-mems", "pids-limit", "blkio-weight",
    ):  # fmt: skip
        c.add_argument(f"--{flag}", default=None)
    c.add_argument("id")
    c = cmd("spec", "write a default config.json")
    c.add_argument("-b", "--bundle", default=None)
    c.add_argument("--rootless", action="store_true")
    cmd("features", "print the features this runtime supports, as JSON")
    return p


def _create_flags(c: argparse.ArgumentParser) -> None:
    c.add_argument("-b", "--bundle", default=".")
    c.add_argument("--pid-file", default=None)
    c.add_argument("--console-socket", default=None)
    c.add_argument("--no-pivot", action="store_true")
    c.add_argument("--no-new-keyring", action="store_true")
    c.add_argument("--preserve-fds", type=int, default=0)
    c.add_argument("id")


def _dispatch(args: Any) -> int:
    root = os.path.abspath(args.root)
    command = args.verb
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

        kill(root, args.id, signals.parse(args.signal), args.all)
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
        from runtime.container_events import events, parse_duration

        events(root, args.id, args.stats, parse_duration(args.interval))
    elif command == "update":
        from runtime.container_update import update

        names = (
            "memory", "memory_reservation", "memory_swap", "kernel_memory", "cpu_shares", "cpu_quota", "cpu_period",
            "cpu_rt_runtime", "cpu_rt_period", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight",
        )  # fmt: skip
        update(root, args.id, args.resources, {n: getattr(args, n) for n in names})
    elif command == "spec":
        from runtime.container_spec import write_spec

        write_spec(args.bundle or ".", args.rootless)
    elif command == "features":
        from runtime.container_spec import features

        features()
    return 0


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


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from runtime.linux import log

    log.configure(args.log, args.log_format, args.debug)
    if args.version:
        print(_version())
        return 0
    if args.verb is None:
        parser.print_help()
        return 0
    try:
        if args.systemd_cgroup:
            raise PyruncError("--systemd-cgroup is not supported: pyrunc manages cgroups through cgroupfs")
        return _dispatch(args)
    except PyruncError as exc:
        log.error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the user gets one line; --debug logs the traceback
        if args.debug:
            import traceback

            log.debug(traceback.format_exc())
        log.error(f"internal error: {exc.__class__.__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
