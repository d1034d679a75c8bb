"""A small third-party volume plugin, for tests: Docker's volume plugin protocol over HTTP.

It serves `Plugin.Activate` and `VolumeDriver.*` the way a legacy (v1) plugin does, on a
unix socket or on a loopback TCP port, keeping each volume as a directory under its own
root. Tests make it misbehave on purpose: answer a call with an error (in the body's `Err`,
with 200 or with a 500 status), never answer a call, or claim to implement something else.
It is written here, not taken from a library, because it is the thing the daemon talks to:
the test must see the exact requests and control the exact answers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any


@dataclass
class Behaviour:
    """How the plugin misbehaves; every field may be changed while it runs."""

    implements: list[str] = field(default_factory=lambda: ["VolumeDriver"])
    # method name ("VolumeDriver.Create") -> error text answered with status 200 in "Err"
    errors: dict[str, str] = field(default_factory=dict)
    # method name -> error text answered with status 500 and {"Err": ...}
    http_errors: dict[str, str] = field(default_factory=dict)
    # method names that never get an answer (the connection stays open until the server stops)
    hang: set[str] = field(default_factory=set)
    scope: str = "local"


@dataclass
class PluginState:
    root: Path
    behaviour: Behaviour = field(default_factory=Behaviour)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    volumes: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> opts
    mounts: dict[str, set[str]] = field(default_factory=dict)  # name -> mount ids
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def handle(self, method: str, req: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            return self._handle(method, req)

    def _handle(self, method: str, req: dict[str, Any]) -> dict[str, Any]:
        if method == "Plugin.Activate":
            return {"Implements": self.behaviour.implements}
        name = str(req.get("Name", ""))
        if method == "VolumeDriver.Create":
            if name not in self.volumes:
                os.makedirs(self.path(name), exist_ok=True)
                self.volumes[name] = dict(req.get("Opts") or {})
            return {"Err": ""}
        if method == "VolumeDriver.Remove":
            if name not in self.volumes:
                return {"Err": f"no such volume {name}"}
            if self.mounts.get(name):
                return {"Err": f"volume {name} is mounted"}
            del self.volumes[name]
            shutil.rmtree(self.path(name), ignore_errors=True)
            return {"Err": ""}
        if method == "VolumeDriver.Mount":
            if name not in self.volumes:
                return {"Err": f"no such volume {name}"}
            self.mounts.setdefault(name, set()).add(str(req.get("ID", "")))
            return {"Mountpoint": self.path(name), "Err": ""}
        if method == "VolumeDriver.Unmount":
            self.mounts.get(name, set()).discard(str(req.get("ID", "")))
            return {"Err": ""}
        if method == "VolumeDriver.Path":
            if name not in self.volumes:
                return {"Err": f"no such volume {name}"}
            return {"Mountpoint": self.path(name) if self.mounts.get(name) else "", "Err": ""}
        if method == "VolumeDriver.Get":
            if name not in self.volumes:
                return {"Err": f"no such volume {name}"}
            mountpoint = self.path(name) if self.mounts.get(name) else ""
            return {
                "Volume": {"Name": name, "Mountpoint": mountpoint, "Status": {"opts": self.volumes[name]}},
                "Err": "",
            }
        if method == "VolumeDriver.List":
            vols = [
                {"Name": n, "Mountpoint": self.path(n) if self.mounts.get(n) else ""}
                for n in sorted(self.volumes)
            ]
            return {"Volumes": vols, "Err": ""}
        if method == "VolumeDriver.Capabilities":
            return {"Capabilities": {"Scope": self.behaviour.scope}}
        return {"Err": f"unknown method {method}"}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:  # a unix peer has no (host, port)
        return "plugin-client"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state
        method = self.path.lstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            req = json.loads(raw) if raw.strip() else {}
        except ValueError:
            req = {}
        state.calls.append((method, req))
        behaviour = state.behaviour
        if method in behaviour.hang:
            state.stop.wait()  # never answers while the server runs
            self.close_connection = True
            return
        status = 200
        if method in behaviour.http_errors:
            status, answer = 500, {"Err": behaviour.http_errors[method]}
        elif method in behaviour.errors:
            answer = {"Err": behaviour.errors[method]}
        else:
            answer = state.handle(method, req)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    state: PluginState


class _TCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    state: PluginState


@dataclass
class RunningPlugin:
    state: PluginState
    address: str  # unix:///path or tcp://127.0.0.1:port

    def methods(self) -> list[str]:
        return [m for m, _ in self.state.calls]


@contextmanager
def volume_plugin(root: Path, socket_path: Path | None = None, tcp: bool = False) -> Iterator[RunningPlugin]:
    """Serve a volume plugin on SOCKET_PATH (or 127.0.0.1:<free port> when TCP) until the block ends."""
    state = PluginState(root=root)
    root.mkdir(parents=True, exist_ok=True)
    server: _Server | _TCPServer
    if tcp:
        server = _TCPServer(("127.0.0.1", 0), _Handler)
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
    else:
        assert socket_path is not None
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        server = _Server(str(socket_path), _Handler)
        address = f"unix://{socket_path}"
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield RunningPlugin(state, address)
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        if socket_path is not None and not tcp:
            try:
                socket_path.unlink()
            except FileNotFoundError:
                pass


def wait_listening(path: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(path))
                return
            except OSError:
                time.sleep(0.05)
    raise TimeoutError(path)
