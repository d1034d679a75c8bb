"""runc-style logging: --log FILE in json or text format; errors also go to stderr.

containerd's shim reads the last error line of the JSON log to explain a failed
command, so every error a command reports is written there too.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from dataclasses import dataclass


@dataclass
class _Sink:
    path: str | None = None
    fmt: str = "text"
    debug: bool = False


_sink = _Sink()


def configure(path: str | None, fmt: str, debug: bool) -> None:
    _sink.path, _sink.fmt, _sink.debug = path, fmt, debug


def _write(level: str, msg: str) -> None:
    if not _sink.path:
        return
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if _sink.fmt == "json":
        line = json.dumps({"level": level, "msg": msg, "time": now})
    else:
        line = f'time="{now}" level={level} msg={json.dumps(msg)}'
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
