"""Container logs: the json-file driver (with max-size/max-file rotation) and `none`.

A task's stdout and stderr are FIFOs the shim holds open; one LogCopier per stream reads
its FIFO and hands the bytes to the container's JSONLog (and to attached clients). The
JSONLog appends Docker's json-file lines,
{"log": "...\\n", "stream": "stdout", "time": "RFC3339Nano"}, to <id>-json.log and rotates
it as dockerd does: before an entry is written, a file that has reached max-size becomes
<id>-json.log.1 (older ones shift up to .<max-file - 1>, the oldest is dropped).

Because the shim keeps the FIFOs open across a pydockerd restart (and spools what nobody
reads), a restarted daemon opens the same files again and nothing is lost or repeated.

The engine owns one LogFiles: the live JSONLog of every container, by path, so that
stdout and stderr share a lock and readers that follow a log are woken by its writes.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from dockerd.engine.errors import InvalidParameter, NotImplementedYet

CHUNK = 16 * 1024
DEFAULT_DRIVER = "json-file"
# Drivers dockerd ships that pydockerd does not implement: named as such rather than "not found".
OTHER_DRIVERS = {
    "local",
    "syslog",
    "journald",
    "gelf",
    "fluentd",
    "awslogs",
    "splunk",
    "etwlogs",
    "gcplogs",
    "logentries",
}
# json-file's options, as dockerd validates them; the ones in UNSUPPORTED_OPTS are refused.
JSON_FILE_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}
UNSUPPORTED_OPTS = {"labels", "labels-regex", "env", "env-regex"}
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def rfc3339nano(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def parse_time(stamp: str) -> float:
    if len(stamp) >= 20 and stamp.endswith("Z") and stamp[4] == "-" and stamp[10] == "T":
        try:  # the fast path for our own stamps: YYYY-MM-DDTHH:MM:SS[.fraction]Z
            base = calendar.timegm(
                (
                    int(stamp[0:4]),
                    int(stamp[5:7]),
                    int(stamp[8:10]),
                    int(stamp[11:13]),
                    int(stamp[14:16]),
                    int(stamp[17:19]),
                    0,
                    0,
                    0,
                )
            )
            frac = stamp[20:-1] if stamp[19] == "." else ""
            return base + (int(frac) / 10 ** len(frac) if frac else 0.0)
        except (ValueError, IndexError):
            pass
    text, _, frac = stamp.rstrip("Z").partition(".")
    try:
        seconds = calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return 0.0
    try:
        return seconds + float(f"0.{frac}" if frac else "0")
    except ValueError:
        return float(seconds)


# --- configuration ---------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """docker/go-units FromHumanSize, which json-file's max-size uses: decimal units (1k = 1000)."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _DECIMAL[(match.group(2) or "").lower()])


@dataclass(frozen=True)
class LogSettings:
    """A container's resolved LogConfig: what inspect shows and what the copiers do."""

    type: str
    config: dict[str, str] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        return self.type == "json-file"

    @property
    def max_size(self) -> int:
        return parse_size(self.config["max-size"]) if self.config.get("max-size") else 0

    @property
    def max_files(self) -> int:
        return int(self.config.get("max-file") or 1)

    def view(self) -> dict[str, Any]:
        return {"Type": self.type, "Config": dict(self.config)}


def resolve_log_config(requested: Any, default_type: str, default_opts: dict[str, str]) -> LogSettings:
    """dockerd's mergeAndVerifyLogConfig: no type means the daemon's driver, whose daemon-wide
    options fill in what the container does not set; then the options are validated."""
    if requested is None:
        requested = {}
    if not isinstance(requested, dict):
        raise InvalidParameter("invalid HostConfig.LogConfig: want an object")
    kind = requested.get("Type") or ""
    opts = requested.get("Config") or {}
    if (
        not isinstance(kind, str)
        or not isinstance(opts, dict)
        or not all(isinstance(v, str) for v in opts.values())
    ):
        raise InvalidParameter("invalid HostConfig.LogConfig: want a Type string and a Config of strings")
    if not kind:
        kind = default_type
    if kind == default_type:
        opts = {**default_opts, **opts}
    validate_log_config(kind, opts)
    return LogSettings(kind, dict(opts))


def validate_log_config(kind: str, opts: dict[str, str]) -> None:
    if kind == "none":
        return  # dockerd accepts (and ignores) options for `none`
    if kind in OTHER_DRIVERS:
        raise InvalidParameter(
            f"logging driver {kind!r} is not supported by pydockerd: use json-file or none"
        )
    if kind != "json-file":
        raise InvalidParameter(f'error looking up logging plugin {kind}: plugin "{kind}" not found')
    for key, value in opts.items():
        if key not in JSON_FILE_OPTS:
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
        if key in UNSUPPORTED_OPTS and value:
            raise InvalidParameter(f"log opt '{key}' of the json-file log driver is not supported yet")
    # dockerd checks these when the log is opened (at start); refusing them at create is clearer.
    if "max-size" in opts and parse_size(opts["max-size"]) <= 0:
        raise InvalidParameter("max-size must be a positive number")
    if "max-file" in opts:
        try:
            files = int(opts["max-file"])
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{opts["max-file"]}": invalid syntax') from None
        if files < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    if opts.get("compress") not in (None, "", "false", "0"):
        raise InvalidParameter("log opt 'compress' of the json-file log driver is not supported yet")


def reading_not_supported() -> NotImplementedYet:
    return NotImplementedYet("configured logging driver does not support reading")


# --- writing ---------------------------------------------------------------------------------


def log_files(path: str) -> list[str]:
    """The log's files, oldest first: <path>.N ... <path>.1, <path>."""
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return [*reversed(rotated), path]


class JSONLog:
    """One container's json-file log; its stdout and stderr copiers write through it."""

    def __init__(self, path: str, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.lock = threading.Lock()
        self.written = threading.Condition(self.lock)  # followers wait on it
        self._file: BinaryIO | None = None
        self._size = 0

    def configure(self, max_size: int, max_files: int) -> None:
        with self.lock:
            self.max_size, self.max_files = max_size, max(1, max_files)

    def create(self) -> None:
        """Open (creating it, 0640 as dockerd's) the log file: it exists from the container's
        start, output or not, so inspect's LogPath always names a file."""
        with self.lock:
            self._open()

    def _open(self) -> BinaryIO:
        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            self._file = os.fdopen(fd, "ab")  # kept open while the container runs
            self._size = self._file.tell()
        return self._file

    def write(self, stream: str, pieces: list[bytes]) -> None:
        if not pieces:
            return
        stamp = rfc3339nano()
        with self.lock:
            self._open()
            assert self._file is not None
            for piece in pieces:
                line = (
                    json.dumps(
                        {"log": piece.decode("utf-8", errors="replace"), "stream": stream, "time": stamp}
                    ).encode()
                    + b"\n"
                )
                if self.max_size and self._size >= self.max_size:
                    self._rotate()
                self._file.write(line)
                self._size += len(line)
            self._file.flush()
            self.written.notify_all()

    def _rotate(self) -> None:
        # As dockerd: close, shift .1 -> .2 ... (the oldest is replaced), current -> .1, reopen
        # truncated. With max-file 1 there is nothing to shift: the file starts over.
        assert self._file is not None
        self._file.close()
        if self.max_files > 1:
            for i in range(self.max_files - 1, 1, -1):
                if os.path.exists(f"{self.path}.{i - 1}"):
                    os.replace(f"{self.path}.{i - 1}", f"{self.path}.{i}")
            os.replace(self.path, f"{self.path}.1")
        self._file = None
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640))
        self._open()

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self.written.notify_all()


class LogFiles:
    """The engine's open json-file logs by path (no module-level state)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._logs: dict[str, JSONLog] = {}

    def open(self, path: str, settings: LogSettings) -> JSONLog:
        with self._guard:
            log = self._logs.get(path)
            if log is None:
                log = self._logs[path] = JSONLog(path, settings.max_size, settings.max_files)
            else:
                log.configure(settings.max_size, settings.max_files)
            return log

    def get(self, path: str) -> JSONLog | None:
        with self._guard:
            return self._logs.get(path)

    def close(self, path: str) -> None:
        with self._guard:
            log = self._logs.pop(path, None)
        if log is not None:
            log.close()

    def close_all(self) -> None:
        with self._guard:
            logs = list(self._logs.values())
            self._logs.clear()
        for log in logs:
            log.close()


class LogCopier:
    """Copies one FIFO of a task into its JSONLog (None: the `none` driver) and to `live`."""

    def __init__(
        self,
        cid: str,
        stream: str,
        fifo: str,
        sink: JSONLog | None,
        live: Callable[[str, bytes | None], None] | None = None,
        adopt: bool = False,
    ) -> None:
        self.cid = cid
        # Where output also goes as it arrives (attached clients); None marks the end of the stream.
        self.live = live
        self.stream = stream
        self.fifo = fifo
        self.sink = sink
        self.adopt = adopt
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"log-{cid[:12]}-{stream}")
        self._stopped = threading.Event()
        self._fd = -1

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        try:
            if self.adopt:
                # The shim opened its end long ago, or has closed it for good (all delivered):
                # a non-blocking open does not wait for a writer that will never come.
                fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
                os.set_blocking(fd, True)
                self._fd = fd
            else:
                # A blocking open waits for the shim to open its end: opened before that, a FIFO reads as EOF.
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
                if self.live is not None:
                    self.live(self.stream, chunk)
                if self.sink is None:
                    continue
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                self.sink.write(self.stream, [line + b"\n" for line in lines])
                if len(pending) >= CHUNK:  # dockerd splits long lines at 16 KiB too
                    self.sink.write(self.stream, [pending])
                    pending = b""
            if pending and self.sink is not None:
                self.sink.write(self.stream, [pending])
        finally:
            if self.live is not None:
                self.live(self.stream, None)
            try:
                os.close(self._fd)
            except OSError:
                pass

    def finish(self, timeout: float = 10.0) -> None:
        """The task exited: the shim closes the FIFO once drained, which ends the copy."""
        self._thread.join(timeout)

    def stop(self, timeout: float = 0.5) -> None:
        self.request_stop()
        self._thread.join(timeout)

    def request_stop(self) -> None:
        self._stopped.set()
        if self._fd < 0 and self._thread.is_alive():
            # Still waiting in open(): become the writer for a moment so that it returns.
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass


def stop_copiers(copiers: list[LogCopier], timeout: float = 0.5) -> None:
    """Stop many at once: a copier blocked in read() only notices with its next chunk, so the
    wait is shared (bounded by TIMEOUT in all), not TIMEOUT per copier."""
    for copier in copiers:
        copier.request_stop()
    deadline = time.monotonic() + timeout
    for copier in copiers:
        copier.finish(max(0.0, deadline - time.monotonic()))


# --- reading ---------------------------------------------------------------------------------

Entry = tuple[str, bytes, str]


@dataclass
class _Filter:
    stdout: bool
    stderr: bool
    since: float
    until: float

    def entry(self, line: bytes) -> Entry | None:
        try:
            e = json.loads(line)
        except ValueError:
            return None
        stream = e.get("stream", "stdout")
        if (stream == "stdout" and not self.stdout) or (stream == "stderr" and not self.stderr):
            return None
        stamp = e.get("time", "")
        if self.since or self.until:
            t = parse_time(stamp)
            # 1 µs of slack: a bound that went through a float must not drop the entry it names
            if (self.since and t < self.since - 1e-6) or (self.until and t > self.until + 1e-6):
                return None
        return stream, e.get("log", "").encode(), stamp


def _lines(f: BinaryIO, pending: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines from the current position of F; a partial last line is carried over."""
    data = pending + f.read()
    complete = data.rfind(b"\n") + 1
    return data[:complete].splitlines(), data[complete:]


def read_log(
    path: str,
    files: LogFiles,
    *,
    follow: bool,
    alive: Callable[[], bool],
    stdout: bool = True,
    stderr: bool = True,
    since: float = 0,
    until: float = 0,
    tail: int = -1,
) -> Iterator[Entry]:
    """(stream, bytes, time) entries across the rotated files, oldest first; with follow,
    keeps reading (through rotations) while ALIVE() holds."""
    wanted = _Filter(stdout, stderr, since, until)
    writer = files.get(path)
    # Open every file under the writer's lock, so that no rotation falls between two opens;
    # what is open stays readable whatever is renamed or dropped afterwards.
    handles: list[BinaryIO] = []
    if writer is not None:
        writer.lock.acquire()
    try:
        for name in log_files(path):
            try:
                handles.append(open(name, "rb"))  # closed below
            except FileNotFoundError:
                continue
    finally:
        if writer is not None:
            writer.lock.release()
    current: BinaryIO | None = handles[-1] if handles and handles[-1].name == path else None
    pending = b""
    try:
        entries: list[Entry] = []
        for f in handles:
            lines, rest = _lines(f, b"")
            if f is current:
                pending = rest
            entries += [e for e in map(wanted.entry, lines) if e is not None]
        if tail >= 0:
            entries = entries[-tail:] if tail else []
        yield from entries
        del entries
        if not follow:
            return
        yield from _follow(path, files, current, pending, wanted, alive, until)
    finally:
        for f in handles:
            f.close()


def _follow(
    path: str,
    files: LogFiles,
    current: BinaryIO | None,
    pending: bytes,
    wanted: _Filter,
    alive: Callable[[], bool],
    until: float,
) -> Iterator[Entry]:
    opened: list[BinaryIO] = []
    try:
        while True:
            still = alive()  # read before draining: output written before the exit is not missed
            if current is None:
                try:
                    current = open(path, "rb")
                    opened.append(current)
                except FileNotFoundError:
                    pass
            got = False
            if current is not None:
                if os.fstat(current.fileno()).st_size < current.tell():
                    current.seek(0)  # truncated in place (max-file 1)
                    pending = b""
                lines, pending = _lines(current, pending)
                for e in map(wanted.entry, lines):
                    got = True
                    if e is not None:
                        yield e
                successor = _successor(path, files, current)
                if successor is not None:
                    # Rotated: everything of the old file has been read above (no writer appends
                    # to it any more), so go on with the next one.
                    current = successor
                    opened.append(current)
                    pending = b""
                    continue
            if got:
                continue
            if not still or (until and time.time() > until):
                return
            writer = files.get(path)
            if writer is not None:
                with writer.written:
                    writer.written.wait(0.5)
            else:
                time.sleep(0.1)
    finally:
        for f in opened:
            f.close()


def _successor(path: str, files: LogFiles, current: BinaryIO) -> BinaryIO | None:
    """The file written after CURRENT's, when CURRENT is no longer the live one."""
    ino = os.fstat(current.fileno()).st_ino
    try:
        if os.stat(path).st_ino == ino:
            return None
    except FileNotFoundError:
        return None
    writer = files.get(path)
    if writer is not None:
        writer.lock.acquire()  # no rotation may shift the names while they are matched and opened
    try:
        names = log_files(path)
        for i, name in enumerate(names):
            try:
                if os.stat(name).st_ino == ino:
                    return _open_first(names[i + 1 :])
            except FileNotFoundError:
                continue
        return _open_first(names)  # ours was dropped: resume at the oldest one left
    finally:
        if writer is not None:
            writer.lock.release()


def _open_first(names: list[str]) -> BinaryIO | None:
    for name in names:
        try:
            return open(name, "rb")
        except FileNotFoundError:
            continue
    return None
