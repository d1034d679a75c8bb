"""pycontainerd's side of pycontainerd-shim: starting shims and calling them over ttrpc.

    config = ShimConfig(namespace="default", id="c1", bundle="/run/.../c1", runtime="/usr/sbin/runc")
    address = start_shim(config)              # runs `pycontainerd-shim ... start`
    with ShimClient(address) as shim:
        shim.create(id="c1", bundle=config.bundle, stdout="/path/to/fifo")
        shim.start(id="c1")
        status = shim.wait(id="c1").exit_status
        shim.delete(id="c1")
        shim.shutdown(id="c1")

Requests and responses are the generated containerd.task.v2 classes (protos/, shim.proto);
each method takes a request message or its fields as keywords. The ttrpc envelope is
encoded with the ttrpc package's small codec (ttrpc/, which the shim serves with), exactly what containerd's
ttrpc puts on the wire.

ShimClient is thread-safe: one connection, calls from many threads, each on its own ttrpc
stream; a reader thread hands each response to its caller, so a blocking Wait never holds
up other calls. Failures raise containerd.errors classes (NotFound, FailedPrecondition, ...)
with the shim's one-line message; a lost connection raises Unavailable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message

import ttrpc
from containerd import errors
from protos.gen.containerd_api.runtime.task.v2 import shim_events_pb2, shim_pb2
from ttrpc.wire import WireError, decode, encode

TASK_SERVICE = "containerd.task.v2.Task"
EVENTS_SERVICE = "pycontainerd.shim.v1.Events"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

M = TypeVar("M", bound=Message)


class DeadlineExceeded(errors.ContainerdError):
    code = "DEADLINE_EXCEEDED"


class ShimError(errors.ContainerdError):
    """A shim failure with no more specific class (the runtime failed, an internal error)."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


_ERRORS: dict[int, type[errors.ContainerdError]] = {
    ttrpc.INVALID_ARGUMENT: errors.InvalidArgument,
    ttrpc.NOT_FOUND: errors.NotFound,
    ttrpc.ALREADY_EXISTS: errors.AlreadyExists,
    ttrpc.FAILED_PRECONDITION: errors.FailedPrecondition,
    ttrpc.UNIMPLEMENTED: errors.Unimplemented,
    ttrpc.UNAVAILABLE: errors.Unavailable,
    ttrpc.DEADLINE_EXCEEDED: DeadlineExceeded,
}
_CODE_NAMES = {ttrpc.UNKNOWN: "UNKNOWN", ttrpc.INTERNAL: "INTERNAL", ttrpc.CANCELLED: "CANCELLED"}


def error_for(code: int, message: str) -> errors.ContainerdError:
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls(message)
    return ShimError(message, _CODE_NAMES.get(code, f"CODE_{code}"))


# --- starting and cleaning up shims ---------------------------------------------------------------


def default_shim_command() -> list[str]:
    """`pycontainerd-shim` as an isolated interpreter on this repository (no pip wrapper, no site)."""
    boot = f"import sys;sys.path.insert(0,{REPO!r});from shim.main import main;sys.exit(main())"
    return [sys.executable, "-IS", "-c", boot]


@dataclass
class ShimConfig:
    id: str
    bundle: str
    namespace: str = "default"
    state_dir: str = ""  # default: the bundle
    runtime: str = "pyrunc"
    runtime_root: str = ""
    address: str = ""  # the daemon's socket (recorded by the shim)
    socket: str = ""  # default: STATE_DIR/shim.sock
    exit_timeout: float | None = None
    systemd_cgroup: bool = False  # containerd.runc.v1.Options' SystemdCgroup: the runtime's --systemd-cgroup
    command: list[str] = field(default_factory=default_shim_command)

    def argv(self, action: str) -> list[str]:
        argv = [*self.command, "--namespace", self.namespace, "--id", self.id, "--bundle", self.bundle]
        for flag, value in (
            ("--state-dir", self.state_dir),
            ("--runtime", self.runtime),
            ("--runtime-root", self.runtime_root),
            ("--address", self.address),
            ("--socket", self.socket),
        ):
            if value:
                argv += [flag, value]
        if self.exit_timeout is not None:
            argv += ["--exit-timeout", str(self.exit_timeout)]
        if self.systemd_cgroup:
            argv.append("--systemd-cgroup")
        return [*argv, action]


def start_shim(config: ShimConfig, timeout: float = 30, spawner: ShimSpawner | None = None) -> str:
    """Start the shim of a task (or find the one already serving its state dir); return its address.

    With a SPAWNER, a shim of the default command is forked from its warm template; otherwise (or
    for another command: another checkout's shim) `pycontainerd-shim start` runs."""
    if spawner is not None and config.command == default_shim_command():
        return spawner.start(config, timeout)
    done = _run_shim(config, "start", timeout)
    return done.stdout.decode().strip()


class ShimSpawner:
    """pycontainerd's handle on the shim template (shim/spawner.py), started at its first use.

    The template is this daemon's child and reads requests on a pipe: when the daemon exits, the
    pipe closes and the template exits with it, while the shims forked from it run on (they are
    orphaned at once, in sessions of their own). Requests are one at a time (each takes a fork
    and the shim's start-up); a template that died is started again once per request."""

    def __init__(self, tag: Sequence[str] = ()) -> None:
        # Arguments the template ignores, for its command line only: the shims forked from it share
        # that command line, so it should name the daemon (its socket, its state), as a started
        # shim's names its bundle, for `ps` and for whoever looks for a daemon's processes.
        self._tag = list(tag)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, config: ShimConfig, timeout: float = 30) -> str:
        import json

        request = json.dumps(config.argv("start")[len(config.command) :]).encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):
                proc = self._running()
                assert proc.stdin is not None and proc.stdout is not None
                try:
                    proc.stdin.write(request)
                    proc.stdin.flush()
                    answer = _read_line(proc.stdout.fileno(), timeout)
                except (OSError, EOFError):
                    self._discard()
                    if attempt == 2:
                        raise errors.Unavailable("the shim template died twice in a row") from None
                    continue
                except TimeoutError:
                    self._discard()
                    raise DeadlineExceeded(
                        f"starting the shim of {config.id} took longer than {timeout:g}s"
                    ) from None
                text = answer.decode(errors="replace")
                if text.startswith("ok "):
                    return text[3:]
                raise ShimError(text.removeprefix("error ") or f"cannot start the shim of {config.id}")
        raise AssertionError("unreachable")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._discard()
        boot = f"import sys;sys.path.insert(0,{REPO!r});from shim.spawner import main;sys.exit(main())"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-IS", "-c", boot, *self._tag],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                close_fds=True,
            )
        except OSError as exc:
            raise errors.Unavailable(f"cannot run the shim template: {exc.strerror}") from None
        return self._proc

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()

    def close(self) -> None:
        """Daemon shutdown: the template reads EOF and exits; the shims it forked run on."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from FD within TIMEOUT seconds; EOFError if it closes first, TimeoutError if late."""
    import select
    import time

    deadline = time.monotonic() + timeout
    data = b""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            raise EOFError
        data += chunk
    return data.rstrip(b"\n")


def cleanup_shim(config: ShimConfig, timeout: float = 60) -> shim_pb2.DeleteResponse:
    """After a shim died: delete its container and files (`pycontainerd-shim delete`)."""
    done = _run_shim(config, "delete", timeout)
    response = shim_pb2.DeleteResponse()
    response.ParseFromString(done.stdout)
    return response


def _run_shim(config: ShimConfig, action: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(
            config.argv(action), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise DeadlineExceeded(
            f"pycontainerd-shim {action} for {config.id} took longer than {timeout:g}s"
        ) from None
    except OSError as exc:
        raise errors.Unavailable(f"cannot run pycontainerd-shim: {exc.strerror}") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ShimError(message[-1] if message else f"pycontainerd-shim {action} failed ({done.returncode})")
    return done


# --- the ttrpc client -------------------------------------------------------------------------------


class _Pending:
    __slots__ = ("event", "status", "payload")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.status: dict[str, Any] | None = None
        self.payload = b""


class TtrpcClient:
    """Unary ttrpc calls over one unix socket, safe to share between threads."""

    def __init__(self, address: str, connect_timeout: float = 10.0) -> None:
        path = address[len("unix://") :] if address.startswith("unix://") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(connect_timeout)
            self._sock.connect(path)
            self._sock.settimeout(None)
        except OSError as exc:
            self._sock.close()
            raise errors.Unavailable(f"cannot connect to shim at {path}: {exc.strerror or exc}") from None
        self.address = address
        self._lock = threading.Lock()
        self._next_stream = 1
        self._pending: dict[int, _Pending] = {}
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name=f"ttrpc {path}", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, service: str, method: str, payload: bytes, timeout: float | None = None) -> bytes:
        stream_id, pending = self._send(service, method, payload, timeout)
        if not pending.event.wait(timeout):
            with self._lock:
                self._pending.pop(stream_id, None)
            raise DeadlineExceeded(f"{method} on shim {self.address} timed out after {timeout:g}s")
        return _result(pending)

    def send(self, service: str, method: str, payload: bytes, timeout: float | None = None) -> _Pending:
        """Send a request without waiting for its answer: PENDING's event is set when it arrives
        (or the connection is lost), and `result(pending)` reads it then."""
        return self._send(service, method, payload, timeout)[1]

    def _send(self, service: str, method: str, payload: bytes, timeout: float | None) -> tuple[int, _Pending]:
        pending = _Pending()
        request: dict[str, Any] = {"service": service, "method": method, "payload": payload}
        if timeout is not None:
            request["timeout_nano"] = int(timeout * 1e9)
        with self._lock:
            if self._closed:
                raise errors.Unavailable(f"connection to shim {self.address} is closed")
            stream_id = self._next_stream
            self._next_stream += 2  # clients use odd stream ids
            self._pending[stream_id] = pending
            try:
                self._sock.sendall(ttrpc.frame(stream_id, ttrpc.TYPE_REQUEST, encode(ttrpc.REQUEST, request)))
            except OSError as exc:
                del self._pending[stream_id]
                raise errors.Unavailable(f"shim {self.address}: {exc.strerror or exc}") from None
        return stream_id, pending

    def _read_loop(self) -> None:
        reader = ttrpc.FrameReader()
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                for stream_id, mtype, _flags, payload in reader.feed(data):
                    if mtype != ttrpc.TYPE_RESPONSE:
                        continue
                    with self._lock:
                        pending = self._pending.pop(stream_id, None)
                    if pending is None:
                        continue
                    try:
                        response = decode(ttrpc.RESPONSE, payload)
                    except WireError as exc:
                        response = {
                            "status": {"code": ttrpc.INTERNAL, "message": f"malformed response: {exc}"}
                        }
                    pending.status = response.get("status")
                    pending.payload = response.get("payload", b"")
                    pending.event.set()
        except (OSError, ttrpc.ProtocolError):
            pass
        with self._lock:
            self._closed = True
            pending_calls, self._pending = self._pending, {}
        for pending in pending_calls.values():
            pending.status = {
                "code": ttrpc.UNAVAILABLE,
                "message": f"connection to shim {self.address} was lost",
            }
            pending.event.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)


def _result(pending: _Pending) -> bytes:
    """The payload of an answered call, or its error."""
    status = pending.status or {}
    if status.get("code", 0) != 0:
        raise error_for(status["code"], status.get("message", ""))
    return pending.payload


def _message(cls: type[M], request: M | None, fields: dict[str, Any]) -> M:
    if request is not None:
        if fields:
            raise TypeError("pass a request message or keyword fields, not both")
        return request
    return cls(**fields)


class ShimClient:
    """containerd.task.v2.Task (and the shim's event queue) on one shim."""

    def __init__(self, address: str, connect_timeout: float = 10.0) -> None:
        self.ttrpc = TtrpcClient(address, connect_timeout)

    def __enter__(self) -> ShimClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ttrpc.close()

    def _call(
        self,
        method: str,
        request: Message,
        response_cls: type[M],
        timeout: float | None,
        service: str = TASK_SERVICE,
    ) -> M:
        raw = self.ttrpc.call(service, method, request.SerializeToString(), timeout)
        response = response_cls()
        try:
            response.ParseFromString(raw)
        except DecodeError as exc:
            raise ShimError(f"{method}: malformed response from the shim: {exc}", "INTERNAL") from None
        return response

    def state(
        self, request: shim_pb2.StateRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> shim_pb2.StateResponse:
        return self._call(
            "State", _message(shim_pb2.StateRequest, request, fields), shim_pb2.StateResponse, timeout
        )

    def create(
        self, request: shim_pb2.CreateTaskRequest | None = None, *, timeout: float | None = 120, **fields: Any
    ) -> shim_pb2.CreateTaskResponse:
        return self._call(
            "Create",
            _message(shim_pb2.CreateTaskRequest, request, fields),
            shim_pb2.CreateTaskResponse,
            timeout,
        )

    def start(
        self, request: shim_pb2.StartRequest | None = None, *, timeout: float | None = 60, **fields: Any
    ) -> shim_pb2.StartResponse:
        return self._call(
            "Start", _message(shim_pb2.StartRequest, request, fields), shim_pb2.StartResponse, timeout
        )

    def delete(
        self, request: shim_pb2.DeleteRequest | None = None, *, timeout: float | None = 60, **fields: Any
    ) -> shim_pb2.DeleteResponse:
        return self._call(
            "Delete", _message(shim_pb2.DeleteRequest, request, fields), shim_pb2.DeleteResponse, timeout
        )

    def pids(
        self, request: shim_pb2.PidsRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> shim_pb2.PidsResponse:
        return self._call(
            "Pids", _message(shim_pb2.PidsRequest, request, fields), shim_pb2.PidsResponse, timeout
        )

    def pause(
        self, request: shim_pb2.PauseRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("Pause", _message(shim_pb2.PauseRequest, request, fields), empty_pb2.Empty, timeout)

    def resume(
        self, request: shim_pb2.ResumeRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("Resume", _message(shim_pb2.ResumeRequest, request, fields), empty_pb2.Empty, timeout)

    def checkpoint(
        self,
        request: shim_pb2.CheckpointTaskRequest | None = None,
        *,
        timeout: float | None = 30,
        **fields: Any,
    ) -> None:
        self._call(
            "Checkpoint", _message(shim_pb2.CheckpointTaskRequest, request, fields), empty_pb2.Empty, timeout
        )

    def kill(
        self, request: shim_pb2.KillRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("Kill", _message(shim_pb2.KillRequest, request, fields), empty_pb2.Empty, timeout)

    def exec(
        self, request: shim_pb2.ExecProcessRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("Exec", _message(shim_pb2.ExecProcessRequest, request, fields), empty_pb2.Empty, timeout)

    def resize_pty(
        self, request: shim_pb2.ResizePtyRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call(
            "ResizePty", _message(shim_pb2.ResizePtyRequest, request, fields), empty_pb2.Empty, timeout
        )

    def close_io(
        self, request: shim_pb2.CloseIORequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("CloseIO", _message(shim_pb2.CloseIORequest, request, fields), empty_pb2.Empty, timeout)

    def update(
        self, request: shim_pb2.UpdateTaskRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        self._call("Update", _message(shim_pb2.UpdateTaskRequest, request, fields), empty_pb2.Empty, timeout)

    def wait(
        self, request: shim_pb2.WaitRequest | None = None, *, timeout: float | None = None, **fields: Any
    ) -> shim_pb2.WaitResponse:
        """Block until the process exits (no timeout by default)."""
        return self._call(
            "Wait", _message(shim_pb2.WaitRequest, request, fields), shim_pb2.WaitResponse, timeout
        )

    def stats(
        self, request: shim_pb2.StatsRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> shim_pb2.StatsResponse:
        return self._call(
            "Stats", _message(shim_pb2.StatsRequest, request, fields), shim_pb2.StatsResponse, timeout
        )

    def connect(
        self, request: shim_pb2.ConnectRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> shim_pb2.ConnectResponse:
        return self._call(
            "Connect", _message(shim_pb2.ConnectRequest, request, fields), shim_pb2.ConnectResponse, timeout
        )

    def shutdown(
        self, request: shim_pb2.ShutdownRequest | None = None, *, timeout: float | None = 30, **fields: Any
    ) -> None:
        """Ask the shim to exit; it does once its task is deleted (or at once with now=True).

        The shim may close the connection before its answer arrives: that is success too.
        """
        try:
            self._call(
                "Shutdown", _message(shim_pb2.ShutdownRequest, request, fields), empty_pb2.Empty, timeout
            )
        except errors.Unavailable:
            pass

    # --- the shim's event queue ---------------------------------------------------------------
    def fetch_events(
        self, after: int = 0, wait: bool = False, timeout_ms: int = 0
    ) -> list[shim_events_pb2.ShimEvent]:
        """Queued events with seq > AFTER; with WAIT, block until there is one (or TIMEOUT_MS passes)."""
        request = shim_events_pb2.FetchEventsRequest(after=after, wait=wait, timeout_ms=timeout_ms)
        timeout = None if wait and not timeout_ms else (timeout_ms / 1000 + 30 if wait else 30)
        response = self._call("Fetch", request, shim_events_pb2.FetchEventsResponse, timeout, EVENTS_SERVICE)
        return list(response.events)

    def ack_events(self, seq: int) -> None:
        """The daemon has handled every event up to SEQ: the shim forgets them."""
        self._call("Ack", shim_events_pb2.AckEventsRequest(seq=seq), empty_pb2.Empty, 30, EVENTS_SERVICE)

    def send_ack(self, seq: int) -> Acknowledgement:
        """ack_events without waiting for the answer: the next Fetch can go out at once behind
        it (the shim answers in order), so an event queued meanwhile is not held up by the
        acknowledgement's round trip. `Acknowledgement.check()` raises its error later."""
        request = shim_events_pb2.AckEventsRequest(seq=seq).SerializeToString()
        return Acknowledgement(seq, self.ttrpc.send(EVENTS_SERVICE, "Ack", request, 30))


class Acknowledgement:
    """An Ack sent and not waited for."""

    def __init__(self, seq: int, pending: _Pending) -> None:
        self.seq = seq
        self._pending = pending

    def check(self) -> None:
        """Raise the Ack's error if it has been answered with one (nothing if not answered yet)."""
        if self._pending.event.is_set():
            _result(self._pending)
