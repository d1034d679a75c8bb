"""What the CRI plugin does with a container's output: the raw bytes to attach sessions.

The CRI log file (`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>` records at the path
kubelet gives) is written by the shim itself (`k8s-file://` stdio, shim/crilog.py), which
outlives the daemon: a daemon that read a chunk and was killed before writing it would lose
it. The shim also tees the raw output into a FIFO; one Copier thread per stream reads it and
hands it to the attach sessions of the moment (nothing, when none).

Containers started by an older daemon had the daemon write their log from the FIFO (the shim
spooling what it could not take): a Copier given a LogFile still does that, for them.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

SHIM_LOG_SCHEME = "k8s-file://"


def shim_log_uri(log_path: str, max_line: int, tee: str) -> str:
    """The stdio URI that has the shim write the CRI log at LOG_PATH and tee into the FIFO TEE."""
    return f"{SHIM_LOG_SCHEME}{quote(log_path)}?max_line={max_line}&tee={quote(tee, safe='')}"


def timestamp() -> bytes:
    ns = time.time_ns()
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z".encode()


class LogFile:
    """The log file shared by a container's stdout and stderr copiers; writes are whole records."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd = -1
        if path:
            self._fd = self._open()

    def _open(self) -> int:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, data)

    def reopen(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = self._open() if self.path else -1

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class Copier(threading.Thread):
    def __init__(self, fifo: str, stream: str, log: LogFile | None, max_line: int) -> None:
        super().__init__(name=f"cri-log-{stream}", daemon=True)
        self.fifo = fifo
        self.stream = stream.encode()
        self.log = log
        self.max_line = max_line if max_line > 0 else 1 << 30
        # attach sessions: each gets the raw bytes as they come (see Plugin.attach_output)
        self.listeners: list[Callable[[bytes], None]] = []
        self._listeners_lock = threading.Lock()

    def subscribe(self, listener: Callable[[bytes], None]) -> Callable[[], None]:
        with self._listeners_lock:
            self.listeners.append(listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if listener in self.listeners:
                    self.listeners.remove(listener)

        return unsubscribe

    def run(self) -> None:
        try:
            fd = os.open(self.fifo, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        pending = b""
        try:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                with self._listeners_lock:
                    listeners = list(self.listeners)
                for listener in listeners:
                    try:
                        listener(data)
                    except Exception:  # noqa: BLE001 - a broken attach session never stops the log
                        pass
                if self.log is not None:
                    pending = self._emit(pending + data)
            if pending:
                self._record(pending, b"P")  # the stream ended mid-line, as containerd logs it
        finally:
            os.close(fd)

    def _emit(self, buf: bytes) -> bytes:
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1 :]
            while len(line) > self.max_line:
                self._record(line[: self.max_line], b"P")
                line = line[self.max_line :]
            self._record(line, b"F")
        while len(buf) > self.max_line:
            self._record(buf[: self.max_line], b"P")
            buf = buf[self.max_line :]
        return buf

    def _record(self, text: bytes, tag: bytes) -> None:
        assert self.log is not None
        self.log.write(b" ".join((timestamp(), self.stream, tag, text)) + b"\n")
