"""pydocker over TCP, plain and with mutual TLS (--tlsverify, DOCKER_CERT_PATH).

The reference daemon listens on a unix socket only, so the test puts a loopback TCP
front on it: a small forwarder that accepts on 127.0.0.1 (optionally terminating TLS and
demanding a client certificate signed by a CA made for the test with openssl) and relays
bytes both ways to the daemon's socket. Attach (a hijacked stream) goes through it too.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_helpers import CLI, Names, explain
from tests.testpki import make_pki, openssl


class Forwarder:
    """127.0.0.1:<port> -> unix socket, one pair of relay threads per connection."""

    def __init__(self, target: str, tls: ssl.SSLContext | None) -> None:
        self.target = target
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
        except (OSError, ssl.SSLError):
            client.close()
            return
        with self.lock:
            self.sockets += [client, upstream]
        threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()
        self._relay(upstream, client)

    @staticmethod
    def _relay(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            try:
                dst.shutdown(socket.SHUT_WR)
            except (OSError, ValueError):
                pass
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self.listener.close()
        with self.lock:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    d = tmp_path / "certs"
    d.mkdir()
    make_pki(d)
    # DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem
    shutil.copy(d / "client.pem", d / "cert.pem")
    shutil.copy(d / "client-key.pem", d / "key.pem")
    return d


@pytest.fixture
def plain_forwarder(cli: CLI) -> Iterator[Forwarder]:
    fwd = Forwarder(str(cli.daemon.socket), None)
    yield fwd
    fwd.close()


@pytest.fixture
def tls_forwarder(cli: CLI, certs: Path) -> Iterator[Forwarder]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs / "server.pem", certs / "server-key.pem")
    ctx.load_verify_locations(certs / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    fwd = Forwarder(str(cli.daemon.socket), ctx)
    yield fwd
    fwd.close()


def test_plain_tcp(cli: CLI, names: Names, plain_forwarder: Forwarder) -> None:
    host = f"tcp://127.0.0.1:{plain_forwarder.port}"
    res = cli.run("-H", host, "version", "-f", "{{.Server.ApiVersion}}", host=False)
    assert res.returncode == 0 and res.stdout == "1.41\n", explain(res)
    res = cli.run("-H", host, "run", "--rm", "--name", names.container("tcp"), "busybox", "echo", "over tcp",
                  host=False)  # fmt: skip
    assert res.returncode == 0 and res.stdout == "over tcp\n", explain(res)


def test_mutual_tls(cli: CLI, names: Names, certs: Path, tls_forwarder: Forwarder) -> None:
    host = f"tcp://127.0.0.1:{tls_forwarder.port}"
    flags = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "client.pem"),
             "--tlskey", str(certs / "client-key.pem"), "-H", host]  # fmt: skip
    res = cli.run(*flags, "run", "--rm", "-i", "--name", names.container("tls"), "busybox", "sh", "-c", "cat; exit 3",
                  input="through tls\n", host=False)  # fmt: skip
    assert res.returncode == 3 and res.stdout == "through tls\n", explain(res)
    # the same through the environment, as the docker CLI reads it
    env = {"DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certs)}
    res = cli.run("ps", "-a", "--format", "{{.Names}}", host=False, env=env)
    assert res.returncode == 0, explain(res)
    # without a client certificate the forwarder refuses the handshake
    res = cli.run("--tlsverify", "--tlscacert", str(certs / "ca.pem"), "-H", host, "ps", host=False)
    assert res.returncode != 0 and res.stdout == "", explain(res)
    # a client that does not trust the server's CA refuses it
    other = certs / "other-ca"
    other.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=other", cwd=other)  # fmt: skip
    res = cli.run("--tlsverify", "--tlscacert", str(other / "ca.pem"), "--tlscert", str(certs / "client.pem"),
                  "--tlskey", str(certs / "client-key.pem"), "-H", host, "ps", host=False)  # fmt: skip
    assert res.returncode != 0 and "certificate" in res.stderr.lower(), explain(res)
