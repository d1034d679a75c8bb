"""The API's sockets: unix (mode 0660, group docker), tcp (TLS with client certificates unless
the user explicitly accepts plain TCP) and fd:// (systemd socket activation).

`plan()` checks every -H before the daemon starts anything (a refused plain-TCP host or a
bad certificate must not leave a pycontainerd behind); `bind()` opens the sockets once the
daemon has restored its containers, so that the first request sees them.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from common.unixsock import accepting
from dockerd.config import ConfigError

log = logging.getLogger("pydockerd")
BACKLOG = 2048
INSECURE_WARNING = (
    "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has "
    "access to your network."
)


@dataclass
class Listener:
    host: str  # as given: unix:///path, tcp://HOST:PORT, fd://[N]
    kind: str  # "unix" or "tcp"
    tls: bool
    sock: socket.socket | None = None

    @property
    def address(self) -> str:
        return self.host


def plan(values: dict[str, Any]) -> list[Listener]:
    """One Listener per socket to serve, unbound (fd:// ones are already open: systemd's)."""
    listeners: list[Listener] = []
    for host in values["hosts"]:
        if host.startswith("unix://"):
            listeners.append(Listener(host, "unix", False))
        elif host.startswith("tcp://"):
            listeners.append(Listener(host, "tcp", _tcp_tls(host, values)))
        else:
            listeners += _activated(host, values)
    if any(lst.tls for lst in listeners):
        tls_context(values)  # fail now on a missing or mismatched certificate
    return listeners


def _tcp_tls(where: str, values: dict[str, Any]) -> bool:
    if values["tlsverify"]:
        return True
    if not values["allow-insecure-tcp"]:
        # dockerd 20.10 warns, waits (1 s, then 15 s more unless --tls=false or --tlsverify=false
        # says it is meant) and serves; pydockerd refuses unless told explicitly.
        what = "TLS client verification" if values["tls"] else "TLS"
        raise ConfigError(
            f"refusing to serve {where} without {what}: anyone who can connect to it gets root on this machine. "
            "Use --tlsverify --tlscacert CA.pem --tlscert CERT.pem --tlskey KEY.pem (client certificates signed by "
            "CA.pem are then required), or pass --allow-insecure-tcp (or --tlsverify=false) to accept the risk"
        )
    log.warning("%s (%s)", INSECURE_WARNING, where)
    return bool(values["tls"])


def _activated(host: str, values: dict[str, Any]) -> list[Listener]:
    """systemd's sd_listen_fds(): LISTEN_PID must be us; the fds start at 3."""
    count = int(os.environ.get("LISTEN_FDS") or "0") if (os.environ.get("LISTEN_FDS") or "0").isdigit() else 0
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or count < 1:
        raise ConfigError(
            "no sockets found via socket activation: make sure the service was started by systemd"
        )
    fds = list(range(3, 3 + count))
    wanted = host[len("fd://") :]
    if wanted:
        if int(wanted) not in fds:
            raise ConfigError(
                f"too few socket activated files passed in by systemd: no fd {wanted} among {fds}"
            )
        fds = [int(wanted)]
    listeners = []
    for fd in fds:
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)  # neither pycontainerd nor the shims get the API socket
        if sock.family == socket.AF_UNIX:
            listeners.append(Listener(f"fd://{fd}", "unix", False, sock))
        else:
            listeners.append(Listener(f"fd://{fd}", "tcp", _tcp_tls(f"fd://{fd}", values), sock))
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # as sd_listen_fds(1): children must not take them for theirs
    return listeners


def bind(listeners: list[Listener], group: str) -> None:
    for lst in listeners:
        if lst.sock is not None:
            continue
        if lst.kind == "unix":
            lst.sock = _bind_unix(lst.host[len("unix://") :], group)
        else:
            hostport = lst.host[len("tcp://") :]
            h, _, port = hostport.rpartition(":")
            h = h.strip("[]")
            try:
                family = socket.AF_INET6 if ":" in h else socket.AF_INET
                lst.sock = socket.create_server(
                    (h, int(port)), family=family, backlog=BACKLOG, reuse_port=False
                )
                # inherited by accepted connections: without it uvicorn's separate head and body
                # writes met Nagle and the client's delayed ACK, 40 ms per kept-alive request
                lst.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                raise ConfigError(f"failed to listen on {lst.host}: {exc.strerror or exc}") from None
        lst.sock.set_inheritable(False)


def _bind_unix(path: str, group: str) -> socket.socket:
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    if os.path.exists(path):
        if accepting(path):
            raise ConfigError(f"failed to listen on unix://{path}: another daemon is serving it")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Created 0660 from the start (no window in which anyone may connect), as dockerd's.
    old = os.umask(0o117)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"failed to listen on unix://{path}: {exc.strerror or exc}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    try:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
    except KeyError:
        if group != "docker":
            raise ConfigError(f"group {group} not found") from None
        log.debug("no docker group: %s stays root-only", path)
    sock.listen(BACKLOG)
    return sock


def remove_unix_sockets(listeners: list[Listener]) -> None:
    """At a clean exit, as dockerd: the socket files we created go (systemd's fd:// ones stay)."""
    for lst in listeners:
        if lst.kind == "unix" and lst.host.startswith("unix://"):
            try:
                os.unlink(lst.host[len("unix://") :])
            except FileNotFoundError:
                pass


def tls_context(values: dict[str, Any]) -> ssl.SSLContext:
    """The server's TLS context: its certificate, and with --tlsverify the client CA (required)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # as dockerd's default
    try:
        ctx.load_cert_chain(values["tlscert"], values["tlskey"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"could not load X509 key pair ({values['tlscert']}, {values['tlskey']}): {exc}"
        ) from None
    if values["tlsverify"]:
        try:
            ctx.load_verify_locations(values["tlscacert"])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"could not read CA certificate {values['tlscacert']!r}: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
