"""The streaming server: crictl exec (plain, -i, -it), attach and port-forward over SPDY, against
pycontainerd and containerd 1.6 side by side (crictl runs inside the node's network namespace,
where the streaming server listens)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

from tests.cri.harness import Engine


def _pod(e: Engine, tmp: Path, command: list[str] | None = None, **ctr: object) -> tuple[str, str]:
    e.crictl("pull", e.image())
    pod_json = e.pod_config(tmp / "pod.json", "stream")
    ctr_json = e.container_config(tmp / "c.json", "c", command=command or ["sleep", "1000"], **ctr)
    pod = e.crictl("runp", str(pod_json)).stdout.strip()
    cid = e.crictl("create", pod, str(ctr_json), str(pod_json)).stdout.strip()
    e.crictl("start", cid)
    return pod, cid


def test_exec_streams_and_exit_code(engine: Engine, tmp_path: Path) -> None:
    _, cid = _pod(engine, tmp_path)
    done = engine.crictl("exec", cid, "sh", "-c", "echo out; echo err >&2", check=False)
    assert (done.returncode, done.stdout) == (0, "out\n")
    assert "err" in done.stderr
    failed = engine.crictl("exec", cid, "sh", "-c", "exit 4", check=False)
    assert failed.returncode != 0
    piped = engine.crictl("exec", "-i", cid, "sh", "-c", "tr a-z A-Z", input="hello stdin\n")
    assert piped.stdout == "HELLO STDIN\n"


def test_exec_with_terminal(engine: Engine, tmp_path: Path) -> None:
    _, cid = _pod(engine, tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: crictl on a terminal, as a person would run it
        argv = engine.crictl_argv("exec", "-it", cid, "sh")
        os.execvp(argv[0], argv)
    out = b""
    try:
        time.sleep(1.5)
        os.write(fd, b"tty -s && echo is-a-tty; echo $((6*7)); exit\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "is-a-tty" in text and "42" in text, text
    assert os.waitstatus_to_exitcode(status) == 0, text


def test_attach_with_stdin_once(engine: Engine, tmp_path: Path) -> None:
    _, cid = _pod(
        engine,
        tmp_path,
        command=["sh", "-c", "while read l; do echo got $l; done; echo bye"],
        stdin=True,
        stdin_once=True,
    )
    done = engine.crictl("attach", "-i", cid, input="a\nb\n", timeout=60)
    assert done.stdout == "got a\ngot b\nbye\n", (done.stdout, done.stderr)
    time.sleep(0.5)
    assert engine.json("inspect", cid)["status"]["state"] == "CONTAINER_EXITED"


def test_port_forward(engine: Engine, tmp_path: Path) -> None:
    pod, _ = _pod(
        engine,
        tmp_path,
        command=["sh", "-c", "mkdir /www && echo pong > /www/index.html && httpd -f -p 8000 -h /www"],
    )
    local = 18000 + os.getpid() % 1000
    proc = subprocess.Popen(
        engine.crictl_argv("port-forward", pod, f"{local}:8000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "pong" not in body:
            got = engine.ns.exec("python3", "-c", _GET.format(port=local), check=False)
            body = got.stdout + got.stderr[-300:]
            time.sleep(0.3)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "pong" in body, (body, err, engine.log.read_text()[-3000:])


_GET = """
import socket
s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
s.sendall(b"GET /index.html HTTP/1.0\\r\\n\\r\\n")
data = b""
while True:
    c = s.recv(4096)
    if not c:
        break
    data += c
print(data.decode())
"""
