"""Container output to the CRI log file, in the format kubelet and `crictl logs` read.

Each line: `<RFC3339Nano timestamp> <stdout|stderr> <F|P> <text>` — F for a full line, P for a
piece of a line longer than max_container_log_line_size (the rest follows in later records).
One copier thread per stream reads the shim's FIFO until EOF (the shim closes it once the
container's output is all delivered), so after a daemon restart a new copier on the same FIFO
picks up exactly where the old one stopped. ReopenContainerLog swaps the file under the writer.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from collections.abc import Callable, Sequence


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
    def __init__(self, fifo: str, stream: str, log: LogFile, max_line: int) -> None:
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
                pending += data
                pending = self._emit(pending)
            if pending:
                self._record(pending, b"F")
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
        self.log.write(b" ".join((timestamp(), self.stream, tag, text)) + b"\n")


def start_copiers(fifos: Sequence[tuple[str, str]], log: LogFile, max_line: int) -> list[Copier]:
    copiers = [Copier(path, stream, log, max_line) for stream, path in fifos]
    for c in copiers:
        c.start()
    return copiers
