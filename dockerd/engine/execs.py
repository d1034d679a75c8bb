"""Docker's exec instances (`docker exec`) as extra processes of a container's containerd task.

An exec is created (POST /containers/{id}/exec: a record only, listed in the container's
ExecIDs), started once (POST /exec/{id}/start: Tasks.Exec with a process spec derived from
the container's, then Tasks.Start), and ends with a /tasks/exit event whose id is the exec's;
then its process is deleted from the task (Tasks.DeleteProcess) and the record stays
inspectable, as dockerd keeps it, until it is collected a while later.

Stdio of an attached exec goes through FIFOs next to the container's,
<exec-root>/fifo/<container>/<exec>-{stdin,stdout,stderr}; the hijacked session that reads
them lives in dockerd/attach.py. Two orderings matter, both as in dockerd:

* the exit code is recorded before the session is let go, so a client that inspects the exec
  as soon as its stream ends (the docker CLI does) sees it;
* the process is deleted (which makes the shim drop undelivered output) only once the session
  has read everything, or after two seconds without progress (a background process that keeps
  the output open must not hold the session for ever).
"""

from __future__ import annotations

import base64
import copy
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from containerd.client import IO, ContainerdError
from containerd.client import NotFound as ContainerdNotFound
from dockerd.engine import security, spec
from dockerd.engine.container import accounts, names
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.container.state import Container

log = logging.getLogger("pydockerd.execs")

OUTPUT_GRACE = 2.0  # seconds without output progress after the exit before the streams are cut
KEEP_EXITED = 300.0  # dockerd collects exited execs after five minutes
DEAD_CONTAINER_GRACE = 1.0  # after a container exits, how long its execs' own exit events may take


class ExecStartError(EngineError):
    """The runtime could not start the process: dockerd answers 400 for a missing or
    non-executable command, 500 otherwise; the exec's exit code is 126 either way."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


_CANONICAL = {
    k.lower(): k
    for k in (
        "Cmd",
        "Env",
        "WorkingDir",
        "User",
        "Tty",
        "Privileged",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "DetachKeys",
    )
}


def no_such_exec(exec_id: str) -> NotFound:
    return NotFound(f"No such exec instance: {exec_id}")


@dataclass
class Exec:
    id: str
    container_id: str
    entrypoint: str
    arguments: list[str]
    env: list[str]
    working_dir: str
    user: str
    tty: bool
    privileged: bool
    open_stdin: bool
    open_stdout: bool
    open_stderr: bool
    detach_keys: bytes  # b"": the default (ctrl-p ctrl-q)
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    exited_at: float = 0.0
    claimed: bool = False  # a start was asked for (only one may be)
    fifos: dict[str, str] = field(default_factory=dict)
    # Set once Tasks.Start has answered (or failed): exit handling waits for it.
    launched: threading.Event = field(default_factory=threading.Event)
    # Set by the attached session when it has read all the output (or gave up reading).
    output_done: threading.Event = field(default_factory=threading.Event)
    last_progress: float = 0.0
    exit_waiters: list[Callable[[], None]] = field(default_factory=list)

    @property
    def command_line(self) -> str:
        return " ".join([self.entrypoint, *self.arguments])

    def progress(self) -> None:
        self.last_progress = time.monotonic()


class ExecEngine:
    def __init__(self, containers: Containers, publish: Callable[..., None]) -> None:
        self.containers = containers
        self.publish = publish
        self._lock = threading.Lock()
        self.client = containers.client
        self._execs: dict[str, Exec] = {}

    # --- records -------------------------------------------------------------------------------

    def get(self, exec_id: str) -> Exec:
        with self._lock:
            ex = self._execs.get(exec_id)
        if ex is None:
            raise no_such_exec(exec_id)
        return ex

    def live_ids(self, container_id: str) -> list[str]:
        """The container's execs that have not ended (created ones included), for its ExecIDs."""
        with self._lock:
            return [
                e.id for e in self._execs.values() if e.container_id == container_id and e.exit_code is None
            ]

    def _collect(self) -> None:
        """Forget exited execs after a while, and those whose container is gone."""
        now = time.monotonic()
        existing = {c.id for c in self.containers.all()}
        with self._lock:
            for ex in list(self._execs.values()):
                old = ex.exit_code is not None and now - ex.exited_at > KEEP_EXITED
                if old or ex.container_id not in existing:
                    del self._execs[ex.id]

    def _running_container(self, ref: str) -> Container:
        c = self.containers.get(ref)
        if c.state.get("Paused"):
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        if c.state.get("Restarting"):
            raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
        if not c.running():
            raise Conflict(f"Container {c.id} is not running")
        return c

    # --- create --------------------------------------------------------------------------------

    def create(self, ref: str, body: dict[str, Any]) -> Exec:
        c = self._running_container(ref)
        # Go's JSON decoding matches field names case-insensitively (docker-py sends "detachKeys").
        body = {_CANONICAL.get(k.lower(), k): v for k, v in body.items()}
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd):
            if cmd is not None:
                raise InvalidParameter("invalid Cmd: want an array of strings")
            cmd = []
        if not cmd:
            raise InvalidParameter("No exec command specified")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
            raise InvalidParameter("invalid Env: want an array of strings")
        for key in ("WorkingDir", "User", "DetachKeys"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InvalidParameter(f"invalid {key}: want a string")
        working_dir = body.get("WorkingDir") or ""
        if working_dir and not working_dir.startswith("/"):
            raise InvalidParameter(
                f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
            )
        keys_text = body.get("DetachKeys") or ""
        keys = b""
        if keys_text:
            from dockerd.attach import parse_detach_keys

            try:
                keys = parse_detach_keys(keys_text)
            except ValueError:
                raise InvalidParameter(f"Invalid escape keys ({keys_text}) provided") from None
        ex = Exec(
            id=names.new_id(),
            container_id=c.id,
            entrypoint=cmd[0],
            arguments=list(cmd[1:]),
            env=list(env),
            working_dir=working_dir,
            user=body.get("User") or "",
            tty=bool(body.get("Tty")),
            privileged=bool(body.get("Privileged")),
            open_stdin=bool(body.get("AttachStdin")),
            open_stdout=bool(body.get("AttachStdout")),
            open_stderr=bool(body.get("AttachStderr")),
            detach_keys=keys,
        )
        self._collect()
        with self._lock:
            self._execs[ex.id] = ex
        self._event(c, "exec_create: " + ex.command_line, ex)
        return ex

    def inspect(self, exec_id: str) -> dict[str, Any]:
        ex = self.get(exec_id)
        process: dict[str, Any] = {
            "tty": ex.tty,
            "entrypoint": ex.entrypoint,
            "arguments": list(ex.arguments),
            "privileged": ex.privileged,
        }
        if ex.user:
            process["user"] = ex.user
        return {
            "ID": ex.id,
            "Running": ex.running,
            "ExitCode": ex.exit_code,
            "ProcessConfig": process,
            "OpenStdin": ex.open_stdin,
            "OpenStderr": ex.open_stderr,
            "OpenStdout": ex.open_stdout,
            "CanRemove": False,  # dockerd 20.10 reports false, exited or not
            "ContainerID": ex.container_id,
            "DetachKeys": base64.b64encode(ex.detach_keys).decode() if ex.detach_keys else "",
            "Pid": ex.pid,
        }

    # --- start ---------------------------------------------------------------------------------

    def claim(self, exec_id: str) -> Exec:
        """The checks of a start, before anything is answered: one start per exec, a running container."""
        ex = self.get(exec_id)
        with self._lock:
            if ex.exit_code is not None:
                raise Conflict(f"Error: Exec command {ex.id} has already run")
            if ex.claimed:
                raise Conflict(f"Error: Exec command {ex.id} is already running")
            self._running_container(ex.container_id)
            ex.claimed = True
        return ex

    def start(self, ex: Exec, attach: bool) -> dict[str, str]:
        """Start a claimed exec; returns its FIFOs by stream name when ATTACH (none otherwise)."""
        c = self.containers.get(ex.container_id)
        self._event(c, "exec_start: " + ex.command_line, ex)
        try:
            process = self._process_spec(c, ex)
            fifos = self._make_fifos(ex) if attach else {}
        except EngineError as exc:
            self._failed(ex, str(exc))
            raise
        if not attach:
            ex.output_done.set()
        stdio = IO(fifos.get("stdin", ""), fifos.get("stdout", ""), fifos.get("stderr", ""), terminal=ex.tty)
        with self._lock:
            ex.running = True
        try:
            self.client.tasks.exec(c.id, ex.id, process, stdio)
            pid = self.client.tasks.start(c.id, ex.id)
        except ContainerdError as exc:
            self._delete_process(ex)
            message = _runtime_message(str(exc))
            self._failed(ex, message)
            lowered = message.lower()
            invalid = any(
                s in lowered
                for s in (
                    "executable file not found",
                    "no such file or directory",
                    "permission denied",
                    "is a directory",
                )
            )
            raise ExecStartError(message, 400 if invalid else 500) from None
        with self._lock:
            ex.pid = pid
            ex.progress()
        ex.launched.set()
        return fifos

    def _failed(self, ex: Exec, message: str) -> None:
        log.info("exec %s in %s failed to start: %s", ex.id[:12], ex.container_id[:12], message)
        with self._lock:
            ex.running = False
            ex.exit_code = 126
            ex.exited_at = time.monotonic()
            waiters, ex.exit_waiters = ex.exit_waiters, []
        self._remove_fifos(ex)
        ex.launched.set()
        for wake in waiters:
            wake()

    def _link_env(self, c: Container) -> list[str]:
        """dockerd gives an exec the legacy links' variables too; a link whose target is gone gives none."""
        try:
            return self.containers.networking.link_env(c)
        except EngineError:
            return []

    def _process_spec(self, c: Container, ex: Exec) -> dict[str, Any]:
        """The container's process (its capabilities, rlimits, no-new-privileges...) with the exec's
        command, environment, directory, user and terminal, as dockerd builds it."""
        process = self._base_process(c)
        image_config = self.containers.images.config_of(c.image_id).get("config") or {}
        hostname = c.config.get("Hostname") or c.id[:12]
        env_config = {"Env": [*(c.config.get("Env") or []), *ex.env]}
        process.update(
            args=[ex.entrypoint, *ex.arguments],
            env=spec.merged_env(env_config, image_config, hostname, ex.tty, self._link_env(c)),
            cwd=ex.working_dir or process.get("cwd") or "/",
            terminal=ex.tty,
        )
        process.pop("consoleSize", None)
        caps = dict(process.get("capabilities") or {})
        if ex.user:
            user = accounts.resolve_exec_user(c, ex.user)
            process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.groups)}
            bounding = caps.get("bounding") or []
            caps["effective"] = [] if user.uid != 0 else list(bounding)
            caps["permitted"] = [] if user.uid != 0 else list(bounding)
        if ex.privileged:  # what the daemon may grant, as for a privileged container
            granted = security.grantable(spec.ALL_CAPS)
            caps = {"bounding": list(granted), "effective": list(granted), "permitted": list(granted)}
        process["capabilities"] = caps
        return process

    def _base_process(self, c: Container) -> dict[str, Any]:
        """The process the container's start wrote into its containerd record (kept by the store;
        read back from the record after a daemon restart), a copy of its own."""
        store = self.containers.store
        with store.lock:
            kept = store.process_specs.get(c.id)
            if kept is not None:
                return copy.deepcopy(kept)
        try:
            container_spec = self.client.containers.get(c.id).oci_spec()
        except ContainerdError as exc:
            raise Conflict(f"Container {c.id} is not running: {exc}") from None
        return dict(container_spec.get("process") or {})

    def _make_fifos(self, ex: Exec) -> dict[str, str]:
        d = os.path.join(self.containers.stdio.fifo_root, ex.container_id)
        os.makedirs(d, mode=0o700, exist_ok=True)
        streams = []
        if ex.open_stdin:
            streams.append("stdin")
        if ex.open_stdout:
            streams.append("stdout")
        if ex.open_stderr and not ex.tty:
            streams.append("stderr")
        for stream in streams:
            path = os.path.join(d, f"{ex.id}-{stream}")
            if os.path.exists(path):
                os.unlink(path)
            os.mkfifo(path, 0o600)
            ex.fifos[stream] = path
        return dict(ex.fifos)

    def _remove_fifos(self, ex: Exec) -> None:
        for path in ex.fifos.values():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # --- while it runs -------------------------------------------------------------------------

    def resize(self, exec_id: str, height: int, width: int) -> None:
        ex = self.get(exec_id)
        # dockerd waits (up to ten seconds) for the session to start: the CLI resizes right after it asked.
        if not ex.launched.wait(10):
            raise Conflict(
                "timeout waiting for exec session ready"
            )  # (dockerd: 500; it is the client's doing)
        if ex.exit_code is not None:
            raise NotFound("no such exec")
        if not ex.tty:
            return  # containerd ignores a resize of a process without a terminal
        try:
            self.client.tasks.resize_pty(ex.container_id, width, height, exec_id=ex.id)
        except ContainerdNotFound:
            raise NotFound("no such exec") from None

    def close_stdin(self, ex: Exec) -> None:
        try:
            self.client.tasks.close_io(ex.container_id, exec_id=ex.id, stdin=True)
        except ContainerdError as exc:
            log.debug("closing stdin of exec %s: %s", ex.id, exc)

    def on_exit(self, ex: Exec, wake: Callable[[], None]) -> None:
        """Call WAKE (from any thread) once the exec's exit code is known; at once if it is."""
        with self._lock:
            if ex.exit_code is None:
                ex.exit_waiters.append(wake)
                return
        wake()

    def detached(self, ex: Exec) -> None:
        c = self.containers.get(ex.container_id)
        self._event(c, "exec_detach", ex)

    # --- exits ---------------------------------------------------------------------------------

    def process_exited(self, container_id: str, exec_id: str, status: int) -> None:
        """A /tasks/exit event for a process other than the container's init (from a worker thread)."""
        with self._lock:
            ex = self._execs.get(exec_id)
        if ex is None:
            # Not ours (started before a pydockerd restart): still, free the shim's record of it.
            self._delete_process_ids(container_id, exec_id)
            return
        ex.launched.wait(30)
        with self._lock:
            if ex.exit_code is not None:
                return
            ex.exit_code = status
            ex.running = False
            ex.exited_at = time.monotonic()
            ex.progress()
            waiters, ex.exit_waiters = ex.exit_waiters, []
        for wake in waiters:
            wake()
        while not ex.output_done.wait(0.05):
            if time.monotonic() - ex.last_progress > OUTPUT_GRACE:
                break
        self._delete_process(ex)
        self._remove_fifos(ex)
        try:
            c = self.containers.get(container_id)
        except EngineError:
            return
        self._event(c, "exec_die", ex, exitCode=str(status))

    def container_exited(self, container_id: str) -> None:
        """The container's task is gone: any exec whose exit was not reported never will be."""
        time.sleep(DEAD_CONTAINER_GRACE)
        with self._lock:
            left = [e for e in self._execs.values() if e.container_id == container_id and e.running]
        for ex in left:
            self.process_exited(container_id, ex.id, 137)  # init's death SIGKILLs them all

    def _delete_process(self, ex: Exec) -> None:
        self._delete_process_ids(ex.container_id, ex.id)

    def _delete_process_ids(self, container_id: str, exec_id: str) -> None:
        try:
            self.client.tasks.delete_process(container_id, exec_id)
        except ContainerdError as exc:
            log.debug("deleting exec %s of %s: %s", exec_id, container_id, exc)

    def _event(self, c: Container, action: str, ex: Exec, **extra: str) -> None:
        self.publish(
            "container", action, c.id, {"execID": ex.id, **extra, "image": c.image_ref, "name": c.name}
        )


def _runtime_message(text: str) -> str:
    """containerd's wording for a process the runtime could not start (dockerd passes it on)."""
    text = text.strip().removeprefix("unknown: ")  # the gRPC code our client puts first
    if not text.startswith("OCI runtime exec failed"):
        text = f"OCI runtime exec failed: {text}"
    return text if text.endswith(": unknown") else f"{text}: unknown"
