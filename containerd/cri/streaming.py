"""The CRI streaming server: exec, attach and port-forward sessions, as containerd's CRI serves them.

Exec/Attach/PortForward RPCs only check the request and answer a one-time URL
(`http://<stream_server_address>:<port>/<kind>/<token>`, valid for a minute, as kubelet's
request cache); the client (crictl, or kubelet's proxy) then upgrades an HTTP request on it to
SPDY/3.1 (spdy.py) and opens one stream per channel: remotecommand v4 for exec and attach
(`error`, `stdin`, `stdout`, `stderr`, `resize`, the exit status as a JSON Status on `error`),
`portforward.k8s.io` for port-forward (a `data` and an `error` stream per connection, the
connection made to localhost:<port> inside the pod's network namespace).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common import libc
from containerd.client import IO
from containerd.client.errors import ContainerdError as ClientError
from containerd.cri import spec as specs
from containerd.cri.spdy import Connection, Stream
from containerd.errors import ContainerdError, InvalidArgument
from protos.gen.cri_api.runtime.v1 import api_pb2 as cri

if TYPE_CHECKING:
    from containerd.cri.plugin import Plugin

log = logging.getLogger("pycontainerd.cri.streaming")
TOKEN_TTL = 60.0
STREAM_WAIT = 30.0
REMOTECOMMAND_V4 = "v4.channel.k8s.io"
PORTFORWARD = "portforward.k8s.io"


@dataclass
class _Pending:
    kind: str
    request: Any
    expires: float


class StreamServer:
    def __init__(self, plugin: Plugin, address: str, port: int) -> None:
        self.p = plugin
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((address, port), Handler)
        host, bound = self._server.server_address[:2]
        self.base = f"http://{host!s}:{bound}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="cri-stream", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- URLs ----------------------------------------------------------------------------------

    def _token(self, kind: str, request: Any) -> str:
        token = secrets.token_urlsafe(12)
        now = time.monotonic()
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v.expires > now}
            self._pending[token] = _Pending(kind, request, now + TOKEN_TTL)
        return f"{self.base}/{kind}/{token}"

    def exec_url(self, req: cri.ExecRequest) -> str:
        item = self.p.containers.get(req.container_id)
        self._check_running(item)
        if not req.cmd:
            raise InvalidArgument("exec command must not be empty")
        _check_streams(req.stdin, req.stdout, req.stderr, req.tty)
        fixed = cri.ExecRequest()
        fixed.CopyFrom(req)
        fixed.container_id = item.meta.id
        return self._token("exec", fixed)

    def attach_url(self, req: cri.AttachRequest) -> str:
        item = self.p.containers.get(req.container_id)
        self._check_running(item)
        _check_streams(req.stdin, req.stdout, req.stderr, req.tty)
        fixed = cri.AttachRequest()
        fixed.CopyFrom(req)
        fixed.container_id = item.meta.id
        return self._token("attach", fixed)

    def port_forward_url(self, req: cri.PortForwardRequest) -> str:
        sandbox = self.p.sandboxes.get(req.pod_sandbox_id)
        if self.p.pods.state(sandbox) != cri.SANDBOX_READY:
            raise ContainerdError(f"sandbox {sandbox.meta.id!r} is not running")
        fixed = cri.PortForwardRequest()
        fixed.CopyFrom(req)
        fixed.pod_sandbox_id = sandbox.meta.id
        return self._token("portforward", fixed)

    def _check_running(self, item: Any) -> None:
        state = self.p.ctrs.state(item)
        if state != cri.CONTAINER_RUNNING:
            from containerd.cri.containers import STATE_NAMES

            raise ContainerdError(f"container is in {STATE_NAMES[state]} state")

    # --- the HTTP side -------------------------------------------------------------------------

    def _handle(self, sock: socket.socket) -> None:
        try:
            head = _read_head(sock)
        except (OSError, ValueError):
            return
        method, path, headers = head
        parts = path.split("?", 1)[0].strip("/").split("/")
        with self._lock:
            pending = self._pending.pop(parts[1], None) if len(parts) == 2 else None
        if pending is None or pending.kind != parts[0] or pending.expires < time.monotonic():
            _respond(sock, 404, "Not Found", "unknown or expired streaming request")
            return
        if headers.get("upgrade", "").lower() != "spdy/3.1":
            _respond(sock, 400, "Bad Request", "this endpoint speaks SPDY/3.1 only (Upgrade: SPDY/3.1)")
            return
        offered = [v.strip() for v in headers.get("x-stream-protocol-version", "").split(",") if v.strip()]
        want = PORTFORWARD if pending.kind == "portforward" else REMOTECOMMAND_V4
        if want not in offered:
            _respond(
                sock,
                403,
                "Forbidden",
                f"unsupported streaming protocol: {offered}; this server speaks {want}",
            )
            return
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            + f"X-Stream-Protocol-Version: {want}\r\n\r\n".encode()
        )
        if pending.kind == "portforward":
            PortForwardSession(self.p, pending.request, sock).run()
        else:
            session = RemoteCommandSession(self.p, pending.kind, pending.request, sock)
            session.run()


def _check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> None:
    if not (stdin or stdout or stderr):
        raise InvalidArgument("one of stdin, stdout, or stderr must be set")
    if tty and stderr:
        raise InvalidArgument("tty and stderr cannot both be true")


def _read_head(sock: socket.socket) -> tuple[str, str, dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk or len(data) > 65536:
            raise ValueError("no request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if rest:
        raise ValueError("data before the upgrade")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return method, path, headers


def _respond(sock: socket.socket, code: int, reason: str, text: str) -> None:
    body = text.encode() + b"\n"
    with contextlib.suppress(OSError):
        sock.sendall(
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


# --- exec and attach -------------------------------------------------------------------------------


def _status_json(exit_code: int | None, cmd: list[str], error: str = "") -> bytes:
    if error:
        doc: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": error}
    elif not exit_code:
        doc = {"metadata": {}, "status": "Success"}
    else:
        doc = {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {cmd}, exit code {exit_code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    return json.dumps(doc).encode()


class RemoteCommandSession:
    def __init__(self, plugin: Plugin, kind: str, request: Any, sock: socket.socket) -> None:
        self.p = plugin
        self.kind = kind
        self.req = request
        self.streams: dict[str, Stream] = {}
        self._arrived = threading.Condition()
        self.conn = Connection(sock, self._on_stream)
        self.expected = {"error"}
        if request.stdin:
            self.expected.add("stdin")
        if request.stdout:
            self.expected.add("stdout")
        if request.stderr and not request.tty:
            self.expected.add("stderr")
        if request.tty:
            self.expected.add("resize")

    def _on_stream(self, stream: Stream) -> None:
        with self._arrived:
            self.streams[stream.headers.get("streamtype", "")] = stream
            self._arrived.notify_all()

    def run(self) -> None:
        reader = threading.Thread(target=self.conn.serve, daemon=True)
        reader.start()
        with self._arrived:
            ok = self._arrived.wait_for(
                lambda: self.expected <= set(self.streams) or self.conn.closed.is_set(), STREAM_WAIT
            )
        if not ok or self.conn.closed.is_set():
            self.conn.close()
            return
        try:
            if self.kind == "exec":
                code, error = self._exec()
            else:
                code, error = self._attach()
        except (ClientError, ContainerdError, OSError) as exc:
            code, error = None, str(exc)
        self.streams["error"].write(_status_json(code, list(getattr(self.req, "cmd", [])), error))
        for stream in self.streams.values():
            stream.close()
        self.conn.close()
        reader.join(5)

    def _pump_resize(self, container_id: str, exec_id: str) -> None:
        stream = self.streams.get("resize")
        if stream is None:
            return
        decoder = json.JSONDecoder()
        buf = ""
        while data := stream.read():
            buf += data.decode(errors="replace")
            while buf.strip():
                try:
                    size, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                with contextlib.suppress(ClientError):
                    self.p.client.tasks.resize_pty(
                        container_id, int(size.get("Width", 0)), int(size.get("Height", 0)), exec_id=exec_id
                    )

    def _pump_stdin(self, fifo: str, on_eof: Any) -> None:
        stream = self.streams["stdin"]
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            while data := stream.read():
                os.write(fd, data)
        except OSError:
            pass
        finally:
            os.close(fd)
        on_eof()

    def _exec(self) -> tuple[int | None, str]:
        p, req = self.p, self.req
        cid = req.container_id
        record = p.client.containers.get(cid)
        process = specs.exec_process(record.oci_spec(), list(req.cmd), req.tty)
        exec_id = secrets.token_hex(16)
        io_dir = os.path.join(p.io_dir(cid), f"exec-{exec_id}")
        os.makedirs(io_dir, mode=0o700)
        fifos = {s: os.path.join(io_dir, s) for s in ("stdin", "stdout", "stderr") if s in self.expected}
        for path in fifos.values():
            os.mkfifo(path, 0o600)
        copiers = [
            threading.Thread(target=_copy_out, args=(fifos[s], self.streams[s]), daemon=True)
            for s in ("stdout", "stderr")
            if s in fifos
        ]
        for t in copiers:
            t.start()
        waiter = p.waiter(cid, exec_id)
        try:
            p.client.tasks.exec(
                cid,
                exec_id,
                process,
                IO(fifos.get("stdin", ""), fifos.get("stdout", ""), fifos.get("stderr", ""), req.tty),
            )
            p.client.tasks.start(cid, exec_id)
            if "stdin" in fifos:
                close = lambda: _quiet(lambda: p.client.tasks.close_io(cid, exec_id=exec_id))  # noqa: E731
                threading.Thread(target=self._pump_stdin, args=(fifos["stdin"], close), daemon=True).start()
            threading.Thread(target=self._pump_resize, args=(cid, exec_id), daemon=True).start()
            while not waiter.done.wait(0.5):
                if self.conn.closed.is_set():  # the client went away: so does its process
                    _quiet(lambda: p.client.tasks.kill(cid, 9, exec_id=exec_id))
            for t in copiers:
                t.join(10)
            return waiter.status, ""
        finally:
            _quiet(lambda: p.client.tasks.delete_process(cid, exec_id))
            for path in fifos.values():
                with contextlib.suppress(OSError):
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            shutil.rmtree(io_dir, ignore_errors=True)
            p.drop_waiter(cid, exec_id)

    def _attach(self) -> tuple[int | None, str]:
        p, req = self.p, self.req
        item = p.containers.get(req.container_id)
        cid = item.meta.id
        unsubscribe = p.attach_output(cid, self.streams.get("stdout"), self.streams.get("stderr"))
        try:
            config = p.ctrs.config(item)
            if "stdin" in self.streams and config.stdin:
                fifo = os.path.join(p.io_dir(cid), "stdin")
                on_eof = (
                    (lambda: _quiet(lambda: p.client.tasks.close_io(cid)))
                    if config.stdin_once
                    else (lambda: None)
                )
                threading.Thread(target=self._pump_stdin, args=(fifo, on_eof), daemon=True).start()
            threading.Thread(target=self._pump_resize, args=(cid, ""), daemon=True).start()
            while not item.exited.wait(0.5):
                if self.conn.closed.is_set():
                    return 0, ""
            p.finish_logs(cid, timeout=5)  # every byte of output before the status
            return 0, ""
        finally:
            unsubscribe()


def _copy_out(fifo: str, stream: Stream) -> None:
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        while data := os.read(fd, 65536):
            stream.write(data)
    except OSError:
        pass
    finally:
        os.close(fd)


def _quiet(call: Any) -> None:
    try:
        call()
    except (ClientError, OSError):
        pass


# --- port-forward ----------------------------------------------------------------------------------


def dial_in_netns(netns_path: str, port: int) -> socket.socket:
    """localhost:PORT of the pod, from a thread that enters the pod's network namespace for the
    socket's creation only (setns affects the calling thread; a socket keeps its namespace)."""
    result: dict[str, Any] = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(target, libc.CLONE_NEWNET)
            try:
                result["sock"] = socket.create_connection(("127.0.0.1", port), timeout=10)
            finally:
                try:
                    libc.setns(own, libc.CLONE_NEWNET)
                except OSError:  # never leave a pool thread in the pod's namespace
                    os._exit(70)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    sock: socket.socket = result["sock"]
    sock.settimeout(None)
    return sock


class PortForwardSession:
    def __init__(self, plugin: Plugin, request: cri.PortForwardRequest, sock: socket.socket) -> None:
        self.p = plugin
        self.req = request
        self.pairs: dict[str, dict[str, Stream]] = {}
        self._lock = threading.Lock()
        self.conn = Connection(sock, self._on_stream)

    def run(self) -> None:
        self.conn.serve()  # until the client closes the connection
        self.conn.close()

    def _on_stream(self, stream: Stream) -> None:
        key = stream.headers.get("requestid") or stream.headers.get("port", "")
        with self._lock:
            pair = self.pairs.setdefault(key, {})
            pair[stream.headers.get("streamtype", "")] = stream
            ready = "data" in pair and "error" in pair
        if ready:
            threading.Thread(target=self._forward, args=(key,), daemon=True).start()

    def _forward(self, key: str) -> None:
        with self._lock:
            pair = self.pairs.pop(key)
        data, error = pair["data"], pair["error"]
        try:
            port = int(data.headers.get("port", ""))
            sandbox = self.p.sandboxes.get(self.req.pod_sandbox_id)
            if sandbox.meta.netns:
                sock = dial_in_netns(sandbox.meta.netns, port)
            else:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.settimeout(None)
        except (ValueError, OSError, ContainerdError) as exc:
            error.write(
                f"failed to connect to localhost:{data.headers.get('port')} inside namespace of {self.req.pod_sandbox_id}: {exc}".encode()
            )
            error.close()
            data.close()
            return
        error.close()

        def upstream() -> None:
            try:
                while chunk := data.read():
                    sock.sendall(chunk)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=upstream, daemon=True)
        t.start()
        try:
            while chunk := sock.recv(65536):
                data.write(chunk)
        except OSError:
            pass
        data.close()
        t.join(30)
        sock.close()
