"""`pyrunc run`: create, start and (unless detached) wait, exiting with the container's status."""

from __future__ import annotations

from common import libc
from runtime.container_create import CreateOptions, create
from runtime.container_delete import delete
from runtime.container_start import start
from runtime.errors import PyruncError
from runtime.spec import load_bundle
from runtime.supervise import Forwarding, wait


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
        _start_or_remove(opts)
        return 0

    with Forwarding(cs.pid):
        _start_or_remove(opts)
        status = wait(cs.pid, master)
    if not keep:
        delete(opts.root, opts.container_id, force=True)
    return status


def _start_or_remove(opts: CreateOptions) -> None:
    """Start; a container whose init failed after create is removed, as runc's run removes it."""
    try:
        start(opts.root, opts.container_id)
    except PyruncError:
        delete(opts.root, opts.container_id, force=True)
        raise
