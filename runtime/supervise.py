"""Waiting for a container process in the foreground (`run`, `exec` without --detach).

The caller is a child subreaper, so the process (whose intermediate parent exited) is
our child and orphans of the container are re-parented to us as well: all are reaped,
only the watched one's status counts. Signals sent to us are forwarded from the
handler itself, because waitpid is transparently retried after EINTR.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import gc
import os

from runtime.errors import PyruncError

FORWARDED = [
    _signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
    _signal.SIGCONT, _signal.SIGWINCH, _signal.SIGALRM,
]  # fmt: skip


def exit_code(wait_status: int) -> int:
    """The shell's convention, which runc follows: the exit status, or 128 + the killing signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


class Forwarding:
    """Forward FORWARDED signals to PID while the `with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _forward(self, signum: int, _frame: object) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Forwarding:
        for sig in FORWARDED:
            _signal.signal(sig, self._forward)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig in FORWARDED:
            _signal.signal(sig, _signal.SIG_DFL)


def wait(pid: int, master: int | None = None) -> int:
    """Wait for PID (proxying its terminal if MASTER is given) and return its exit code."""
    # The launcher turns the collector off for short-lived verbs; a wait may last as long as the container.
    gc.enable()
    statuses: dict[int, int] = {}

    def reap(block: bool) -> bool:
        """Reap what has exited; True once PID has."""
        while pid not in statuses:
            try:
                got, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                raise PyruncError(f"lost track of process {pid}") from None
            if got == 0:
                return False
            if got == pid:
                statuses[pid] = status
        return True

    if master is not None:
        from runtime.linux import console

        console.proxy(master, lambda: reap(False))
        os.close(master)
    reap(True)
    return exit_code(statuses[pid])
