"""Hijacked connections (dockerd/hijack.py) driven by real clients against a tiny fake engine.

The fake engine is a FastAPI app plus hijack routes served by uvicorn with the hijacking
protocol. Its one container, "echo", answers an attach with a greeting on stdout, then echoes
every stdin chunk to stdout and, upper-cased, to stderr; at stdin EOF it writes "bye" and closes.
"flood" writes output until the client goes away. Exec instances run the same echo (with
AttachStdin) or print their Cmd. The Docker CLI, docker-py and hand-written sockets talk to it.
"""

from __future__ import annotations

import asyncio
import fcntl
import http.client
import json
import os
import pty
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import termios
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
import uvicorn
from docker.utils.socket import frames_iter
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dockerd.hijack import (
    RAW_STREAM,
    HijackRequest,
    HijackRouter,
    RawStream,
    StreamClosedError,
    make_protocol_class,
)

# The Docker CLI v28 (negotiates down to 1.41) and Debian's docker client 20.10.
DOCKER_CLIS = [
    pytest.param(path, id=name, marks=pytest.mark.skipif(not os.access(path, os.X_OK), reason=f"no {path}"))
    for name, path in (("cli28", "/usr/local/bin/docker"), ("cli20", "/usr/bin/docker"))
]
API_VERSION = "1.41"
GREETING = b"hello from echo\n"
UPGRADE_HEAD = (
    b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
    b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
)
PLAIN_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"


def frame(stream: int, payload: bytes) -> bytes:
    """A multiplexed-stream frame: stream id, 3 zero bytes, big-endian length, payload."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def demux(data: bytes) -> tuple[bytes, bytes]:
    out = {1: bytearray(), 2: bytearray()}
    while data:
        kind, size = struct.unpack(">BxxxL", data[:8])
        out[kind] += data[8 : 8 + size]
        data = data[8 + size :]
    return bytes(out[1]), bytes(out[2])


# --- the fake engine ----------------------------------------------------------------------------


@dataclass
class EngineStats:
    """What the server saw, for assertions made from the test thread."""

    sessions_done: int = 0
    flood_disconnects: int = 0
    handler_errors: list[str] = field(default_factory=list)


@dataclass
class FakeEngine:
    stats: EngineStats = field(default_factory=EngineStats)
    execs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: asyncio.Condition | None = None  # notified when an echo session ends (for /wait)
    tty_size: tuple[int, int] | None = None
    tty_detached: int = 0
    drained: list[str] = field(default_factory=list)

    def condition(self) -> asyncio.Condition:
        if self.ended is None:
            self.ended = asyncio.Condition()
        return self.ended

    async def session_ended(self) -> None:
        self.stats.sessions_done += 1
        async with self.condition():
            self.condition().notify_all()

    async def echo(self, stream: RawStream, greet: bool) -> None:
        await stream.begin_stream(RAW_STREAM)
        if greet:
            await stream.write(frame(1, GREETING))
        while chunk := await stream.read():
            await stream.write(frame(1, chunk))
            await stream.write(frame(2, chunk.upper()))
        await stream.write(frame(1, b"bye\n"))
        await stream.close()
        await self.session_ended()

    async def tty_echo(self, stream: RawStream) -> None:
        """A Tty container: no frames, and a terminal would echo what is typed."""
        await stream.begin_stream(RAW_STREAM)
        await stream.write(b"tty ready\r\n")
        while chunk := await stream.read():
            await stream.write(chunk.replace(b"\r", b"\r\n"))
        self.tty_detached += 1
        await stream.close()

    async def attach(self, request: HijackRequest, stream: RawStream) -> None:
        name = request.params["name"]
        if name == "crash":
            raise RuntimeError("the handler fails before answering")
        try:
            if name == "echo":
                # greet=0 for docker-py: it reads the head through a buffered file and then
                # reads frames from the bare socket, so output sent right behind the head is lost.
                await self.echo(stream, greet=request.query_value("greet") != "0")
            elif name == "drain":
                # Output first, then a half-close, then stdin to the end (like `docker cp` uploads).
                await stream.begin_stream(RAW_STREAM)
                await stream.write(frame(1, b"done\n"))
                await stream.close_write()
                received = bytearray()
                while chunk := await stream.read():
                    received += chunk
                await stream.close()
                await stream.wait_closed()
                self.drained.append(bytes(received).decode())
            elif name == "tty":
                await self.tty_echo(stream)
            elif name == "flood":
                await stream.begin_stream(RAW_STREAM)
                try:
                    while True:
                        await stream.write(frame(1, b"x" * 4096))
                        await asyncio.sleep(0)
                except StreamClosedError:
                    self.stats.flood_disconnects += 1
                    raise
            else:
                await stream.send_error(404, f"No such container: {name}")
        except StreamClosedError:
            raise
        except Exception as exc:
            self.stats.handler_errors.append(repr(exc))
            raise

    async def exec_start(self, request: HijackRequest, stream: RawStream) -> None:
        exec_id = request.params["id"]
        spec = self.execs.get(exec_id)
        if spec is None:
            await stream.send_error(
                404, f"No such exec instance: {exec_id}", headers=[("Api-Version", API_VERSION)]
            )
            return
        options = request.json() or {}
        if options.get("Detach"):
            await stream.send_response(200, b"", content_type=None)
            return
        if spec.get("AttachStdin"):
            await self.echo(stream, greet=False)
            return
        await stream.begin_stream(RAW_STREAM, headers=[("Api-Version", API_VERSION)])
        await asyncio.sleep(0.2)  # the process starts after the head, as in dockerd (docker-py relies on it)
        await stream.write(frame(1, " ".join(spec["Cmd"]).encode() + b"\n"))
        await stream.write(frame(2, b"to stderr\n"))
        await stream.close()


class StripVersion:
    """Serve /vX.Y/... as /... (the fake's ASGI routes are unversioned)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            parts = path.split("/", 2)
            if len(parts) > 2 and parts[1].startswith("v") and parts[1][1:2].isdigit():
                scope = dict(scope, path="/" + parts[2])
        await self.app(scope, receive, send)


def build_engine() -> tuple[ASGIApp, HijackRouter, FakeEngine]:
    engine = FakeEngine()
    app = FastAPI()
    headers = {"Api-Version": API_VERSION, "Ostype": "linux"}

    @app.api_route("/_ping", methods=["GET", "HEAD"])
    async def ping() -> Response:
        return Response("OK", media_type="text/plain", headers=headers)

    @app.get("/containers/{name}/json")
    async def inspect(name: str) -> Response:
        if name not in ("echo", "flood", "tty"):
            return JSONResponse({"message": f"No such container: {name}"}, status_code=404)
        tty = name == "tty"
        return JSONResponse(
            {
                "Id": (name.encode().hex() * 64)[:64],
                "Name": f"/{name}",
                "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False},
                "Config": {"Tty": tty, "OpenStdin": True, "AttachStdin": False, "StdinOnce": False},
                "HostConfig": {},
            },
            headers=headers,
        )

    @app.post("/containers/{name}/wait")
    async def wait(name: str) -> Response:
        # Like dockerd, answer the head at once and the body when the container stops: the CLI's
        # ContainerWait blocks until it has the head, before it attaches.
        async def body() -> AsyncIterator[bytes]:
            async with engine.condition():
                await engine.condition().wait()
            yield json.dumps({"StatusCode": 0, "Error": None}).encode() + b"\n"

        return StreamingResponse(body(), media_type="application/json", headers=headers)

    @app.post("/containers/{name}/exec", status_code=201)
    async def exec_create(name: str, request: Request) -> Response:
        exec_id = uuid.uuid4().hex * 2
        engine.execs[exec_id] = await request.json()
        return JSONResponse({"Id": exec_id}, status_code=201, headers=headers)

    @app.post("/containers/{name}/resize")
    async def resize(name: str, h: int, w: int) -> Response:
        engine.tty_size = (h, w)
        return Response(status_code=200, headers=headers)

    @app.get("/exec/{exec_id}/json")
    async def exec_inspect(exec_id: str) -> Response:
        if exec_id not in engine.execs:
            return JSONResponse({"message": f"No such exec instance: {exec_id}"}, status_code=404)
        return JSONResponse({"ID": exec_id, "Running": False, "ExitCode": 0}, headers=headers)

    @app.get("/stats")
    async def stats() -> Response:
        s = engine.stats
        return JSONResponse(
            {
                "sessions_done": s.sessions_done,
                "flood_disconnects": s.flood_disconnects,
                "errors": s.handler_errors,
                "tty_size": engine.tty_size,
                "tty_detached": engine.tty_detached,
                "drained": engine.drained,
            }
        )

    router = HijackRouter()
    router.add("POST", r"/containers/(?P<name>[^/]+)/attach", engine.attach)
    router.add("POST", r"/exec/(?P<id>[^/]+)/start", engine.exec_start)
    return StripVersion(app), router, engine


# --- serving it ------------------------------------------------------------------------------------


class Conn:
    """A client connection with its own receive buffer (responses and frames may share a segment)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def half_close(self) -> None:
        """shutdown(SHUT_WR) on the TCP or unix socket, also under TLS (where it is a FIN without
        close_notify; ssl.SSLSocket.shutdown would drop the TLS session for reading too)."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def head(self) -> bytes:
        """A response head, up to and including its blank line."""
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(), f"connection closed inside a response head: {bytes(self.buf)!r}"
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end])
        del self.buf[:end]
        return head

    def exactly(self, size: int) -> bytes:
        while len(self.buf) < size:
            assert self._fill(), (
                f"connection closed after {len(self.buf)} of {size} bytes: {bytes(self.buf)!r}"
            )
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def until_eof(self) -> bytes:
        while self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One Content-Length-framed response (keep-alive)."""
        lines = self.head().decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        return status, headers, self.exactly(int(headers.get("content-length", "0")))


@dataclass
class Served:
    kind: str  # "unix", "tcp" or "tls"
    address: str  # socket path, or host
    home: Path  # a private directory for clients' files
    port: int = 0
    client_ssl: ssl.SSLContext | None = None

    def cli_args(self) -> list[str]:
        """The docker CLI's flags to reach this server (with client certificates for "tls")."""
        if self.kind == "unix":
            return ["-H", f"unix://{self.address}"]
        host = ["-H", f"tcp://{self.address}:{self.port}"]
        if self.kind == "tcp":
            return host
        tls = self.home / "tls"
        return [*host, "--tlsverify", f"--tlscacert={tls / 'ca.pem'}", f"--tlscert={tls / 'client.pem'}",
                f"--tlskey={tls / 'client.key'}"]  # fmt: skip

    def connect(self) -> Conn:
        """A connected client (TLS-wrapped for "tls")."""
        if self.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.address)
        else:
            sock = socket.create_connection((self.address, self.port))
            if self.client_ssl is not None:
                sock = self.client_ssl.wrap_socket(sock, server_hostname="localhost")
        sock.settimeout(10)
        return Conn(sock)


class ServerThread:
    """uvicorn in a thread with its own event loop; `listener` is an already bound TCP socket."""

    def __init__(self, config: uvicorn.Config, listener: socket.socket | None = None) -> None:
        self.server = uvicorn.Server(config)
        kwargs = {"sockets": [listener]} if listener is not None else {}
        self.thread = threading.Thread(target=self.server.run, kwargs=kwargs, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not stop"


def make_tls(directory: Path) -> ssl.SSLContext:
    """A throw-away CA, a server certificate for localhost/127.0.0.1 and a client certificate
    (dockerd's --tlsverify setup), made with openssl; returns the client's context."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")  # fmt: skip
        (directory / f"{name}.ext").write_text(ext)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem")  # fmt: skip
    client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    client.load_cert_chain(directory / "client.pem", directory / "client.key")
    return client


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"pydocker-hijack-{os.getpid()}-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def serve(kind: str, workdir: Path, graceful_timeout: float = 2) -> Iterator[Served]:
    app, router, _engine = build_engine()
    common: dict[str, Any] = {
        "http": make_protocol_class(router),
        "log_level": "warning",
        "lifespan": "off",
        "timeout_graceful_shutdown": graceful_timeout,  # a pending /wait never ends by itself
    }
    home = workdir / f"{kind}-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    if kind == "unix":
        sock_path = home / "engine.sock"
        with ServerThread(uvicorn.Config(app, uds=str(sock_path), **common)):
            yield Served("unix", str(sock_path), home)
        return
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound here, so parallel test workers never race for a port
    served = Served(kind, "127.0.0.1", home, listener.getsockname()[1])
    if kind == "tls":
        tls = home / "tls"
        tls.mkdir()
        served.client_ssl = make_tls(tls)
        common.update(
            ssl_certfile=str(tls / "server.pem"),
            ssl_keyfile=str(tls / "server.key"),
            ssl_ca_certs=str(tls / "ca.pem"),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
        )
    try:
        with ServerThread(uvicorn.Config(app, **common), listener):
            yield served
    finally:
        listener.close()


@pytest.fixture(scope="module")
def engine(workdir: Path) -> Iterator[Served]:
    with serve("unix", workdir) as served:
        yield served


@pytest.fixture(scope="module", params=["unix", "tcp", "tls"])
def any_engine(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Served]:
    with serve(request.param, workdir) as served:
        yield served


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: docker"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}
ATTACH = "/v1.41/containers/{}/attach?stream=1&stdin=1&stdout=1&stderr=1"


def stats(served: Served) -> dict[str, Any]:
    with served.connect() as conn:
        conn.send(request_bytes("GET", "/stats"))
        status, _, body = conn.response()
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


# --- the real Docker CLI --------------------------------------------------------------------------


def cli_env(served: Served) -> dict[str, str]:
    home = served.home
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "DOCKER_CONFIG": str(home / "docker-cli"),
        "TERM": "xterm",
    }


def docker_cli(
    cli: str, served: Served, *args: str, input: bytes = b"", timeout: float = 20
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [cli, *served.cli_args(), *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        env=cli_env(served),
    )


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_attach_streams_stdin_and_demultiplexed_output(cli: str, any_engine: Served) -> None:
    res = docker_cli(cli, any_engine, "attach", "echo", input=b"one\ntwo\n")
    assert res.returncode == 0, res.stderr
    # The CLI half-closes stdin at EOF; the echo then says bye, so output after stdin EOF arrives.
    assert res.stdout.startswith(GREETING) and res.stdout.endswith(b"bye\n"), res.stdout
    assert res.stdout.replace(GREETING, b"", 1).removesuffix(b"bye\n").replace(b"\n", b"") == b"onetwo"
    assert res.stderr.replace(b"\n", b"") == b"ONETWO"


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_exec_with_stdin_and_body(cli: str, any_engine: Served) -> None:
    res = docker_cli(cli, any_engine, "exec", "-i", "echo", "cat", input=b"abc\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout == b"abc\nbye\n" and res.stderr == b"ABC\n"
    res = docker_cli(cli, any_engine, "exec", "echo", "echo", "hi", "there")
    assert (res.stdout, res.stderr) == (b"echo hi there\n", b"to stderr\n")


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_attach_to_missing_container_fails_cleanly(cli: str, engine: Served) -> None:
    res = docker_cli(cli, engine, "attach", "nope")
    assert res.returncode != 0
    assert b"No such container: nope" in res.stderr


class PtyCli:
    """The Docker CLI on a pseudo-terminal, typed at and read from like a user would."""

    def __init__(self, cli: str, served: Served, *args: str, rows: int = 33, cols: int = 101) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            self.proc = subprocess.Popen(
                [cli, *served.cli_args(), *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=cli_env(served),
                start_new_session=True,
            )
        finally:
            os.close(slave)
        self.seen = bytearray()

    def expect(self, text: bytes, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen; terminal shows {bytes(self.seen)!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the CLI closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {text!r}; it showed {bytes(self.seen)!r}"
                self.seen += chunk

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 10) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.master)


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_docker_cli_attach_on_a_tty_with_resize_and_detach_keys(cli: str, engine: Served) -> None:
    before = stats(engine)["tty_detached"]
    rows, cols = 30 + before, 90 + before  # a size no earlier run left behind
    term = PtyCli(cli, engine, "attach", "tty", rows=rows, cols=cols)
    try:
        term.expect(b"tty ready")
        term.type(b"hello\r")
        term.expect(b"hello\r\n")
        # The CLI sends the terminal size through an ordinary route while the stream is hijacked.
        wait_for(lambda: stats(engine)["tty_size"] == [rows, cols])
        term.type(b"\x10\x11")  # ctrl-p ctrl-q: the CLI detaches and closes the connection
        term.expect(b"read escape sequence")
    finally:
        rc = term.wait()
    assert rc == 1, bytes(term.seen)  # as both CLIs answer a detach from dockerd 20.10
    wait_for(lambda: stats(engine)["tty_detached"] == before + 1)


# --- docker-py ------------------------------------------------------------------------------------


def test_docker_py_attach_socket(engine: Served) -> None:
    client = docker.APIClient(base_url=f"unix://{engine.address}", version=API_VERSION)
    try:
        sock = client.attach_socket(
            "echo", params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, "greet": 0}
        )
        raw: socket.socket = sock._sock
        raw.sendall(b"py\n")
        raw.shutdown(socket.SHUT_WR)
        out, err = bytearray(), bytearray()
        for kind, payload in frames_iter(sock, tty=False):
            (out if kind == 1 else err).extend(payload)
        sock.close()
        assert bytes(out) == b"py\nbye\n"
        assert bytes(err) == b"PY\n"
    finally:
        client.close()


def test_docker_py_exec_start(engine: Served) -> None:
    client = docker.APIClient(base_url=f"unix://{engine.address}", version=API_VERSION)
    try:
        exec_id = client.exec_create("echo", ["printf", "x"], stdout=True, stderr=True)["Id"]
        out, err = client.exec_start(exec_id, demux=True)
        assert (out, err) == (b"printf x\n", b"to stderr\n")

        exec_id = client.exec_create("echo", ["cat"], stdin=True)["Id"]
        sock = client.exec_start(exec_id, socket=True)
        raw: socket.socket = sock._sock
        raw.sendall(b"data")
        raw.shutdown(socket.SHUT_WR)
        frames = list(frames_iter(sock, tty=False))
        sock.close()
        assert frames == [(1, b"data"), (2, b"DATA"), (1, b"bye\n")]

        # Detach answers a complete (empty) response and the pooled connection stays usable.
        exec_id = client.exec_create("echo", ["true"])["Id"]
        assert client.exec_start(exec_id, detach=True) == ""
        assert client.ping() is True

        with pytest.raises(docker.errors.NotFound, match="No such exec instance: nope"):
            client.exec_start("nope")
    finally:
        client.close()


# --- raw sockets: exact heads, plain (non-upgrade) streams, keep-alive, errors, disconnects -------------


def test_upgrade_head_is_exactly_dockerds(any_engine: Served) -> None:
    with any_engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE))
        assert conn.head() == UPGRADE_HEAD
        assert conn.exactly(8 + len(GREETING)) == frame(1, GREETING)
        conn.send(b"ping")
        assert conn.exactly(24) == frame(1, b"ping") + frame(2, b"PING")
        conn.half_close()
        assert conn.until_eof() == frame(1, b"bye\n")


def test_unversioned_and_old_versions_route_too(engine: Served) -> None:
    for path in ("/containers/echo/attach?stdin=1", "/v1.24/containers/echo/attach?stdin=1"):
        with engine.connect() as conn:
            conn.send(request_bytes("POST", path, UPGRADE))
            conn.half_close()
            assert conn.until_eof() == UPGRADE_HEAD + frame(1, GREETING) + frame(1, b"bye\n")


def test_stdin_sent_with_the_request_is_not_lost(engine: Served) -> None:
    # A client may send stdin right behind the head, in the same segment.
    with engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE) + b"early")
        conn.half_close()
        assert conn.until_eof() == (
            UPGRADE_HEAD + frame(1, GREETING) + frame(1, b"early") + frame(2, b"EARLY") + frame(1, b"bye\n")
        )


def test_plain_post_gets_a_close_delimited_200_stream(any_engine: Served) -> None:
    with any_engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("echo")))
        assert conn.head() == PLAIN_HEAD
        assert conn.exactly(8 + len(GREETING)) == frame(1, GREETING)
        conn.send(b"q")
        assert conn.exactly(18) == frame(1, b"q") + frame(2, b"Q")
        conn.half_close()
        assert conn.until_eof() == frame(1, b"bye\n")


def test_server_half_close_then_client_keeps_sending(engine: Served) -> None:
    with engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("drain"), UPGRADE))
        assert conn.head() == UPGRADE_HEAD
        assert conn.until_eof() == frame(1, b"done\n")  # the server's half-close
        conn.send(b"still ")
        conn.send(b"sending")
        conn.half_close()
    wait_for(lambda: stats(engine)["drained"][-1:] == ["still sending"])


def test_http_client_on_one_connection_errors_routes_then_a_plain_stream(engine: Served) -> None:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = engine.connect().sock

    client = UnixConnection("docker")
    try:
        client.request(
            "POST", "/v1.41/exec/nope/start", body=b"{}", headers={"Content-Type": "application/json"}
        )
        resp = client.getresponse()
        assert resp.status == 404 and resp.getheader("Api-Version") == API_VERSION
        assert json.loads(resp.read()) == {"message": "No such exec instance: nope"}
        first_sock = client.sock
        # The same connection goes on: an ordinary route, then a hijack stream (close-delimited).
        client.request("GET", "/_ping")
        resp = client.getresponse()
        assert (resp.status, resp.read()) == (200, b"OK")
        client.request("POST", "/containers/echo/exec", body=json.dumps({"Cmd": ["ls", "-l"]}))
        exec_id = json.loads(client.getresponse().read())["Id"]
        client.request("POST", f"/exec/{exec_id}/start", body=b'{"Detach":false,"Tty":false}')
        assert client.sock is first_sock, "the connection was not kept alive"
        resp = client.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == RAW_STREAM
        assert resp.getheader("Content-Length") is None and resp.getheader("Transfer-Encoding") is None
        assert demux(resp.read()) == (b"ls -l\n", b"to stderr\n")
    finally:
        client.close()


def test_ordinary_routes_keep_alive_around_hijacks(any_engine: Served) -> None:
    with any_engine.connect() as keep:
        keep.send(request_bytes("GET", "/_ping"))
        assert keep.response()[::2] == (200, b"OK")
        with any_engine.connect() as hijacked:
            hijacked.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE))
            assert hijacked.head() == UPGRADE_HEAD
            assert hijacked.exactly(8 + len(GREETING)) == frame(1, GREETING)
            # Requests on another connection are served while the hijacked one is open ...
            keep.send(request_bytes("GET", "/v1.41/containers/echo/json"))
            status, _, body = keep.response()
            assert status == 200 and json.loads(body)["State"]["Running"] is True
            # ... and HTTP bytes on the hijacked connection are stdin, not requests.
            request = b"GET /_ping HTTP/1.1\r\n\r\n"
            hijacked.send(request)
            assert hijacked.exactly(2 * (8 + len(request))) == frame(1, request) + frame(2, request.upper())
        keep.send(request_bytes("GET", "/_ping"))
        assert keep.response()[::2] == (200, b"OK")


def test_early_error_is_a_normal_response_and_the_connection_stays_http(any_engine: Served) -> None:
    with any_engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("nope"), UPGRADE))
        status, headers, body = conn.response()
        assert status == 404 and headers["content-type"] == "application/json"
        assert body == b'{"message":"No such container: nope"}\n'
        # Pipelined: an erroring hijack request (with a body) and an ordinary one in one write.
        conn.send(request_bytes("POST", "/exec/nope/start", UPGRADE, b"{}") + request_bytes("GET", "/_ping"))
        status, headers, body = conn.response()
        assert (status, headers["api-version"], json.loads(body)) == (
            404,
            API_VERSION,
            {"message": "No such exec instance: nope"},
        )
        assert conn.response()[::2] == (200, b"OK")


def test_failing_handler_answers_500_json(engine: Served) -> None:
    with engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("crash"), UPGRADE))
        status, _, body = conn.response()
        assert status == 500 and json.loads(body) == {"message": "internal server error"}
        conn.send(request_bytes("GET", "/_ping"))
        assert conn.response()[::2] == (200, b"OK")


def test_client_disconnect_mid_stream_leaves_the_server_serving(any_engine: Served) -> None:
    before = int(stats(any_engine)["flood_disconnects"])
    for n, abort in enumerate((False, True), start=1):
        conn = any_engine.connect()
        conn.send(request_bytes("POST", ATTACH.format("flood"), UPGRADE))
        assert conn.head() == UPGRADE_HEAD
        conn.exactly(100_000)  # the output is flowing
        if abort:  # RST instead of FIN
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

        def reached(n: int = n) -> bool:
            return int(stats(any_engine)["flood_disconnects"]) == before + n

        wait_for(reached)
    assert stats(any_engine)["errors"] == []
    with any_engine.connect() as conn:
        conn.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE) + b"z")
        assert conn.head() == UPGRADE_HEAD
        assert conn.exactly(8 + len(GREETING) + 18) == frame(1, GREETING) + frame(1, b"z") + frame(2, b"Z")


def test_client_gone_before_the_answer(engine: Served) -> None:
    with engine.connect() as conn:  # inside the head
        conn.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE)[:-3])
    with engine.connect() as conn:  # inside the body
        conn.send(request_bytes("POST", "/exec/x/start", {"Content-Length": "100"}) + b"{")
    with engine.connect() as conn:
        conn.send(request_bytes("GET", "/_ping"))
        assert conn.response()[::2] == (200, b"OK")
    assert stats(engine)["errors"] == []


def test_malformed_hijack_body_gets_400_and_close(engine: Served) -> None:
    with engine.connect() as conn:
        conn.send(
            b"POST /exec/x/start HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        data = conn.until_eof()
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b'"message":"malformed request' in data


def test_server_shutdown_ends_hijacked_connections(workdir: Path) -> None:
    # A hijacked stream has no natural end; uvicorn's graceful shutdown must not wait for it.
    with serve("unix", workdir, graceful_timeout=60) as served:
        conn = served.connect()
        conn.send(request_bytes("POST", ATTACH.format("echo"), UPGRADE))
        assert conn.head() == UPGRADE_HEAD
        assert conn.exactly(8 + len(GREETING)) == frame(1, GREETING)
        started = time.monotonic()
    with conn:
        assert time.monotonic() - started < 10
        assert conn.until_eof() == b""


def test_expect_100_continue_before_the_body(engine: Served) -> None:
    with engine.connect() as conn:
        conn.send(
            request_bytes("POST", "/exec/nope/start", {"Expect": "100-continue", "Content-Length": "2"})
        )
        assert conn.head().startswith(b"HTTP/1.1 100 ")
        conn.send(b"{}")
        status, _, body = conn.response()
        assert (status, json.loads(body)) == (404, {"message": "No such exec instance: nope"})


def test_only_the_registered_method_and_paths_are_hijacked(engine: Served) -> None:
    with engine.connect() as conn:
        for method, path in (
            ("GET", "/containers/echo/attach"),  # wrong method: the ASGI app answers
            ("POST", "/containers/echo/attach/ws"),  # the regex matches the whole path only
            ("POST", "/v1.41/v1.41/containers/echo/attach"),
        ):
            conn.send(request_bytes(method, path))
            status, headers, _ = conn.response()
            assert status in (404, 405) and headers["content-type"] == "application/json", (method, path)
    router = HijackRouter()

    async def handler(request: HijackRequest, stream: RawStream) -> None:
        raise AssertionError("not called")

    router.add("post", r"^/exec/(?P<id>[^/]+)/start$", handler)
    found = router.match("POST", "/v1.24/exec/abc/start")
    assert found is not None and (found.params, found.api_version) == ({"id": "abc"}, "1.24")
    found = router.match("POST", "/exec/abc/start")
    assert found is not None and (found.params, found.api_version) == ({"id": "abc"}, None)
    assert router.match("PUT", "/exec/abc/start") is None
    with pytest.raises(ValueError, match="must start with"):
        router.add("POST", "exec", handler)
