"""runc-style logging: --log FILE in json or text format; errors also go to stderr.

containerd's shim reads the last error line of the JSON log to explain a failed
command, so every error a command reports is written there too, and nothing but JSON
lines may go into that file.
"""

from __future__ import annotations

import os
import sys
import time

from common import fastjson


class _Sink:
    __slots__ = ("path", "fmt", "debug")

    def __init__(self) -> None:
        self.path: str | None = None
        self.fmt = "text"
        self.debug = False


_sink = _Sink()


def configure(path: str | None, fmt: str, debug: bool) -> None:
    _sink.path, _sink.fmt, _sink.debug = path, fmt, debug


def rfc3339_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def _write(level: str, msg: str) -> None:
    if not _sink.path:
        return
    if _sink.fmt == "json":
        line = fastjson.dumps({"level": level, "msg": msg, "time": rfc3339_now()})
    else:
        line = f'time="{rfc3339_now()}" level={level} msg={fastjson.dumps(msg)}'
    try:
        fd = os.open(_sink.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
    except OSError:
        pass


def error(msg: str) -> None:
    _write("error", msg)
    print(f"pyrunc: {msg}" if _sink.fmt != "json" or not _sink.path else msg, file=sys.stderr)


def warning(msg: str) -> None:
    _write("warning", msg)
    if not _sink.path:
        print(f"pyrunc: warning: {msg}", file=sys.stderr)


def debug(msg: str) -> None:
    if _sink.debug:
        _write("debug", msg)
