"""pycontainerd-shim's command line and the layout of its state directory.

    pycontainerd-shim --namespace NS --id ID --bundle DIR [--state-dir DIR] [--runtime PATH]
                      [--runtime-root DIR] [--address DAEMON_SOCK] [--socket PATH]
                      [--exit-timeout SECONDS] [--systemd-cgroup] start|delete

Kept free of argparse (it imports `re`, `gettext` and more): the long-lived shim parses
the same flags again when it is exec'd, and every import stays in its memory.
"""

from __future__ import annotations

import os

VERSION = "0.1.0"
# The state directory's layout (common/schema.py: `layout.json`); release 0.1.0's, unmarked, is 1.
LAYOUT_VERSION = 1
DEFAULT_EXIT_TIMEOUT = 24 * 3600.0

USAGE = """usage: pycontainerd-shim --id ID --bundle DIR [flags] start|delete

Starts (start) the shim of one pycontainerd task, which detaches and serves containerd's
task v2 API over ttrpc on a unix socket, printing that socket's address; or cleans up
(delete) after a shim that is gone, printing a DeleteResponse.

flags:
  --namespace NS         namespace of the task (events carry it) [default]
  --id ID                container id (required)
  --bundle DIR           OCI bundle with config.json (required)
  --state-dir DIR        the shim's files: socket, exit records, events, spools [the bundle]
  --runtime PATH         OCI runtime with runc's command line [pyrunc]
  --runtime-root DIR     the runtime's --root [the runtime's default]
  --address SOCK         pycontainerd's socket (recorded; the daemon pulls events)
  --socket PATH          where to serve ttrpc [STATE_DIR/shim.sock]
  --exit-timeout SECS    once the task has exited (or was never created) and no client is
                         connected, clean up and exit after this long [86400]
  --systemd-cgroup       run the runtime with --systemd-cgroup (containerd.runc.v1.Options'
                         SystemdCgroup)
  --no-fork-runtime      exec this checkout's pyrunc for every verb instead of forking it
                         (also: PYCONTAINERD_SHIM_FORK_RUNTIME=0 in the environment)
"""

_FLAGS = {
    "--namespace": "namespace",
    "--id": "id",
    "--bundle": "bundle",
    "--state-dir": "state_dir",
    "--runtime": "runtime",
    "--runtime-root": "runtime_root",
    "--address": "address",
    "--socket": "socket",
    "--exit-timeout": "exit_timeout",
    "--ready-fd": "ready_fd",
}
_SWITCHES = {"--systemd-cgroup": "systemd_cgroup", "--no-fork-runtime": "no_fork_runtime"}
# "0" here turns the forked pyrunc off as --no-fork-runtime does (shim/runtimefork.py): set in
# pycontainerd's environment, it reaches its shims (and their template).
FORK_RUNTIME_ENV = "PYCONTAINERD_SHIM_FORK_RUNTIME"
ACTIONS = ("start", "delete", "serve")
# Unix socket paths are limited to 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107


class UsageError(Exception):
    """A bad command line; the message says which flag."""


class Options:
    __slots__ = (
        "action", "namespace", "id", "bundle", "state_dir", "runtime", "runtime_root", "address", "socket",
        "exit_timeout", "ready_fd", "systemd_cgroup", "no_fork_runtime",
    )  # fmt: skip

    def __init__(self) -> None:
        self.action = ""
        self.namespace = "default"
        self.id = ""
        self.bundle = ""
        self.state_dir = ""
        self.runtime = "pyrunc"
        self.runtime_root = ""
        self.address = ""
        self.socket = ""
        self.exit_timeout = DEFAULT_EXIT_TIMEOUT
        self.ready_fd = -1
        self.systemd_cgroup = False
        self.no_fork_runtime = os.environ.get(FORK_RUNTIME_ENV, "1") in ("0", "false", "no", "off")

    def argv(self) -> list[str]:
        """These options as flags again (for the exec of the long-lived shim)."""
        out = []
        for flag, attr in _FLAGS.items():
            value = getattr(self, attr)
            if attr != "ready_fd" and value not in ("", None):
                out += [flag, str(value)]
        return out + [flag for flag, attr in _SWITCHES.items() if getattr(self, attr)]

    # --- the state directory ---------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    @property
    def exits_dir(self) -> str:
        return self.path("exits")

    @property
    def events_dir(self) -> str:
        return self.path("events")

    @property
    def io_dir(self) -> str:
        return self.path("io")

    @property
    def log_json(self) -> str:
        return os.path.join(self.bundle, "log.json")


def valid_id(value: str) -> bool:
    """containerd's identifier rule: alphanumerics joined by '.', '_' or '-', at most 76 characters."""
    if not value or len(value) > 76 or not value[0].isalnum() or not value.isascii():
        return False
    previous_sep = False
    for ch in value:
        sep = ch in "._-"
        if not (sep or ch.isalnum()) or (sep and previous_sep):
            return False
        previous_sep = sep
    return not previous_sep


def parse(argv: list[str]) -> Options:
    opts = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            raise UsageError(USAGE)
        name, eq, value = arg.partition("=")
        if name in _FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag {name} needs a value")
                i += 1
                value = argv[i]
            setattr(opts, _FLAGS[name], value)
        elif arg in _SWITCHES:
            setattr(opts, _SWITCHES[arg], True)
        elif arg in ACTIONS and not opts.action:
            opts.action = arg
        else:
            raise UsageError(f"unknown argument {arg!r} (see --help)")
        i += 1
    if not opts.action:
        raise UsageError("missing action: start or delete (see --help)")
    if not valid_id(opts.id):
        raise UsageError(f"invalid or missing --id {opts.id!r}")
    if not valid_id(opts.namespace):
        raise UsageError(f"invalid --namespace {opts.namespace!r}")
    if not opts.bundle:
        raise UsageError("missing --bundle")
    opts.bundle = os.path.abspath(opts.bundle)
    opts.state_dir = os.path.abspath(opts.state_dir or opts.bundle)
    opts.socket = os.path.abspath(opts.socket or opts.path("shim.sock"))
    if len(opts.socket.encode()) > MAX_SOCKET_PATH:
        raise UsageError(f"socket path {opts.socket} is too long for a unix socket: pass a shorter --socket")
    try:
        opts.exit_timeout = float(opts.exit_timeout)
        opts.ready_fd = int(opts.ready_fd)
    except ValueError:
        raise UsageError("--exit-timeout and --ready-fd take numbers") from None
    return opts
