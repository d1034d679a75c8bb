"""containerd.task.v2.Task for one container: its init process, its execs, their stdio and exits.

Handlers take a decoded request dict and return the encoded response (or None when they
answer later, as Wait does). Errors are RpcError with containerd's status codes and a
one-line message. Exits are recorded on disk (exits/<name>, written whole, not synced: see
shim/events.py) and queued as TaskExit events before any waiter is answered, so a daemon that was
away, or a restarted one cleaning up after a killed shim, learns them.
"""

from __future__ import annotations

import _socket
import os
import time

import ttrpc
from common import schema
from common.atomicfile import write_atomic
from shim import messages as m
from shim.events import EventQueue
from shim.loop import Loop, Timer, log
from shim.oci import Runtime, RuntimeFailed
from shim.options import VERSION, Options, valid_id
from shim.stdio import Input, Output, open_log, open_target
from ttrpc import RpcError
from ttrpc.wire import encode, timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from common.cgroups import EventsFile
    from common.cgroups.layout import ProcessCgroups
    from shim.crilog import CRILog
    from shim.server import Call, Server

CREATED, RUNNING, STOPPED, PAUSED = m.STATUS_CREATED, m.STATUS_RUNNING, m.STATUS_STOPPED, m.STATUS_PAUSED
_STATUS_NAMES = {CREATED: "created", RUNNING: "running", STOPPED: "stopped", PAUSED: "paused"}
_TIOCSWINSZ = 0x5414
_MAX_EARLY_EXITS = 256


class Process:
    """The init process (exec_id "") or one exec of the task."""

    __slots__ = (
        "exec_id", "name", "pid", "status", "stdin", "stdout", "stderr", "terminal", "exit_status", "exited_at",
        "waiters", "spec", "outputs", "input", "console",
    )  # fmt: skip

    def __init__(self, exec_id: str, req: dict[str, Any], spec: bytes = b"") -> None:
        self.exec_id = exec_id
        self.name = f"exec-{exec_id}" if exec_id else "init"
        self.pid = 0
        self.status = CREATED
        self.stdin: str = req.get("stdin", "")
        self.stdout: str = req.get("stdout", "")
        self.stderr: str = req.get("stderr", "")
        self.terminal: bool = req.get("terminal", False)
        self.exit_status = 0
        self.exited_at = 0
        self.waiters: list[Call] = []
        self.spec = spec
        self.outputs: list[Output] = []
        self.input: Input | None = None
        self.console = -1

    def close_io(self) -> None:
        for out in self.outputs:
            out.close()
        self.outputs = []
        if self.input is not None:
            self.input.close()
            self.input = None
        if self.console >= 0:
            os.close(self.console)
            self.console = -1


def _disown_logs(owned: list[int], logs: dict[str, CRILog]) -> None:
    """The CRI logs now belong to their outputs (the descriptors change when a log is rotated)."""
    for crilog in logs.values():
        if crilog.fd in owned:
            owned.remove(crilog.fd)


def _exit_code(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def _rpc_failure(exc: RuntimeFailed) -> RpcError:
    return RpcError(ttrpc.UNKNOWN, str(exc))


class TaskService:
    def __init__(self, loop: Loop, opts: Options, events: EventQueue) -> None:
        self.loop = loop
        self.opts = opts
        self.events = events
        self.runtime = Runtime(
            opts.runtime, opts.runtime_root, opts.log_json, opts.systemd_cgroup, fork=not opts.no_fork_runtime
        )
        self.server: Server | None = None
        self.init: Process | None = None
        self.execs: dict[str, Process] = {}
        self.deleted = False
        self.rootfs_mounted = ""
        self.cgroups: ProcessCgroups | None = None  # the init's cgroups, found at create
        # OOM notices: v1 an eventfd registered on memory.oom_control (with that file's fd to close),
        # v2 memory.events watched for changes
        self.oom: tuple[int, int] | EventsFile | None = None
        self.oom_kills = 0  # v2: memory.events' oom_kill when last read
        self.early_exits: dict[int, tuple[int, int]] = {}
        self.idle_timer: Timer | None = None
        self.exiting = False

    def attach(self, server: Server) -> None:
        self.server = server
        server.on_clients_changed = self.update_idle

    # --- lookups --------------------------------------------------------------------------
    def _check_id(self, req: dict[str, Any]) -> None:
        if req.get("id", "") != self.opts.id:
            raise RpcError(
                ttrpc.NOT_FOUND,
                f"task {req.get('id', '')!r} is not served by this shim (it serves {self.opts.id})",
            )

    def _process(self, req: dict[str, Any]) -> Process:
        self._check_id(req)
        exec_id = req.get("exec_id", "")
        if exec_id:
            proc = self.execs.get(exec_id)
            if proc is None:
                raise RpcError(ttrpc.NOT_FOUND, f"exec {exec_id!r} not found in task {self.opts.id}")
            return proc
        return self._init()

    def _init(self) -> Process:
        if self.init is None or self.deleted:
            raise RpcError(ttrpc.NOT_FOUND, f"task {self.opts.id} not found")
        return self.init

    def _all(self) -> list[Process]:
        procs = list(self.execs.values())
        if self.init is not None and not self.deleted:
            procs.insert(0, self.init)
        return procs

    # --- launching (create, exec start) ---------------------------------------------------
    def _launch(self, proc: Process, run: Callable[[tuple[int, int, int], str | None], None]) -> None:
        """Open PROC's FIFOs, make its pipes (or console socket), let RUN start it, then copy its stdio."""
        owned: list[int] = []  # closed if anything fails
        child: list[int] = []  # the runtime's ends, closed once it has run
        listener = None
        logs: dict[str, CRILog] = {}  # k8s-file:// targets: the shim writes their CRI log

        def fd(value: int, into: list[int]) -> int:
            into.append(value)
            return value

        try:
            try:
                fifo_in = fd(open_target(proc.stdin, False), owned) if proc.stdin else -1
                fifo_out = fd(open_target(proc.stdout, True), owned) if proc.stdout else -1
                fifo_err = (
                    fd(open_target(proc.stderr, True), owned) if proc.stderr and not proc.terminal else -1
                )
                for stream, target in (
                    ("stdout", fifo_out >= 0 and proc.stdout),
                    ("stderr", fifo_err >= 0 and proc.stderr),
                ):
                    if target and (crilog := open_log(target, stream)) is not None:
                        logs[stream] = crilog
                        owned.append(crilog.fd)
            except (OSError, ValueError) as exc:
                raise RpcError(
                    ttrpc.INVALID_ARGUMENT, f"cannot open the stdio of {proc.name}: {exc}"
                ) from None
            null_r = fd(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), child)
            null_w = fd(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC), child)
            if proc.terminal:
                # Next to the ttrpc socket, whose path is known to fit a sockaddr_un; the state dir may not.
                console_path = self.opts.socket.removesuffix(".sock") + ".tty"
                _unlink(console_path)
                listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
                listener.bind(console_path)
                listener.listen(1)
                try:
                    run((null_r, null_w, null_w), console_path)
                finally:
                    _unlink(console_path)
                master = _receive_fd(listener)
                proc.console = master
                proc.outputs.append(
                    Output(
                        self.loop, os.dup(master), fifo_out, self._spool(proc, "stdout"), logs.get("stdout")
                    )
                )
                if fifo_out >= 0:
                    owned.remove(fifo_out)
                _disown_logs(owned, logs)
                if fifo_in >= 0:
                    proc.input = Input(self.loop, fifo_in, os.dup(master), True)
                    owned.remove(fifo_in)
                return
            pipes: list[tuple[int, int]] = []
            for want, reads in ((fifo_in, False), (fifo_out, True), (fifo_err, True)):
                if want < 0:
                    pipes.append((-1, null_w if reads else null_r))
                    continue
                r, w = os.pipe2(os.O_CLOEXEC)
                mine, theirs = (r, w) if reads else (w, r)
                pipes.append((fd(mine, owned), fd(theirs, child)))
            run((pipes[0][1], pipes[1][1], pipes[2][1]), None)
            for (mine, _), fifo, stream in ((pipes[1], fifo_out, "stdout"), (pipes[2], fifo_err, "stderr")):
                if mine >= 0:
                    proc.outputs.append(
                        Output(self.loop, mine, fifo, self._spool(proc, stream), logs.get(stream))
                    )
                    owned.remove(mine)
                    owned.remove(fifo)
            _disown_logs(owned, logs)
            if fifo_in >= 0:
                proc.input = Input(self.loop, fifo_in, pipes[0][0], False)
                owned.remove(fifo_in)
                owned.remove(pipes[0][0])
        except BaseException:
            for value in owned:
                os.close(value)
            raise
        finally:
            for value in child:
                os.close(value)
            if listener is not None:
                listener.close()

    def _spool(self, proc: Process, stream: str) -> str:
        return os.path.join(self.opts.io_dir, f"{proc.name}.{stream}")

    def _pid_file(self, proc: Process) -> str:
        return self.opts.path(f"{proc.name}.pid")

    def _read_pid(self, proc: Process) -> int:
        try:
            with open(self._pid_file(proc)) as f:
                return int(f.read().strip())
        except (OSError, ValueError) as exc:
            raise RpcError(
                ttrpc.INTERNAL, f"the runtime left no usable pid file for {proc.name}: {exc}"
            ) from None

    # --- Task API ---------------------------------------------------------------------------
    def create(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        if self.init is not None:
            raise RpcError(ttrpc.ALREADY_EXISTS, f"task {self.opts.id} already exists in this shim")
        if req.get("checkpoint"):
            raise RpcError(
                ttrpc.UNIMPLEMENTED, "restoring from a checkpoint is not supported by pycontainerd-shim"
            )
        bundle = req.get("bundle") or self.opts.bundle
        if os.path.abspath(bundle) != self.opts.bundle:
            raise RpcError(
                ttrpc.INVALID_ARGUMENT, f"bundle {bundle} is not this shim's bundle {self.opts.bundle}"
            )
        proc = Process("", req)
        rootfs = req.get("rootfs", [])
        if rootfs:
            from shim import mounts

            target = os.path.join(self.opts.bundle, "rootfs")
            try:
                mounts.mount_all(rootfs, target)
            except mounts.MountError as exc:
                raise RpcError(ttrpc.INTERNAL, str(exc)) from None
            self.rootfs_mounted = target

        def run(stdio: tuple[int, int, int], console: str | None) -> None:
            args = ["create", "--bundle", self.opts.bundle, "--pid-file", self._pid_file(proc)]
            if console:
                args += ["--console-socket", console]
            self.runtime.run([*args, self.opts.id], stdio)

        try:
            self._launch(proc, run)
            proc.pid = self._read_pid(proc)
        except RuntimeFailed as exc:
            self._unmount_rootfs()
            raise RpcError(
                ttrpc.UNKNOWN, f"OCI runtime create failed: {exc}"
            ) from None  # containerd's runc shim
        except BaseException:
            self._unmount_rootfs()
            raise
        self.init = proc
        self._watch_cgroups(proc.pid)
        self.events.publish(
            "/tasks/create",
            "TaskCreate",
            m.TASK_CREATE,
            {
                "container_id": self.opts.id,
                "bundle": self.opts.bundle,
                "rootfs": rootfs,
                "io": {
                    "stdin": proc.stdin,
                    "stdout": proc.stdout,
                    "stderr": proc.stderr,
                    "terminal": proc.terminal,
                },
                "pid": proc.pid,
            },
        )
        self._match_early_exit(proc)
        self.update_idle()
        return encode(m.PID_RESPONSE, {"pid": proc.pid})

    def start(self, req: dict[str, Any], _call: Call) -> bytes:
        proc = self._process(req)
        if proc.status != CREATED:
            raise RpcError(
                ttrpc.FAILED_PRECONDITION,
                f"{self._describe(proc)} is {_STATUS_NAMES[proc.status]}, not created",
            )
        if proc is self.init:
            try:
                self.runtime.call(["start", self.opts.id])
            except RuntimeFailed as exc:
                raise _rpc_failure(exc) from None
            proc.status = RUNNING
            self.events.publish(
                "/tasks/start", "TaskStart", m.TASK_START, {"container_id": self.opts.id, "pid": proc.pid}
            )
            self._match_early_exit(proc)
            return encode(m.PID_RESPONSE, {"pid": proc.pid})
        init = self._init()
        if init.status != RUNNING:
            raise RpcError(
                ttrpc.FAILED_PRECONDITION, f"task {self.opts.id} is {_STATUS_NAMES[init.status]}, not running"
            )
        spec_path = self.opts.path(f"{proc.name}.json")
        with open(spec_path, "wb") as f:
            f.write(proc.spec)

        def run(stdio: tuple[int, int, int], console: str | None) -> None:
            args = ["exec", "--process", spec_path, "--detach", "--pid-file", self._pid_file(proc)]
            if console:
                args += ["--console-socket", console]
            self.runtime.run([*args, self.opts.id], stdio)

        try:
            self._launch(proc, run)
            proc.pid = self._read_pid(proc)
        except RuntimeFailed as exc:
            raise _rpc_failure(exc) from None
        proc.status = RUNNING
        self.events.publish(
            "/tasks/exec-started",
            "TaskExecStarted",
            m.TASK_EXEC_STARTED,
            {"container_id": self.opts.id, "exec_id": proc.exec_id, "pid": proc.pid},
        )
        self._match_early_exit(proc)
        return encode(m.PID_RESPONSE, {"pid": proc.pid})

    def exec(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        exec_id = req.get("exec_id", "")
        if not valid_id(exec_id):
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"invalid exec id {exec_id!r}")
        if exec_id in self.execs:
            raise RpcError(ttrpc.ALREADY_EXISTS, f"exec {exec_id} already exists in task {self.opts.id}")
        init = self._init()
        if init.status != RUNNING:
            raise RpcError(
                ttrpc.FAILED_PRECONDITION, f"task {self.opts.id} is {_STATUS_NAMES[init.status]}, not running"
            )
        spec = (req.get("spec") or {}).get("value", b"")
        if not spec:
            raise RpcError(ttrpc.INVALID_ARGUMENT, f"exec {exec_id} has no process spec")
        self.execs[exec_id] = Process(exec_id, req, spec)
        self.events.publish(
            "/tasks/exec-added",
            "TaskExecAdded",
            m.TASK_EXEC_ADDED,
            {"container_id": self.opts.id, "exec_id": exec_id},
        )
        return b""

    def state(self, req: dict[str, Any], _call: Call) -> bytes:
        proc = self._process(req)
        return encode(
            m.STATE_RESPONSE,
            {
                "id": proc.exec_id or self.opts.id,
                "bundle": self.opts.bundle,
                "pid": proc.pid,
                "status": proc.status,
                "stdin": proc.stdin,
                "stdout": proc.stdout,
                "stderr": proc.stderr,
                "terminal": proc.terminal,
                "exit_status": proc.exit_status,
                "exited_at": timestamp(proc.exited_at) if proc.status == STOPPED else None,
                "exec_id": proc.exec_id,
            },
        )

    def wait(self, req: dict[str, Any], call: Call) -> bytes | None:
        proc = self._process(req)
        if proc.status == STOPPED:
            return self._wait_response(proc)
        proc.waiters = [c for c in proc.waiters if c.alive]
        proc.waiters.append(call)
        return None

    def _wait_response(self, proc: Process) -> bytes:
        return encode(
            m.WAIT_RESPONSE, {"exit_status": proc.exit_status, "exited_at": timestamp(proc.exited_at)}
        )

    def kill(self, req: dict[str, Any], _call: Call) -> bytes:
        proc = self._process(req)
        sig = req.get("signal", 0)
        every = req.get("all", False)
        if proc.status == STOPPED and not every:
            raise RpcError(ttrpc.NOT_FOUND, f"{self._describe(proc)} has already exited")
        if proc is not self.init:
            if proc.status == CREATED:
                raise RpcError(ttrpc.FAILED_PRECONDITION, f"{self._describe(proc)} has not been started")
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                raise RpcError(ttrpc.NOT_FOUND, f"{self._describe(proc)} has already exited") from None
            return b""
        if sig == 0:  # runc's kill refuses signal 0: probe the init ourselves
            try:
                os.kill(proc.pid, 0)
            except ProcessLookupError:
                raise RpcError(ttrpc.NOT_FOUND, f"{self._describe(proc)} has already exited") from None
            return b""
        try:
            self.runtime.call(["kill", *(["--all"] if every else []), self.opts.id, str(sig)])
        except RuntimeFailed as exc:
            self.reap()
            if proc.status == STOPPED:
                if every:
                    return b""
                raise RpcError(ttrpc.NOT_FOUND, f"{self._describe(proc)} has already exited") from None
            raise _rpc_failure(exc) from None
        return b""

    def delete(self, req: dict[str, Any], _call: Call) -> bytes:
        proc = self._process(req)
        if proc.status in (RUNNING, PAUSED):
            raise RpcError(
                ttrpc.FAILED_PRECONDITION,
                f"{self._describe(proc)} is {_STATUS_NAMES[proc.status]}: kill it before deleting",
            )
        if proc is not self.init:
            for call in proc.waiters:  # waiting on an exec that never started
                call.fail(ttrpc.NOT_FOUND, f"{self._describe(proc)} was deleted before it ran")
            proc.close_io()
            del self.execs[proc.exec_id]
            self._remove_files(proc)
            return self._delete_response(proc)
        running_execs = [p for p in self.execs.values() if p.status in (RUNNING, PAUSED)]
        force = proc.status == CREATED or bool(running_execs)
        try:
            self.runtime.call(["delete", *(["--force"] if force else []), self.opts.id])
        except RuntimeFailed as exc:
            raise _rpc_failure(exc) from None
        if proc.status != STOPPED:
            self._reap_killed(proc)
        for p in self._all():
            p.close_io()
            self._remove_files(p)
        self.execs.clear()
        self._stop_cgroup_watch()
        self._unmount_rootfs()
        self.deleted = True
        self.events.publish(
            "/tasks/delete",
            "TaskDelete",
            m.TASK_DELETE,
            {
                "container_id": self.opts.id,
                "pid": proc.pid,
                "exit_status": proc.exit_status,
                "exited_at": timestamp(proc.exited_at),
            },
        )
        self.update_idle()
        return self._delete_response(proc)

    def _delete_response(self, proc: Process) -> bytes:
        return encode(
            m.DELETE_RESPONSE,
            {"pid": proc.pid, "exit_status": proc.exit_status, "exited_at": timestamp(proc.exited_at)},
        )

    def _reap_killed(self, proc: Process) -> None:
        """`delete --force` killed a created init: collect its exit before answering."""
        deadline = time.monotonic() + 10
        while proc.status != STOPPED and time.monotonic() < deadline:
            self.reap()
            if proc.status != STOPPED:
                time.sleep(0.01)

    def pids(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        init = self._init()
        try:
            out = self.runtime.call(["ps", "--format", "json", self.opts.id])
        except RuntimeFailed as exc:
            if init.status == STOPPED:
                return b""
            raise _rpc_failure(exc) from None
        from common import fastjson

        by_pid = {p.pid: p.exec_id for p in self.execs.values() if p.pid}
        processes = []
        for pid in fastjson.loads(out) or []:
            info: dict[str, Any] = {"pid": pid}
            if by_pid.get(pid):
                info["info"] = {
                    "type_url": "containerd.runc.v1.ProcessDetails",
                    "value": encode(m.PROCESS_DETAILS, {"exec_id": by_pid[pid]}),
                }
            processes.append(info)
        return encode(m.PIDS_RESPONSE, {"processes": processes})

    def pause(self, req: dict[str, Any], _call: Call) -> bytes:
        return self._freeze(req, "pause", RUNNING, PAUSED, "/tasks/paused", "TaskPaused")

    def resume(self, req: dict[str, Any], _call: Call) -> bytes:
        return self._freeze(req, "resume", PAUSED, RUNNING, "/tasks/resumed", "TaskResumed")

    def _freeze(
        self, req: dict[str, Any], verb: str, before: int, after: int, topic: str, event: str
    ) -> bytes:
        self._check_id(req)
        init = self._init()
        if init.status != before:
            raise RpcError(
                ttrpc.FAILED_PRECONDITION,
                f"cannot {verb} task {self.opts.id}: it is {_STATUS_NAMES[init.status]}",
            )
        try:
            self.runtime.call([verb, self.opts.id])
        except RuntimeFailed as exc:
            raise _rpc_failure(exc) from None
        init.status = after
        self.events.publish(topic, event, m.CONTAINER_ONLY, {"container_id": self.opts.id})
        return b""

    def checkpoint(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        raise RpcError(ttrpc.UNIMPLEMENTED, "checkpoint is not supported by pycontainerd-shim")

    def update(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        init = self._init()
        resources = (req.get("resources") or {}).get("value", b"")
        if not resources:
            raise RpcError(ttrpc.INVALID_ARGUMENT, "update needs resources (an OCI LinuxResources as JSON)")
        if init.status == STOPPED:
            raise RpcError(ttrpc.FAILED_PRECONDITION, f"task {self.opts.id} has exited")
        try:
            self.runtime.call(["update", "--resources", "-", self.opts.id], stdin=resources)
        except RuntimeFailed as exc:
            raise _rpc_failure(exc) from None
        return b""

    def resize_pty(self, req: dict[str, Any], _call: Call) -> bytes:
        import fcntl

        proc = self._process(req)
        if proc.console < 0:
            raise RpcError(ttrpc.FAILED_PRECONDITION, f"{self._describe(proc)} has no terminal")
        rows, cols = req.get("height", 0), req.get("width", 0)
        size = b"".join(v.to_bytes(2, "little") for v in (rows, cols, 0, 0))
        fcntl.ioctl(proc.console, _TIOCSWINSZ, size)
        return b""

    def close_io(self, req: dict[str, Any], _call: Call) -> bytes:
        proc = self._process(req)
        if req.get("stdin") and proc.input is not None:
            proc.input.close_stdin()
        return b""

    def stats(self, req: dict[str, Any], _call: Call) -> bytes:
        from shim import stats

        self._check_id(req)
        self._init()
        try:
            if self.cgroups is None:
                raise stats.StatsError("its cgroups could not be found when it was created")
            type_url, schema, metrics = stats.metrics(self.cgroups)
        except stats.StatsError as exc:
            raise RpcError(ttrpc.FAILED_PRECONDITION, f"statistics of task {self.opts.id}: {exc}") from None
        return encode(m.STATS_RESPONSE, {"stats": {"type_url": type_url, "value": encode(schema, metrics)}})

    def connect(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        task_pid = self.init.pid if self.init is not None and not self.deleted else 0
        return encode(
            m.CONNECT_RESPONSE,
            {"shim_pid": os.getpid(), "task_pid": task_pid, "version": f"pycontainerd-shim {VERSION}"},
        )

    def shutdown(self, req: dict[str, Any], _call: Call) -> bytes:
        self._check_id(req)
        if self.init is not None and not self.deleted and not req.get("now"):
            return b""  # containerd's rule: a shim with a task does not go away
        self._exit_soon(time.monotonic() + 2)
        return b""

    def _exit_soon(self, deadline: float) -> None:
        """Stop the loop once the last answers have left (or at DEADLINE)."""
        self.exiting = True
        assert self.server is not None
        if self.server.flushed() or time.monotonic() > deadline:
            self.loop.stop()
        else:
            self.loop.call_later(0.01, lambda: self._exit_soon(deadline))

    # --- exits ---------------------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            now = time.time_ns()
            proc = next((p for p in self._all() if p.pid == pid and p.status != STOPPED), None)
            if proc is None:
                # An orphan of the container, or a pid we have not read yet (kept, bounded).
                self.early_exits[pid] = (_exit_code(status), now)
                while len(self.early_exits) > _MAX_EARLY_EXITS:
                    del self.early_exits[next(iter(self.early_exits))]
                continue
            self._exited(proc, _exit_code(status), now)

    def _match_early_exit(self, proc: Process) -> None:
        early = self.early_exits.pop(proc.pid, None)
        if early is not None and proc.status != STOPPED:
            self._exited(proc, *early)

    def _exited(self, proc: Process, code: int, when: int) -> None:
        proc.status = STOPPED
        proc.exit_status = code
        proc.exited_at = when
        try:
            write_atomic(
                os.path.join(self.opts.exits_dir, proc.name),
                f"{proc.pid} {code} {when}\n".encode(),
                durable=False,  # as the events (shim/events.py)
            )
        except OSError as exc:
            log(f"cannot record the exit of {proc.name}: {exc}")
        for out in proc.outputs:
            out.drain()  # what it wrote before exiting goes to the FIFO (or spool) before anyone hears of the exit
        self.events.publish(
            "/tasks/exit",
            "TaskExit",
            m.TASK_EXIT,
            {
                "container_id": self.opts.id,
                "id": proc.exec_id or self.opts.id,
                "pid": proc.pid,
                "exit_status": code,
                "exited_at": timestamp(when),
            },
        )
        waiters, proc.waiters = proc.waiters, []
        for call in waiters:
            call.reply(self._wait_response(proc))
        if proc is self.init:
            self.update_idle()

    # --- cgroups: where stats come from, and OOM notices ---------------------------------------
    def _watch_cgroups(self, pid: int) -> None:
        from shim import stats

        try:
            self.cgroups = stats.locate(pid)
        except stats.StatsError as exc:
            log(f"cannot read the cgroups of {pid}: {exc}")
            return
        if self.cgroups.version == 2:
            self._watch_oom_v2(self.cgroups.paths[""])
            return
        memory = self.cgroups.paths.get("memory")
        if not memory:
            return
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            ofd = os.open(os.path.join(memory, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            with open(os.path.join(memory, "cgroup.event_control"), "w") as f:
                f.write(f"{efd} {ofd}")
        except OSError as exc:
            log(f"cannot watch {memory} for OOM: {exc}")
            return
        self.oom = (efd, ofd)
        self.loop.watch(efd, 1, self._on_oom)

    def _watch_oom_v2(self, directory: str) -> None:
        import select

        from common.cgroups import EventsFile

        if not os.path.exists(os.path.join(directory, "memory.events")):
            return  # no memory controller for this cgroup: no OOM to report
        try:
            events = EventsFile(directory, "memory.events")
            self.oom_kills = events.read().get("oom_kill", 0)
        except OSError as exc:
            log(f"cannot watch {directory} for OOM: {exc}")
            return
        self.oom = events
        self.loop.watch(events.fd, select.EPOLLPRI, self._on_oom_v2)

    def _on_oom(self, _mask: int) -> None:
        assert isinstance(self.oom, tuple)
        try:
            os.eventfd_read(self.oom[0])
        except BlockingIOError:
            return
        # The eventfd also fires when the cgroup is removed: only a live cgroup had an OOM.
        memory = self.cgroups.paths.get("memory", "") if self.cgroups is not None else ""
        if os.path.isdir(memory):
            self._publish_oom()
        else:
            self._stop_cgroup_watch()

    def _on_oom_v2(self, _mask: int) -> None:
        assert not isinstance(self.oom, tuple) and self.oom is not None
        try:
            kills = self.oom.read().get("oom_kill", 0)
        except OSError:  # ENODEV: the cgroup was removed
            self._stop_cgroup_watch()
            return
        # memory.events also changes on low/high/max events: only a rise of oom_kill is an OOM
        # (v1's eventfd fires once per OOM too)
        if kills > self.oom_kills:
            self.oom_kills = kills
            self._publish_oom()

    def _publish_oom(self) -> None:
        self.events.publish("/tasks/oom", "TaskOOM", m.CONTAINER_ONLY, {"container_id": self.opts.id})

    def _stop_cgroup_watch(self) -> None:
        if isinstance(self.oom, tuple):
            self.loop.unwatch(self.oom[0])
            for value in self.oom:
                os.close(value)
        elif self.oom is not None:
            self.loop.unwatch(self.oom.fd)
            self.oom.close()
        self.oom = None

    # --- leaving -------------------------------------------------------------------------------
    def update_idle(self) -> None:
        """Arm the self-cleanup timer while the task has exited (or never existed) and no client is connected."""
        if self.server is None or self.exiting:
            return
        finished = self.init is None or self.deleted or self.init.status == STOPPED
        idle = finished and not self.server.conns
        if idle and self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.opts.exit_timeout, self._idle_exit)
        elif not idle and self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_exit(self) -> None:
        log(f"no client for {self.opts.exit_timeout:g}s and the task has exited: cleaning up")
        if self.init is not None and not self.deleted:
            try:
                self.runtime.call(["delete", "--force", self.opts.id])
            except RuntimeFailed as exc:
                log(f"deleting the container failed: {exc}")
            for p in self._all():
                p.close_io()
            self._stop_cgroup_watch()
            self._unmount_rootfs()
            self.deleted = True
        self.exiting = True
        self.loop.stop()

    def _unmount_rootfs(self) -> None:
        if self.rootfs_mounted:
            from shim import mounts

            try:
                mounts.unmount_all(self.rootfs_mounted)
                self.rootfs_mounted = ""
            except mounts.MountError as exc:
                log(str(exc))

    def _remove_files(self, proc: Process) -> None:
        for path in (
            self._pid_file(proc),
            self.opts.path(f"{proc.name}.json"),
            os.path.join(self.opts.exits_dir, proc.name),
        ):
            _unlink(path)

    def remove_state(self) -> None:
        """The shim is leaving: remove every file it made (the runtime's own state is gone with delete)."""
        for p in self._all():
            p.close_io()
        for directory in (self.opts.exits_dir, self.opts.events_dir, self.opts.io_dir):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                _unlink(os.path.join(directory, name))
            try:
                os.rmdir(directory)
            except OSError:
                pass
        for name in ("shim.pid", "address", "init.pid", "init.json", "shim.log", schema.MARKER):
            _unlink(self.opts.path(name))
        if self.deleted or self.init is None:
            _unlink(self.opts.log_json)
        try:
            os.rmdir(self.opts.state_dir)
        except OSError:
            pass  # the daemon's files (a bundle sharing the directory) stay the daemon's

    def _describe(self, proc: Process) -> str:
        return f"exec {proc.exec_id} of task {self.opts.id}" if proc.exec_id else f"task {self.opts.id}"


def _receive_fd(listener: _socket.socket) -> int:
    """The pty master the runtime sent over the console socket (runc's protocol: SCM_RIGHTS)."""
    listener.setblocking(False)
    try:
        fd, _ = listener._accept()  # type: ignore[attr-defined]
    except BlockingIOError:
        raise RuntimeFailed("the runtime did not connect to the console socket") from None
    conn = _socket.socket(fileno=fd)
    try:
        conn.settimeout(10)
        _, ancillary, _, _ = conn.recvmsg(4096, _socket.CMSG_SPACE(4 * 4))
    finally:
        conn.close()
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds += [
                int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, len(data) - 3, 4)
            ]
    if not fds:
        raise RuntimeFailed("the runtime sent no terminal over the console socket")
    for extra in fds[1:]:
        os.close(extra)
    os.set_inheritable(fds[0], False)
    return fds[0]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
