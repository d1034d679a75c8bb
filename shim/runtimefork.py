"""pyrunc in a forked process: the runtime verbs without an interpreter start-up each.

A runtime verb exec'd as a program costs pyrunc a fresh interpreter and its imports every time
(`pyrunc start`: 28M instructions, 21M of them Python's start-up). When the shim's runtime is this
checkout's own pyrunc and the shim has pyrunc's modules loaded (a shim forked from pycontainerd's
template, shim/spawner.py, which preloads them once for all its shims to share copy-on-write; a
shim started by the command does not load them, which would make it 4.5 MiB larger, and execs
every verb), it forks instead, and the child runs pyrunc's command-line
entry point (`runtime.cli.run_and_exit`) with the argv it would have exec'd. Everything else stays
as with exec: the runtime is a process of its own, a child of the shim (so the container's init,
whose stage-1 parent exits, is re-parented to the shim, the subreaper); it gets the same stdio, the
signal dispositions and mask a fresh pyrunc has, no other descriptor, the same environment; its
exit status, log.json and output are what the shim reads. So the contract between shim and
runtime is still runc's command line, and any other runtime (runc, a wrapper) is exec'd as before.

Which runtime is "this checkout's pyrunc" is never guessed: the launcher scripts/setup writes
carries a marker line naming the checkout it runs (`LAUNCHER_MARKER`), and only a runtime file
whose head has that line for the checkout this shim runs from is forked. It is read again at each
verb (a few microseconds): a runtime path replaced by another program is exec'd from then on.

The fork runs the pyrunc the shim started with: an upgrade that replaces the checkout under a
running shim changes neither the shim nor the runtime it forks (shim/frozen.py holds the source
of the rest of `runtime` too), as a shim keeps its own code.

Off with `--no-fork-runtime` or PYCONTAINERD_SHIM_FORK_RUNTIME=0 in the shim's environment
(pycontainerd's, which its shims inherit): every verb is then exec'd.
"""

from __future__ import annotations

import _signal
import gc
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The line scripts/setup writes into the pyrunc launcher, after the shebang.
LAUNCHER_MARKER = "# pydocker: the pyrunc launcher of the checkout at "
_HEAD = 512  # the marker is on the launcher's second line


def is_own_pyrunc(path: str) -> bool:
    """Whether PATH is the pyrunc launcher of the checkout this shim runs from."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return False
    if not head.startswith(b"#!"):
        return False  # a binary (runc) or anything else
    lines = head.split(b"\n", 2)
    return len(lines) > 2 and lines[1] == (LAUNCHER_MARKER + REPO).encode()


def preload() -> bool:
    """Import what pyrunc's verbs need, so forks of this process find it loaded; whether it could
    (if not, a shim execs every verb)."""
    try:
        from runtime import cli

        cli.preload()
        return True
    except Exception as exc:  # noqa: BLE001 - a pyrunc that cannot load is exec'd (and says why then)
        from shim.loop import log

        log(f"cannot load pyrunc to fork its verbs, they are exec'd: {exc!r}")
        sys.modules.pop("runtime.cli", None)
        return False


def spawn(argv: list[str], stdio: tuple[int, int, int], log_path: str) -> int:
    """Fork a pyrunc running ARGV (argv[0] the runtime's path) with STDIO as its 0, 1, 2; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # pragma: no cover - the child leaves through os._exit
        _become_runtime(argv, stdio)
        from runtime.cli import run_and_exit

        run_and_exit(argv[1:])
    except BaseException as exc:  # noqa: BLE001 - nothing may unwind into the shim's frames in this child
        _report(log_path, f"pyrunc could not run in a process forked from the shim: {exc!r}")
    finally:
        os._exit(1)  # run_and_exit leaves with pyrunc's own status


def _become_runtime(argv: list[str], stdio: tuple[int, int, int]) -> None:
    """Make this child what posix_spawn of the launcher would have made (shim/oci.py)."""
    # The shim's SIGCHLD handler writes to its wake-up pipe: neither survives an exec.
    _signal.set_wakeup_fd(-1)
    for sig in _signal.valid_signals():
        if callable(_signal.getsignal(sig)):
            _signal.signal(sig, _signal.SIG_DFL)  # a handler does not survive exec; an ignore does
    # What a fresh interpreter sets (the shim's posix_spawn resets them, Python ignores them again).
    _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
    if _signal.getsignal(_signal.SIGINT) == _signal.SIG_DFL:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)  # inheritable, as posix_spawn's dup2 leaves it
    # Every other descriptor of the shim (its sockets, epoll, the container's pipes) was
    # close-on-exec: none reaches an exec'd runtime, none stays here.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    gc.disable()  # as the launcher: a verb lives for milliseconds, and a collection would copy pages
    sys.argv = list(argv)
    sys.stdin = open(0, encoding=sys.stdin.encoding, errors=sys.stdin.errors, closefd=False)
    sys.stdout = open(1, "w", encoding=sys.stdout.encoding, errors=sys.stdout.errors, closefd=False)
    sys.stderr = open(
        2, "w", encoding=sys.stderr.encoding, errors="backslashreplace", closefd=False, buffering=1
    )
    try:  # the name `ps` shows, as for the exec'd launcher
        with open("/proc/self/comm", "w") as f:
            f.write("pyrunc")
    except OSError:
        pass


def _report(log_path: str, message: str) -> None:
    """A failure before pyrunc's own error handling: where pyrunc logs its errors (runc's log.json),
    which the shim reads, and on stderr."""
    from common import fastjson

    line = fastjson.dumps({"level": "error", "msg": message}) + "\n"
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        os.write(2, f"pycontainerd-shim: {message}\n".encode())
    except OSError:
        pass
