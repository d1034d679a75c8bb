"""`pyrunc run`: create, start and (unless detached) wait, exiting with the container's status."""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import os

from runtime import state as statemod
from runtime.container_create import CreateOptions, create
from runtime.container_delete import delete
from runtime.container_start import start
from runtime.errors import PyruncError
from runtime.linux import libc
from runtime.spec import load_bundle

FORWARDED = [
    _signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
    _signal.SIGCONT, _signal.SIGWINCH, _signal.SIGALRM,
]  # fmt: skip


def exit_code(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def run(opts: CreateOptions, detach: bool, keep: bool) -> int:
    if not detach:
        # The init is re-parented to us when stage 1 exits, so we can wait for it and reap its orphans.
        libc.set_child_subreaper()
    ours = None
    opts.preloaded = load_bundle(opts.bundle)
    terminal = bool(opts.preloaded[0]["process"].get("terminal"))
    if terminal and not opts.console_socket:
        import socket

        if detach:
            raise PyruncError("cannot allocate tty if runc will detach without setting console socket")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        opts.console_fd = theirs.fileno()
        theirs.set_inheritable(False)
    cs = create(opts)
    master = None
    if ours is not None:
        from runtime.linux import console

        master = console.receive_master(ours)
        ours.close()
    if detach:
        start(opts.root, opts.container_id)
        return 0

    # Forward from the handler itself: waitpid is retried after EINTR, so a queued signal would wait.
    pending: list[int] = []
    for sig in FORWARDED:
        _signal.signal(sig, lambda signum, _frame: _forward(cs.pid, [signum]))
    try:
        start(opts.root, opts.container_id)
        status = _wait(cs.pid, master, pending)
    finally:
        for sig in FORWARDED:
            _signal.signal(sig, _signal.SIG_DFL)
    if not keep:
        delete(opts.root, opts.container_id, force=True)
    return status


def _wait(init_pid: int, master: int | None, pending: list[int]) -> int:
    result: dict[str, int] = {}

    def reap(block: bool) -> bool:
        while True:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return True
            except InterruptedError:
                _forward(init_pid, pending)
                continue
            if pid == 0:
                return "init" in result
            if pid == init_pid:
                result["init"] = status
                return True

    def forward_and_check() -> bool:
        _forward(init_pid, pending)
        return reap(False)

    if master is not None:
        from runtime.linux import console

        console.proxy(master, forward_and_check)
        os.close(master)
    while "init" not in result:
        _forward(init_pid, pending)
        reap(True)
    return exit_code(result["init"])


def _forward(init_pid: int, pending: list[int]) -> None:
    while pending:
        sig = pending.pop(0)
        try:
            os.kill(init_pid, sig)
        except ProcessLookupError:
            pass


__all__ = ["run", "statemod"]
