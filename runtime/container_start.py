"""`pyrunc start`: release a created container's init from the exec fifo."""

from __future__ import annotations

import os
import select

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux import hooks, log


def start(root: str, container_id: str) -> None:
    cs = statemod.load(root, container_id)
    current = statemod.status(root, cs)
    if current == "stopped":
        raise PyruncError("cannot start a container that has stopped")
    if current != "created":
        raise PyruncError(f"cannot start an already {current} container")
    fifo = os.path.join(root, container_id, statemod.EXEC_FIFO)
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyruncError("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100) and os.read(fd, 1):
                break
            if not statemod.init_alive(cs):
                raise PyruncError("container init exited before it could be started")
    finally:
        os.close(fd)
    try:
        os.unlink(fifo)
    except FileNotFoundError:
        pass
    # The spec: a failed poststart hook is a warning, and the remaining hooks still run.
    for failure in hooks.run_all(cs.config.get("hooks"), "poststart", statemod.oci_state(root, cs, "running")):
        log.warning(failure)
