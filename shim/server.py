"""The long-lived shim: a ttrpc server on a unix socket, the task service and the reaper.

`pycontainerd-shim start` execs this (python -IS) in a new session, already a child
subreaper; it listens, reports readiness on --ready-fd and then runs the event loop
until Shutdown, or until its task has exited and no client has come back for
--exit-timeout seconds.
"""

from __future__ import annotations

import _signal
import _socket
import os
import sys

import ttrpc
from common import fastjson, schema
from common.atomicfile import write_atomic
from shim import messages as m
from shim.events import EventQueue
from shim.frozen import hold_code
from shim.loop import ERR, IN, OUT, Loop, log, log_exception
from shim.options import LAYOUT_VERSION, Options, UsageError, parse
from shim.task import TaskService
from ttrpc.wire import WireError, decode, encode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[[dict[str, Any], "Call"], bytes | None]


class Call:
    """One request in flight; a handler answers now (returns bytes) or later through reply()."""

    __slots__ = ("conn", "stream_id", "answered")

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.answered = False

    @property
    def alive(self) -> bool:
        return not self.answered and not self.conn.closed

    def reply(self, payload: bytes) -> None:
        self._send({"status": {}, "payload": payload})

    def fail(self, code: int, message: str) -> None:
        self._send({"status": {"code": code, "message": message}})

    def _send(self, response: dict[str, Any]) -> None:
        if self.alive:
            self.answered = True
            self.conn.send(ttrpc.frame(self.stream_id, ttrpc.TYPE_RESPONSE, encode(ttrpc.RESPONSE, response)))


class Connection:
    __slots__ = ("server", "sock", "fd", "reader", "out", "closed")

    def __init__(self, server: Server, sock: _socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = ttrpc.FrameReader()
        self.out = bytearray()
        self.closed = False
        server.loop.watch(self.fd, IN, self._on_event)

    def _on_event(self, mask: int) -> None:
        if mask & OUT:
            self._flush()
        if mask & (IN | ERR) and not self.closed:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close()
                return
            try:
                frames = self.reader.feed(data)
            except ttrpc.ProtocolError as exc:
                log(f"dropping a client: {exc}")
                self.close()
                return
            for stream_id, mtype, _flags, payload in frames:
                if mtype == ttrpc.TYPE_REQUEST:
                    self.server.dispatch(Call(self, stream_id), payload)

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.out += data
        self._flush()

    def _flush(self) -> None:
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            del self.out[:sent]
        self.server.loop.set_mask(self.fd, IN | OUT if self.out else IN)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.loop.unwatch(self.fd)
            self.sock.close()
            self.server.forget(self)


class Server:
    def __init__(
        self, loop: Loop, path: str, services: dict[str, dict[str, tuple[tuple[Any, ...], Handler]]]
    ) -> None:
        self.loop = loop
        self.path = path
        self.services = services
        self.conns: set[Connection] = set()
        self.on_clients_changed: Callable[[], None] = lambda: None
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)  # the socket is the daemon's (root's) alone
        try:
            self.sock.bind(path)
        finally:
            os.umask(old_umask)
        self.sock.listen(64)
        self.sock.setblocking(False)
        loop.watch(self.sock.fileno(), IN, self._on_accept)

    def _on_accept(self, _mask: int) -> None:
        while True:
            try:
                fd, _ = self.sock._accept()  # type: ignore[attr-defined]
            except BlockingIOError:
                return
            conn_sock = _socket.socket(fileno=fd)
            conn_sock.setblocking(False)
            self.conns.add(Connection(self, conn_sock))
            self.on_clients_changed()

    def forget(self, conn: Connection) -> None:
        self.conns.discard(conn)
        self.on_clients_changed()

    def dispatch(self, call: Call, payload: bytes) -> None:
        try:
            request = decode(ttrpc.REQUEST, payload)
        except WireError as exc:
            call.fail(ttrpc.INVALID_ARGUMENT, f"malformed ttrpc request: {exc}")
            return
        service, method = request.get("service", ""), request.get("method", "")
        entry = self.services.get(service, {}).get(method)
        if entry is None:
            call.fail(ttrpc.UNIMPLEMENTED, f"/{service}/{method} is not implemented by pycontainerd-shim")
            return
        schema, handler = entry
        try:
            result = handler(decode(schema, request.get("payload", b"")), call)
        except ttrpc.RpcError as exc:
            call.fail(exc.code, exc.message)
            return
        except WireError as exc:
            call.fail(ttrpc.INVALID_ARGUMENT, f"malformed {method} request: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - logged, and answered as INTERNAL rather than dropping the call
            log_exception(f"{method} failed")
            call.fail(ttrpc.INTERNAL, f"{method}: {exc}")
            return
        if result is not None:
            call.reply(result)

    def flushed(self) -> bool:
        return all(not c.out for c in self.conns)

    def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        self.loop.unwatch(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _services(task: TaskService, events: EventQueue) -> dict[str, dict[str, tuple[tuple[Any, ...], Handler]]]:
    t = task
    return {
        "containerd.task.v2.Task": {
            "State": (m.ID_EXEC_REQUEST, t.state),
            "Create": (m.CREATE_TASK_REQUEST, t.create),
            "Start": (m.ID_EXEC_REQUEST, t.start),
            "Delete": (m.ID_EXEC_REQUEST, t.delete),
            "Pids": (m.ID_REQUEST, t.pids),
            "Pause": (m.ID_REQUEST, t.pause),
            "Resume": (m.ID_REQUEST, t.resume),
            "Checkpoint": (m.CHECKPOINT_TASK_REQUEST, t.checkpoint),
            "Kill": (m.KILL_REQUEST, t.kill),
            "Exec": (m.EXEC_PROCESS_REQUEST, t.exec),
            "ResizePty": (m.RESIZE_PTY_REQUEST, t.resize_pty),
            "CloseIO": (m.CLOSE_IO_REQUEST, t.close_io),
            "Update": (m.UPDATE_TASK_REQUEST, t.update),
            "Wait": (m.ID_EXEC_REQUEST, t.wait),
            "Stats": (m.ID_REQUEST, t.stats),
            "Connect": (m.ID_REQUEST, t.connect),
            "Shutdown": (m.SHUTDOWN_REQUEST, t.shutdown),
        },
        "pycontainerd.shim.v1.Events": {
            "Fetch": (m.FETCH_EVENTS_REQUEST, events.fetch),
            "Ack": (m.ACK_EVENTS_REQUEST, events.ack),
        },
    }


def serve(opts: Options) -> int:
    os.chdir("/")
    # A state directory a newer shim laid out is refused before anything in it is touched; an
    # older one is read as it is (the files of layout 1 are this build's) and marked as ours.
    schema.dir_version(opts.state_dir, fastjson.loads, LAYOUT_VERSION)
    for directory in (opts.state_dir, opts.exits_dir, opts.io_dir):
        os.makedirs(directory, mode=0o711, exist_ok=True)
    schema.mark_dir(opts.state_dir, LAYOUT_VERSION, durable=False)
    loop = Loop()
    events = EventQueue(loop, opts.events_dir, opts.namespace)
    task = TaskService(loop, opts, events)
    server = Server(loop, opts.socket, _services(task, events))
    task.attach(server)

    # SIGCHLD wakes the loop through a pipe; the handler itself does nothing.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, lambda *_: None)

    def on_signal(_mask: int) -> None:
        while True:
            try:
                if not os.read(wake_r, 512):
                    break
            except BlockingIOError:
                break
        task.reap()

    loop.watch(wake_r, IN, on_signal)
    # Read by pycontainerd to find and reconnect to this shim, so never seen half-written; not synced:
    # they name this process, which a power loss ends.
    write_atomic(opts.path("shim.pid"), str(os.getpid()).encode(), durable=False)
    write_atomic(opts.path("address"), ("unix://" + opts.socket).encode(), durable=False)
    if opts.ready_fd >= 0:
        os.write(opts.ready_fd, b"ok\n")
        os.close(opts.ready_fd)
        opts.ready_fd = -1
    task.reap()  # anything that exited before the handler was in place
    task.update_idle()
    loop.run()
    server.close()
    task.remove_state()
    return 0


def main(argv: list[str]) -> int:
    # Before anything else: the modules this shim loads late come from memory from now on, so an
    # upgrade that replaces the checkout under it leaves it running the code it started with.
    hold_code(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        opts = parse(argv)
    except UsageError as exc:
        print(f"pycontainerd-shim: {exc}", file=sys.stderr)
        return 2
    return run(opts)


def run(opts: Options) -> int:
    """Serve until the end; a failure to start is reported on the ready pipe, so `start` can say why."""
    try:
        return serve(opts)
    except Exception as exc:  # noqa: BLE001 - reported on the ready pipe, so `start` can say why
        if opts.ready_fd >= 0:
            try:
                os.write(opts.ready_fd, f"error {exc}\n".encode())
            except OSError:
                pass
        log_exception("the shim failed")
        return 1
