"""`pyrunc start`: release a created container's init from the exec fifo, and see it exec."""

from __future__ import annotations

import os
import select

from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux import hooks, log
from runtime.sync import read_failure


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
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
        failure = read_failure(_until_exec(fd, poller, cs), cs.config["process"]["args"][0])
    finally:
        os.close(fd)
    if failure is not None:
        raise PyruncError(f"unable to start container process: {failure}")
    # The spec: a failed poststart hook is a warning, and the remaining hooks still run.
    for failure in hooks.run_all(
        cs.config.get("hooks"), "poststart", statemod.oci_state(root, cs, "running")
    ):
        log.warning(failure)


def _until_exec(fd: int, poller: select.poll, cs: statemod.ContainerState) -> bytes:
    """Everything the init writes after its release, up to EOF: its write end is close-on-exec, so
    EOF comes when the user's process is exec'd (nothing written) or the init has died (a report)."""
    data = b""
    while True:
        if poller.poll(100):
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
        elif not statemod.init_alive(cs):
            return data
