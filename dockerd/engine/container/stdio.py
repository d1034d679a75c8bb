"""A container's stdio: the task's FIFOs, its log, attached clients, its terminal.

The task's stdio goes through FIFOs under <exec-root>/fifo/<id>/ (`init-stdin`,
`init-stdout`, `init-stderr`; one output stream with a TTY); a copier per output FIFO
moves what comes to the container's log (its log driver, engine/logs.py) and to every
attached client (GET /containers/{id}/logs reads the log; POST .../attach subscribes here).
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
from collections.abc import Callable, Iterator
from typing import Any

from containerd.client import Client
from containerd.client.errors import ContainerdError
from dockerd.engine.container.state import Container, ContainerStore
from dockerd.engine.errors import Conflict
from dockerd.engine.logs import (
    LogCopier,
    LogFiles,
    LogSettings,
    read_log,
    reading_not_supported,
    stop_copiers,
)

log = logging.getLogger("pydockerd.containers")

Output = queue.Queue[tuple[str, bytes | None]]  # (stream, bytes), and (stream, None) at its end


class Stdio:
    def __init__(self, fifo_root: str, store: ContainerStore, client: Client) -> None:
        self.fifo_root = fifo_root
        os.makedirs(self.fifo_root, mode=0o700, exist_ok=True)
        self.store = store
        self.client = client
        self.log_files = LogFiles()
        self._copiers: dict[str, list[LogCopier]] = {}
        # Attached clients per container: queues of (stream, bytes) and (stream, None) at its end.
        self._attached: dict[str, list[Output]] = {}

    # --- FIFOs ---------------------------------------------------------------------------------

    def make_fifos(self, c: Container) -> dict[str, str]:
        d = os.path.join(self.fifo_root, c.id)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, mode=0o700)
        streams = ["stdout"] if c.config.get("Tty") else ["stdout", "stderr"]
        if c.config.get("OpenStdin"):
            streams.append("stdin")
        paths = {}
        for stream in streams:
            path = os.path.join(d, f"init-{stream}")
            os.mkfifo(path, 0o600)
            paths[stream] = path
        return paths

    def output_fifos(self, c: Container) -> dict[str, str]:
        fifo_dir = os.path.join(self.fifo_root, c.id)
        paths = {s: os.path.join(fifo_dir, f"init-{s}") for s in ("stdout", "stderr")}
        return {s: p for s, p in paths.items() if os.path.exists(p)}

    def stdin_fifo(self, c: Container) -> str | None:
        path = os.path.join(self.fifo_root, c.id, "init-stdin")
        return path if os.path.exists(path) else None

    def remove_fifos(self, cid: str) -> None:
        shutil.rmtree(os.path.join(self.fifo_root, cid), ignore_errors=True)

    @staticmethod
    def streams_of(c: Container) -> list[str]:
        return ["stdout"] if c.config.get("Tty") else ["stdout", "stderr"]

    # --- the log and its copiers -----------------------------------------------------------------

    def log_path(self, c: Container) -> str:
        return os.path.join(self.store.dir(c.id), f"{c.id}-json.log")

    @staticmethod
    def log_settings(c: Container) -> LogSettings:
        cfg = c.host_config.get("LogConfig") or {}
        return LogSettings(cfg.get("Type") or "json-file", dict(cfg.get("Config") or {}))

    def start_copiers(self, c: Container, fifos: dict[str, str], adopt: bool = False) -> list[LogCopier]:
        """ADOPT: the task exists already (a restarted daemon), its shim holds the FIFOs, if anyone."""
        settings = self.log_settings(c)
        sink = self.log_files.open(self.log_path(c), settings) if settings.readable else None
        if sink is not None:
            sink.create()
        copiers = [
            LogCopier(c.id, stream, path, sink, live=self._fan_out(c.id), adopt=adopt)
            for stream, path in fifos.items()
            if stream != "stdin"
        ]
        for copier in copiers:
            copier.start()
        return copiers

    def has_copiers(self, cid: str) -> bool:
        return cid in self._copiers

    def set_copiers(self, cid: str, copiers: list[LogCopier]) -> None:
        self._copiers[cid] = copiers

    def take_copiers(self, cid: str) -> list[LogCopier] | None:
        return self._copiers.pop(cid, None)

    def close_log(self, c: Container) -> None:
        self.log_files.close(self.log_path(c))

    def logs(self, c: Container, **opts: Any) -> Iterator[tuple[str, bytes, str]]:
        """Not a generator: a driver that cannot be read fails at the call."""
        if not self.log_settings(c).readable:
            raise reading_not_supported()
        follow = opts.pop("follow", False)
        alive = lambda: c.running() and c.id in self.store  # noqa: E731
        return read_log(self.log_path(c), self.log_files, follow=follow and c.running(), alive=alive, **opts)

    def close(self) -> None:
        """Daemon shutdown: the copiers stop (the shims keep what comes meanwhile for the next daemon)."""
        stop_copiers([copier for copiers in list(self._copiers.values()) for copier in copiers])
        self.log_files.close_all()

    # --- attached clients --------------------------------------------------------------------

    def _fan_out(self, cid: str) -> Callable[[str, bytes | None], None]:
        def deliver(stream: str, data: bytes | None) -> None:
            with self.store.lock:
                queues = list(self._attached.get(cid, []))
            for q in queues:
                q.put((stream, data))

        return deliver

    def attach_output(self, cid: str, q: Output | None = None) -> Output:
        """Subscribe Q (a fresh queue by default) to the container's output as it arrives."""
        q = q if q is not None else queue.Queue()
        with self.store.lock:
            self._attached.setdefault(cid, []).append(q)
        return q

    def detach_output(self, cid: str, q: Output) -> None:
        with self.store.lock:
            queues = self._attached.get(cid, [])
            if q in queues:
                queues.remove(q)

    # --- stdin and the terminal ----------------------------------------------------------------

    def close_stdin(self, cid: str) -> None:
        try:
            self.client.tasks.close_io(cid, stdin=True)
        except ContainerdError as exc:
            log.debug("closing stdin of %s: %s", cid, exc)

    def resize(self, c: Container, height: int, width: int) -> None:
        if not c.running():
            raise Conflict(f"Container {c.id} is not running")
        self.client.tasks.resize_pty(c.id, width=width, height=height)
