"""A pod's port mappings carry traffic: portmap's DNAT sends the node's host port to the pod's
container port, from the node's own addresses (its bridge address and, through portmap's SNAT
and route_localnet, 127.0.0.1); gone once the pod stops. The same checks against both engines."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

from tests.cri.harness import Engine

_GET = """
import socket, sys
try:
    s = socket.create_connection(("{host}", {port}), timeout=3)
    s.sendall(b"GET /index.html HTTP/1.0\\r\\n\\r\\n")
    data = b""
    while True:
        c = s.recv(4096)
        if not c:
            break
        data += c
    print(data.decode(errors="replace"))
except OSError as exc:
    print("error:", exc)
"""


def _get(e: Engine, host: str, port: int) -> str:
    return e.ns.exec("python3", "-c", _GET.format(host=host, port=port), check=False).stdout


def _get_until(e: Engine, host: str, port: int, want: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    body = ""
    while time.monotonic() < deadline:
        body = _get(e, host, port)
        if want in body:
            break
        time.sleep(0.3)
    return body


def test_port_mapping_reaches_the_container(engine: Engine, tmp_path: Path) -> None:
    e = engine
    e.crictl("pull", e.image())
    host_port = 20000 + os.getpid() % 5000
    pod_json = e.pod_config(
        tmp_path / "pod.json", "ports",
        port_mappings=[{"protocol": 0, "container_port": 8000, "host_port": host_port}],
    )  # fmt: skip
    web = e.container_config(
        tmp_path / "web.json", "web",
        command=["sh", "-c", "mkdir /www && echo pong > /www/index.html && httpd -f -p 8000 -h /www"],
    )  # fmt: skip
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    cid = e.crictl("create", pod, str(web), str(pod_json)).stdout.strip()
    e.crictl("start", cid)
    gateway = str(next(ipaddress.ip_network(e.cni["subnet"]).hosts()))  # the bridge's address on the node
    assert "pong" in _get_until(e, gateway, host_port, "pong")
    assert "pong" in _get_until(e, "127.0.0.1", host_port, "pong")
    # the container port itself is not open on the node
    assert "pong" not in _get(e, gateway, 8000)
    e.crictl("stopp", pod)
    assert "pong" not in _get(e, gateway, host_port)
    e.crictl("rmp", pod)
