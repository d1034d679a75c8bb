"""The probe runner pydockerd gives the monitor: the probe as an exec in the container's task,
through containerd.client (Tasks.Exec/Start/Wait/Kill/DeleteProcess), as dockerd runs it.

The process is the container's own (its user, working directory, capabilities, rlimits,
no-new-privileges, environment) with the probe's argv, no terminal and no stdin; stdout and
stderr go to two FIFOs under `fifo_dir/<container>/` that one thread reads into a
LimitedBuffer. When the process has exited, what the FIFOs still hold is read until their EOF
(the shim closes them once it has delivered everything) or for two seconds at most, as
dockerd waits for an exec's streams (a background child may keep them open for ever).
Cancelled (the timeout passed, or the monitor stopped), the process gets SIGKILL, as dockerd
sends it, and is waited for.

The engine can pass `process_of` to build the process as its `docker exec` does, and
`on_exec_event` to publish dockerd's exec_create/exec_start/exec_die events of each probe;
`owns(exec_id)` tells its /tasks/exit handler which exits are a probe's (this runner deletes
those processes itself, after reading their output).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from containerd.client import IO, ContainerdError
from dockerd.health.monitor import ProbeError, ProbeOutcome, ProbeRequest
from dockerd.health.output import LimitedBuffer

if TYPE_CHECKING:
    from containerd.client import Client

OUTPUT_GRACE = 2.0  # seconds the streams may stay open after the process exited
KILL_WAIT = 30.0  # how long a killed probe may take to be reported gone

ProcessBuilder = Callable[[str], dict[str, Any]]
ExecEvent = Callable[[str, str, dict[str, str]], None]  # (container id, action, attributes)


class ContainerdExecProbe:
    def __init__(
        self,
        client: Client,
        fifo_dir: str,
        process_of: ProcessBuilder | None = None,
        on_exec_event: ExecEvent | None = None,
    ) -> None:
        self.client = client
        self.fifo_dir = fifo_dir
        self._process_of = process_of or self._container_process
        self._on_exec_event = on_exec_event or (lambda _cid, _action, _attrs: None)
        self._lock = threading.Lock()
        self._running: set[str] = set()

    def owns(self, exec_id: str) -> bool:
        """Whether EXEC_ID is a probe this runner has in flight."""
        with self._lock:
            return exec_id in self._running

    def __call__(self, request: ProbeRequest, cancel: threading.Event) -> ProbeOutcome:
        cid = request.container_id
        if not request.argv or not request.argv[0]:
            raise ProbeError(
                "OCI runtime exec failed: exec failed: no command given to the healthcheck: unknown"
            )
        try:
            process = self._process_of(cid)
        except ContainerdError as exc:
            raise ProbeError(f"Container {cid} is not running: {exc}") from None
        process.update(args=list(request.argv), terminal=False)
        process.pop("consoleSize", None)
        exec_id = secrets.token_hex(32)
        command = " ".join(request.argv)
        self._on_exec_event(cid, f"exec_create: {command}", {"execID": exec_id})
        with self._lock:
            self._running.add(exec_id)
        try:
            return self._run(cid, exec_id, process, command, cancel)
        finally:
            with self._lock:
                self._running.discard(exec_id)

    def _run(
        self, cid: str, exec_id: str, process: dict[str, Any], command: str, cancel: threading.Event
    ) -> ProbeOutcome:
        directory = os.path.join(self.fifo_dir, cid)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        paths = [os.path.join(directory, f"{exec_id}-{stream}") for stream in ("stdout", "stderr")]
        fds: list[int] = []
        buffer = LimitedBuffer()
        exited = threading.Event()
        reader: threading.Thread | None = None
        added = False
        try:
            for path in paths:
                os.mkfifo(path, 0o600)
                fds.append(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
            try:
                self.client.tasks.exec(cid, exec_id, process, IO(stdout=paths[0], stderr=paths[1]))
                added = True
                self._on_exec_event(cid, f"exec_start: {command}", {"execID": exec_id})
                self.client.tasks.start(cid, exec_id)
            except ContainerdError as exc:
                raise ProbeError(_runtime_message(str(exc))) from None
            reader = threading.Thread(
                target=_read, args=(fds, buffer, exited), name=f"probe-out-{exec_id[:8]}", daemon=True
            )
            reader.start()
            status = self._wait(cid, exec_id, cancel)
            exited.set()
            reader.join(OUTPUT_GRACE + 1)
            self._on_exec_event(cid, "exec_die", {"execID": exec_id, "exitCode": str(status)})
            return ProbeOutcome(status, buffer.text())
        finally:
            exited.set()
            if reader is not None:
                reader.join(OUTPUT_GRACE + 1)
            if added:
                with contextlib.suppress(ContainerdError):
                    self.client.tasks.delete_process(cid, exec_id)
            for fd in fds:
                os.close(fd)
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def _wait(self, cid: str, exec_id: str, cancel: threading.Event) -> int:
        """The exec's exit status; on CANCEL it is killed first."""
        done = threading.Event()
        box: list[int | ContainerdError] = []

        def wait() -> None:
            try:
                box.append(self.client.tasks.wait(cid, exec_id).status)
            except ContainerdError as exc:
                box.append(exc)
            finally:
                done.set()

        threading.Thread(target=wait, name=f"probe-wait-{exec_id[:8]}", daemon=True).start()
        while not done.wait(0.05):
            if cancel.is_set():
                with contextlib.suppress(ContainerdError):
                    self.client.tasks.kill(cid, signal.SIGKILL, exec_id=exec_id)
                if not done.wait(KILL_WAIT):
                    raise ProbeError(f"healthcheck for container {cid} did not die after SIGKILL")
                break
        result = box[0]
        if isinstance(result, ContainerdError):
            raise ProbeError(f"healthcheck for container {cid} has no exit code: {result}")
        return result

    def _container_process(self, cid: str) -> dict[str, Any]:
        """The container's OCI process (what it was started with), without its terminal's TERM."""
        spec = self.client.containers.get(cid).oci_spec()
        process: dict[str, Any] = dict(spec.get("process") or {})
        if process.get("terminal"):  # dockerd sets TERM only for a process with a terminal
            process["env"] = [e for e in process.get("env") or [] if not e.startswith("TERM=")]
        return process


def _read(fds: list[int], buffer: LimitedBuffer, exited: threading.Event) -> None:
    """Both FIFOs into BUFFER until each is at EOF after the process exited, or the grace is over."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLHUP)
    open_fds = set(fds)
    grace_end: float | None = None
    while open_fds:
        if exited.is_set() and grace_end is None:
            grace_end = time.monotonic() + OUTPUT_GRACE
        if grace_end is not None and time.monotonic() >= grace_end:
            return
        for fd, _mask in poller.poll(50):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if data:
                buffer.write(data)
            elif exited.is_set():  # EOF from a writer that was there: this stream is done
                poller.unregister(fd)
                open_fds.discard(fd)
            else:
                time.sleep(0.01)  # the writer has not opened its end yet (POLLHUP without one)


def _runtime_message(text: str) -> str:
    """The runtime's refusal as dockerd words a failed exec start."""
    text = text.strip().removeprefix("unknown: ")
    if not text.startswith("OCI runtime exec failed"):
        text = f"OCI runtime exec failed: {text}"
    return text if text.endswith(": unknown") else f"{text}: unknown"
