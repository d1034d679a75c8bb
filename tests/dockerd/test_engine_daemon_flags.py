"""pydockerd's daemon flags, driven as a user would: -H (several; unix, tcp, fd://), TLS with
client certificates, --pidfile, --config-file (daemon.json), --metrics-addr.

Reference behaviour (dockerd 20.10): plain `-H tcp://` gets warnings, a 1 s pause and, unless
`--tls=false` or `--tlsverify=false` says it is meant, 15 s more, and is then served. The issue
asks pydockerd to refuse it unless the user explicitly accepts the risk: --allow-insecure-tcp,
or dockerd's own explicit `--tlsverify=false`. The
daemon.json errors are dockerd's, word for word ("the following directives don't match any
configuration option", "specified both as a flag and in the configuration file"), as is the
pid file refusal ("pid file found, ensure docker is not running or delete ...").
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from common.unixsock import accepting
from tests.dockerd_ref import BUSYBOX_TAR, CGROUP_ROOT, DAEMON_ENV, DOCKER_CLI, TRACKING_HIERARCHY
from tests.pydockerd_harness import PYDOCKERD, PyDockerd, _join_cgroup, pydockerd_engine, teardown, wait_ready
from tests.testpki import make_pki, openssl


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pydockerd(tmp: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run pydockerd on private roots, for flags that must make it exit at once."""
    return subprocess.run(
        [str(PYDOCKERD), "--data-root", str(tmp / "data"), "--exec-root", str(tmp / "exec"), *args],
        capture_output=True, text=True, timeout=timeout, env=dict(DAEMON_ENV),
    )  # fmt: skip


def _started_nothing(tmp: Path) -> bool:
    return not (tmp / "exec" / "containerd").exists()


def _docker(
    *args: str, env: dict[str, str] | None = None, input: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER_CLI, *args], capture_output=True, text=True, input=input, timeout=timeout,
        env={**DAEMON_ENV, "DOCKER_CONFIG": tempfile.gettempdir() + "/pydocker-flags-cli", **(env or {})},
    )  # fmt: skip


# --- plain TCP -----------------------------------------------------------------------------------


def test_plain_tcp_is_refused_unless_asked_for(tmp_path: Path) -> None:
    host = f"tcp://127.0.0.1:{_free_port()}"
    res = _pydockerd(tmp_path, "-H", f"unix://{tmp_path}/d.sock", "-H", host)
    assert res.returncode == 1
    assert f"refusing to serve {host} without TLS" in res.stderr and "--allow-insecure-tcp" in res.stderr
    assert _started_nothing(tmp_path)
    # --tls without --tlsverify is TLS for the server only: anyone may still connect
    res = _pydockerd(tmp_path, "-H", host, "--tls", "--tlscert", "/nonexistent", "--tlskey", "/nonexistent")
    assert res.returncode == 1 and "without TLS client verification" in res.stderr
    assert _started_nothing(tmp_path)


def test_explicit_tls_false_is_asking_for_plain_tcp() -> None:
    from dockerd.config import parse

    assert parse(["-H", "tcp://127.0.0.1:2375", "--tlsverify=false"])["allow-insecure-tcp"] is True
    assert parse(["-H", "tcp://127.0.0.1:2375", "--tls=false"])["allow-insecure-tcp"] is True
    assert parse(["-H", "tcp://127.0.0.1:2375"])["allow-insecure-tcp"] is False
    assert parse(["-H", "tcp://127.0.0.1:2376", "--tlsverify"])["allow-insecure-tcp"] is False


def test_plain_tcp_when_asked_for() -> None:
    port = _free_port()
    with pydockerd_engine(extra_args=["-H", f"tcp://127.0.0.1:{port}", "--allow-insecure-tcp"]) as d:
        res = _docker("-H", f"tcp://127.0.0.1:{port}", "run", "--rm", "busybox", "echo", "over tcp")
        assert res.returncode == 0 and res.stdout == "over tcp\n", res.stderr
        assert d.docker_ok("version", "--format", "{{.Server.APIVersion}}") == "1.41\n"  # the unix socket too
        assert "without --tlsverify is insecure" in d.log_path.read_text()


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs() -> Iterator[Path]:
    d = make_pki(Path(tempfile.mkdtemp(prefix="pydockerd-certs-")), "pydockerd-test-ca")
    # a client certificate from a CA the daemon does not trust
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue-key.pem", "-out", "rogue.pem",
             "-days", "1", "-subj", "/CN=rogue", cwd=d)  # fmt: skip
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_mutual_tls(certs: Path) -> None:
    port = _free_port()
    host = f"tcp://127.0.0.1:{port}"
    tls_args = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "server.pem"),
                "--tlskey", str(certs / "server-key.pem")]  # fmt: skip
    with pydockerd_engine(extra_args=["-H", host, *tls_args]):
        client = ["--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "client.pem"),
                  "--tlskey", str(certs / "client-key.pem"), "-H", host]  # fmt: skip
        res = _docker(*client, "version", "--format", "{{.Server.APIVersion}}")
        assert res.returncode == 0 and res.stdout == "1.41\n", res.stderr
        # a hijacked attach (stdin in, output and exit code back) over TLS
        res = _docker(
            *client, "run", "--rm", "-i", "busybox", "sh", "-c", "cat; exit 3", input="through tls\n"
        )
        assert res.returncode == 3 and res.stdout == "through tls\n", res.stderr
        # no client certificate: refused
        res = _docker("--tlsverify", "--tlscacert", str(certs / "ca.pem"), "-H", host, "ps")
        assert res.returncode != 0 and res.stdout == "", res
        # a certificate the daemon's CA did not sign: refused
        res = _docker("--tlsverify", "--tlscacert", str(certs / "ca.pem"), "--tlscert", str(certs / "rogue.pem"),
                      "--tlskey", str(certs / "rogue-key.pem"), "-H", host, "ps")  # fmt: skip
        assert res.returncode != 0 and res.stdout == "", res
        # plain HTTP to the TLS port gets no API
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/_ping")
            answer = conn.getresponse()
            assert answer.status != 200
        except (ConnectionError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        # and a raw TLS handshake without a certificate fails in the handshake itself
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                    if not tls.recv(100):
                        raise ConnectionResetError("closed without an answer")


def test_tls_with_a_missing_certificate_is_refused_at_start(tmp_path: Path, certs: Path) -> None:
    res = _pydockerd(tmp_path, "-H", f"tcp://127.0.0.1:{_free_port()}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                     "--tlscert", str(tmp_path / "missing.pem"), "--tlskey", str(certs / "server-key.pem"))  # fmt: skip
    assert res.returncode == 1 and "could not load X509 key pair" in res.stderr
    assert _started_nothing(tmp_path)


# --- unix sockets, -H several times, pid file -----------------------------------------------------


def test_several_hosts_socket_mode_and_pidfile(tmp_path: Path) -> None:
    second = Path(tempfile.mkdtemp(prefix="pydockerd-second-")) / "second.sock"
    try:
        with pydockerd_engine(extra_args=["-H", f"unix://{second}"]) as d:
            for sock in (d.socket, second):
                st = os.stat(sock)
                assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
                try:
                    assert st.st_gid == grp.getgrnam("docker").gr_gid
                except KeyError:
                    assert st.st_gid == 0
            res = _docker("-H", f"unix://{second}", "run", "--rm", "busybox", "echo", "second socket")
            assert res.returncode == 0 and res.stdout == "second socket\n", res.stderr
            pidfile = d.workdir / "pydockerd.pid"
            assert pidfile.read_text().strip() == str(d.pid)
            # a second daemon with the same pid file is refused before it starts anything
            other = tmp_path / "other"
            res = _pydockerd(other, "-H", f"unix://{tmp_path}/o.sock", "--pidfile", str(pidfile))
            assert res.returncode == 1
            assert f"pid file found, ensure docker is not running or delete {pidfile}" in res.stderr
            assert _started_nothing(other)
            assert pidfile.read_text().strip() == str(d.pid)
        assert not pidfile.exists()  # removed at a clean exit
        assert not second.exists() or not accepting(second)
    finally:
        shutil.rmtree(second.parent, ignore_errors=True)


# --- fd:// (systemd socket activation) -----------------------------------------------------------

LAUNCHER = """
import os, socket, sys
# What systemd does for a .socket unit: bind, listen, pass the fd as 3 with LISTEN_FDS/LISTEN_PID.
path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(path)
os.chmod(path, 0o600)  # SocketMode: the daemon must leave it as systemd made it
sock.listen(128)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())  # exec keeps the pid
os.environ["LISTEN_FDNAMES"] = "pydocker.socket"
os.execv(sys.argv[2], sys.argv[2:])
"""


@contextmanager
def _activated_engine(extra: Sequence[str] = (), env: dict[str, str] | None = None) -> Iterator[PyDockerd]:
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"pydocker-pd-{tag}-", dir="/tmp"))
    daemon = PyDockerd(
        workdir=workdir, socket=workdir / "docker.sock", pid=0, cgroup_parent=f"/pydocker-pd-{tag}", runtimes={},
        log_path=workdir / "pydockerd.log", _cli_env=dict(DAEMON_ENV, DOCKER_CONFIG=str(workdir / "cli")),
    )  # fmt: skip
    tracking = CGROUP_ROOT / TRACKING_HIERARCHY / daemon.cgroup_parent.lstrip("/") / "daemon"
    tracking.mkdir(parents=True, exist_ok=True)
    (workdir / "launcher.py").write_text(LAUNCHER)
    args = [
        sys.executable, str(workdir / "launcher.py"), str(daemon.socket), str(PYDOCKERD), "-H", "fd://",
        "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
        "--pidfile", str(workdir / "pydockerd.pid"), "--cgroup-parent", daemon.cgroup_parent, *extra,
    ]  # fmt: skip
    try:
        with open(daemon.log_path, "ab") as log:
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**DAEMON_ENV, **(env or {})},
                start_new_session=True, preexec_fn=lambda: _join_cgroup(tracking),
            )  # fmt: skip
        object.__setattr__(daemon, "pid", proc.pid)
        wait_ready(daemon, proc)
        daemon.docker_ok("load", "-i", str(BUSYBOX_TAR), timeout=120)
        yield daemon
    finally:
        teardown(daemon)


def test_socket_activation(tmp_path: Path) -> None:
    """As pydocker.service runs it: -H fd:// with LISTEN_FDS, and Type=notify (READY=1 on
    NOTIFY_SOCKET once the API serves)."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    with notify, _activated_engine(env={"NOTIFY_SOCKET": str(tmp_path / "notify")}) as d:
        assert notify.recv(4096).decode().split("\n")[:2] == ["READY=1", f"MAINPID={d.pid}"]
        assert d.docker_ok("run", "--rm", "busybox", "echo", "activated") == "activated\n"
        assert stat.S_IMODE(os.stat(d.socket).st_mode) == 0o600  # as "systemd" made it
        # the activation variables are for pydockerd only: pycontainerd must not see them
        assert d.containerd_pid
        environ = Path(f"/proc/{d.containerd_pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environ if v.startswith((b"LISTEN_", b"NOTIFY_SOCKET"))]
        assert "fd://3" in d.log_path.read_text()


def test_fd_without_activation_is_refused(tmp_path: Path) -> None:
    res = _pydockerd(tmp_path, "-H", "fd://")
    assert res.returncode == 1 and "no sockets found via socket activation" in res.stderr
    assert _started_nothing(tmp_path)


# --- daemon.json -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "flags", "message"),
    [
        ({"foo": 1, "debug": True}, [], "the following directives don't match any configuration option: foo"),
        (
            {"data-root": "/somewhere/else"},
            ["--data-root", "{tmp}/data"],
            "the following directives are specified both as a flag and in the configuration file: "
            "data-root: (from flag: {tmp}/data, from file: /somewhere/else)",
        ),
        (
            {"hosts": ["unix:///tmp/x.sock"]},
            ["-H", "unix://{tmp}/d.sock"],
            "the following directives are specified both as a flag and in the configuration file: "
            "hosts: (from flag: [unix://{tmp}/d.sock], from file: [unix:///tmp/x.sock])",
        ),
        (
            {"debug": "yes"},
            [],
            "json: cannot unmarshal string into Go struct field Config.debug of type bool",
        ),
        ("{not json", [], "unable to configure the Docker daemon with file"),
        (
            {"log-driver": "syslog"},
            [],
            "failed to set log opts: logging driver 'syslog' is not supported by pydockerd",
        ),
    ],
)
def test_config_file_errors(tmp_path: Path, content: object, flags: list[str], message: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    # run from the flag/roots dockerd would see; the data-root case passes the same flag itself
    args = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    res = subprocess.run(
        [str(PYDOCKERD), "--config-file", str(path), *args,
         *([] if "--data-root" in args else ["--data-root", str(tmp_path / "data")]), "--exec-root", str(tmp_path / "exec")],
        capture_output=True, text=True, timeout=60, env=dict(DAEMON_ENV),
    )  # fmt: skip
    assert res.returncode == 1, res
    expected = message.replace("{tmp}", str(tmp_path))
    if "Go struct" in expected or "directives" in expected:
        expected = f"unable to configure the Docker daemon with file {path}: {expected}"
    assert expected in res.stderr, res.stderr
    assert _started_nothing(tmp_path)


def test_missing_config_file(tmp_path: Path) -> None:
    res = _pydockerd(tmp_path, "--config-file", str(tmp_path / "nope.json"))
    assert res.returncode == 1
    assert (
        f"unable to configure the Docker daemon with file {tmp_path}/nope.json: open {tmp_path}/nope.json: no such file or directory"
        in res.stderr
    )


# --- metrics -----------------------------------------------------------------------------------------


def _metrics(port: int, path: str = "/metrics") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


def test_metrics_from_config_file(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"metrics-addr": f"127.0.0.1:{port}", "log-level": "debug"}))
    with pydockerd_engine(extra_args=["--config-file", str(config)]) as d:
        d.docker_ok("run", "-d", "--name", "up", "busybox", "sleep", "600")
        d.docker_ok("create", "--name", "idle", "busybox", "true")
        d.docker_ok("ps")
        status, text = _metrics(port)
        assert status == 200
        lines = text.splitlines()
        assert 'engine_daemon_container_states_containers{state="running"} 1' in lines
        assert 'engine_daemon_container_states_containers{state="stopped"} 1' in lines
        assert 'engine_daemon_container_states_containers{state="paused"} 0' in lines
        assert "# TYPE pydockerd_api_request_duration_seconds histogram" in lines
        count = next(
            line
            for line in lines
            if line.startswith(
                'pydockerd_api_request_duration_seconds_count{method="GET",route="/containers/json"}'
            )
        )
        assert int(count.rsplit(" ", 1)[1]) >= 1
        assert any(
            line.startswith(
                'pydockerd_api_request_duration_seconds_bucket{method="POST",route="/containers/{ref}/start",le="+Inf"}'
            )
            for line in lines
        )
        d.docker_ok("pause", "up")
        assert 'engine_daemon_container_states_containers{state="paused"} 1' in _metrics(port)[1].splitlines()
        d.docker_ok("unpause", "up")
        assert _metrics(port, "/other")[0] == 404
    # the port is closed with the daemon
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
