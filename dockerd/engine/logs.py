"""The json-file log driver: copy a task's stdio FIFOs into <id>-json.log, read it back.

Each line is Docker's format, {"log": "...\\n", "stream": "stdout", "time": "RFC3339Nano"}.
Live readers (attach) subscribe to a copier and get the raw bytes as they come.
The FIFOs are held open by the shim, so a pydockerd restart loses nothing: the new
copier resumes where the shim's spool has kept the output.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 16 * 1024


def rfc3339nano(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def parse_time(stamp: str) -> float:
    base, _, frac = stamp.rstrip("Z").partition(".")
    try:
        seconds = time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return 0.0
    return seconds + float(f"0.{frac}" if frac else "0")


class LogCopier:
    def __init__(
        self,
        cid: str,
        stream: str,
        fifo: str,
        log_path: str,
        max_size: int = 0,
        max_files: int = 1,
        live: Callable[[str, bytes | None], None] | None = None,
    ) -> None:
        self.cid = cid
        # Where output also goes as it arrives (attached clients); None marks the end of the stream.
        self.live = live
        self.stream = stream
        self.fifo = fifo
        self.log_path = log_path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"log-{cid[:12]}-{stream}")
        self._subscribers: list[queue.Queue[bytes | None]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._fd = -1

    def start(self) -> None:
        self._thread.start()

    def subscribe(self) -> queue.Queue[bytes | None]:
        q: queue.Queue[bytes | None] = queue.Queue()
        with self._lock:
            self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[bytes | None]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def _run(self) -> None:
        pending = b""
        # A blocking open waits for the shim to open its end: opened before that, a FIFO reads as EOF.
        try:
            self._fd = os.open(self.fifo, os.O_RDONLY)
        except OSError:
            if self.live is not None:
                self.live(self.stream, None)
            return
        try:
            while not self._stopped.is_set():
                try:
                    chunk = os.read(self._fd, CHUNK)
                except OSError:
                    break
                if not chunk:
                    break
                with self._lock:
                    for q in self._subscribers:
                        q.put(chunk)
                if self.live is not None:
                    self.live(self.stream, chunk)
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                self._write([line + b"\n" for line in lines])
                if len(pending) >= CHUNK:
                    self._write([pending])
                    pending = b""
            if pending:
                self._write([pending])
        finally:
            with self._lock:
                for q in self._subscribers:
                    q.put(None)
            if self.live is not None:
                self.live(self.stream, None)
            try:
                os.close(self._fd)
            except OSError:
                pass

    def _write(self, pieces: list[bytes]) -> None:
        if not pieces:
            return
        stamp = rfc3339nano()
        data = "".join(
            json.dumps({"log": p.decode("utf-8", errors="replace"), "stream": self.stream, "time": stamp}) + "\n" for p in pieces
        ).encode()
        with _file_lock(self.log_path):
            if self.max_size and os.path.exists(self.log_path) and os.path.getsize(self.log_path) + len(data) > self.max_size:
                _rotate(self.log_path, self.max_files)
            with open(self.log_path, "ab") as f:
                f.write(data)

    def finish(self, timeout: float = 10.0) -> None:
        """The task exited: the shim closes the FIFO once drained, which ends the copy."""
        self._thread.join(timeout)

    def stop(self) -> None:
        self._stopped.set()
        if self._fd < 0 and self._thread.is_alive():
            # Still waiting in open(): become the writer for a moment so that it returns.
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        self._thread.join(0.5)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _file_lock(path: str) -> threading.Lock:
    # stdout and stderr copiers append to the same file; whole lines must not interleave.
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def _rotate(path: str, max_files: int) -> None:
    if max_files <= 1:
        os.truncate(path, 0)
        return
    for i in range(max_files - 1, 0, -1):
        older = f"{path}.{i}"
        newer = path if i == 1 else f"{path}.{i - 1}"
        if os.path.exists(newer):
            os.replace(newer, older)


def _entries(path: str) -> list[dict[str, Any]]:
    files = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        files.append(f"{path}.{i}")
        i += 1
    files = list(reversed(files)) + [path]
    out = []
    for name in files:
        try:
            with open(name, "rb") as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except FileNotFoundError:
            continue
    return out


def read_log(
    path: str,
    *,
    follow: bool,
    alive: Callable[[], bool],
    stdout: bool = True,
    stderr: bool = True,
    since: float = 0,
    until: float = 0,
    tail: int = -1,
) -> Iterator[tuple[str, bytes, str]]:
    """(stream, bytes, time) entries; with follow, keeps reading while ALIVE() holds."""

    def wanted(entry: dict[str, Any]) -> bool:
        stream = entry.get("stream")
        if (stream == "stdout" and not stdout) or (stream == "stderr" and not stderr):
            return False
        t = parse_time(entry.get("time", ""))
        if since and t < since:
            return False
        return not (until and t > until)

    entries = [e for e in _entries(path) if wanted(e)]
    if tail >= 0:
        entries = entries[-tail:] if tail else []
    for e in entries:
        yield e.get("stream", "stdout"), e.get("log", "").encode(), e.get("time", "")
    if not follow:
        return
    offset = os.path.getsize(path) if os.path.exists(path) else 0
    while True:
        still = alive()
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size < offset:
            offset = 0  # rotated
        if size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(size - offset)
            complete = data.rfind(b"\n") + 1
            offset += complete
            for line in data[:complete].splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if wanted(e):
                    yield e.get("stream", "stdout"), e.get("log", "").encode(), e.get("time", "")
        elif not still:
            return
        time.sleep(0.1)
