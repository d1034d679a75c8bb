"""Running the OCI runtime (pyrunc, or runc: the same command line) for each lifecycle step.

Every call is synchronous: the shim is single-threaded and a runtime verb takes tens of
milliseconds. Because nothing else reaps while a call runs, the exit of a process the
call started (an `exec --detach` of a short command) always waits, as a zombie, until the
shim has read its pid file. The runtime logs JSON to bundle/log.json, as under
containerd; on failure its last error line becomes the message.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum
import os
import select
import sys

# The shim ignores SIGPIPE (Python does); the runtime, and through it the container,
# must start with the default dispositions.
_RESET_SIGNALS = (_signal.SIGPIPE, _signal.SIGXFSZ)


class RuntimeFailed(Exception):
    """The runtime exited non-zero; the message is its own last error."""


class Runtime:
    def __init__(
        self, path: str, root: str, log_path: str, systemd_cgroup: bool = False, fork: bool = False
    ) -> None:
        self.path = path
        self.root = root
        self.log_path = log_path
        self.systemd_cgroup = systemd_cgroup
        # FORK: run this checkout's pyrunc in a forked process when PATH is its launcher and it is
        # loaded (shim/runtimefork.py); any other runtime is exec'd.
        self.fork = fork and "runtime.cli" in sys.modules

    def _argv(self, args: list[str]) -> list[str]:
        argv = [self.path]
        if self.root:
            argv += ["--root", self.root]
        if self.systemd_cgroup:
            argv.append("--systemd-cgroup")
        return argv + ["--log", self.log_path, "--log-format", "json", *args]

    def forks(self) -> bool:
        """Whether the next verb runs in a forked pyrunc rather than an exec'd runtime."""
        if not self.fork:
            return False
        from shim import runtimefork

        return runtimefork.is_own_pyrunc(self.path)

    def _spawn(self, args: list[str], stdio: tuple[int, int, int]) -> int:
        if self.forks():
            from shim import runtimefork

            try:
                return runtimefork.spawn(self._argv(args), stdio, self.log_path)
            except OSError as exc:
                raise RuntimeFailed(f"cannot run the runtime {self.path}: {exc.strerror}") from None
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)]
        try:
            return os.posix_spawn(
                self.path,
                self._argv(args),
                os.environ,
                file_actions=actions,
                setsigdef=_RESET_SIGNALS,
                setsigmask=(),
            )
        except OSError as exc:
            raise RuntimeFailed(f"cannot run the runtime {self.path}: {exc.strerror}") from None

    def run(self, args: list[str], stdio: tuple[int, int, int]) -> None:
        """A verb whose stdio the container inherits (create, exec): nothing to capture."""
        mark = self._log_size()
        pid = self._spawn(args, stdio)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status != 0:
            raise RuntimeFailed(self._error(mark, b"") or f"{args[0]} failed with status {status}")

    def call(self, args: list[str], stdin: bytes = b"") -> bytes:
        """A verb with captured output (start, kill, delete, ps, pause, resume, update)."""
        mark = self._log_size()
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            if stdin:
                os.write(in_w, stdin)  # small JSON: it fits the pipe's buffer
            os.close(in_w)
            in_w = -1
            pid = self._spawn(args, (in_r, out_w, err_w))
        finally:
            for fd in (in_r, in_w, out_w, err_w):
                if fd >= 0:
                    os.close(fd)
        out, err = _collect(out_r, err_r)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status != 0:
            raise RuntimeFailed(self._error(mark, err) or f"{args[0]} failed with status {status}")
        return out

    def _log_size(self) -> int:
        try:
            return os.stat(self.log_path).st_size
        except OSError:
            return 0

    def _error(self, mark: int, stderr: bytes) -> str:
        """The last error the runtime logged since MARK, else its stderr."""
        from common import fastjson  # C-accelerated JSON without the `json` package

        message = ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = fastjson.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                message = str(entry.get("msg", ""))
        if not message:
            tail = stderr.decode(errors="replace").strip().splitlines()
            message = tail[-1] if tail else ""
        return message


def _collect(out_r: int, err_r: int) -> tuple[bytes, bytes]:
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    poller = select.poll()
    for fd in chunks:
        poller.register(fd, select.POLLIN)
    open_fds = set(chunks)
    while open_fds:
        for fd, _ in poller.poll():
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
                os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])
