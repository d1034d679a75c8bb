"""Helpers for driving the real `pydocker` binary against the reference engine.

One reference dockerd (Debian's docker.io, tests/dockerd_ref.py) per test session (per
xdist worker), with busybox loaded. pydocker runs as a subprocess with a private HOME and
config directory, so no user configuration leaks in. Every container a test makes has a
unique name from the `names` fixture and is removed (through the reference docker CLI, not
through the code under test) when the test ends; images a test tags are removed likewise.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
import uuid
from pathlib import Path

import pytest

from tests.dockerd_ref import DOCKER_CLI, RefDockerd

REPO = Path(__file__).resolve().parents[2]
PYDOCKER = REPO / ".venv" / "bin" / "pydocker"
SHARED_IMAGES = REPO.parent / "shared" / "images"


class CLI:
    """Runs `pydocker -H unix://<reference socket> ...` with an isolated environment."""

    def __init__(self, daemon: RefDockerd, home: Path) -> None:
        self.daemon = daemon
        self.home = home
        self.config_dir = home / ".pydocker"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "PYDOCKER_CONFIG": str(self.config_dir),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }

    @property
    def host(self) -> str:
        return f"unix://{self.daemon.socket}"

    def argv(self, *args: str) -> list[str]:
        return [str(PYDOCKER), "-H", self.host, *args]

    def run(
        self,
        *args: str,
        input: str | bytes | None = None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
        host: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run pydocker and capture text output; never raises on a non-zero status."""
        argv = self.argv(*args) if host else [str(PYDOCKER), *args]
        data = input.encode() if isinstance(input, str) else (input if input is not None else b"")
        res = subprocess.run(
            argv, input=data, capture_output=True, timeout=timeout, env={**self.env, **(env or {})}, cwd=cwd
        )
        return subprocess.CompletedProcess(
            res.args, res.returncode, res.stdout.decode(errors="replace"), res.stderr.decode(errors="replace")
        )

    def run_via(
        self,
        socket: Path,
        *args: str,
        input: str = "",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """pydocker against another socket (a recording proxy in front of the engine)."""
        return self.run("-H", f"unix://{socket}", *args, input=input, env=env, host=False, cwd=cwd)

    def run_bytes(
        self, *args: str, input: bytes = b"", timeout: float = 60.0
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.argv(*args), input=input, capture_output=True, timeout=timeout, env=self.env
        )

    def ok(self, *args: str, input: str | bytes | None = None, timeout: float = 60.0) -> str:
        res = self.run(*args, input=input, timeout=timeout)
        assert res.returncode == 0, explain(res)
        return res.stdout

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )

    def tty(self, *args: str, rows: int = 24, cols: int = 80) -> PtySession:
        return PtySession(self.argv(*args), self.env, rows, cols)


def explain(res: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {' '.join(map(str, res.args))}\nrc={res.returncode}\nstdout={res.stdout!r}\nstderr={res.stderr!r}"
    )


class PtySession:
    """pydocker on a pseudo-terminal that is its controlling terminal (pty.fork), so that
    resizing the terminal delivers SIGWINCH exactly as an interactive shell would."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int, cols: int) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # child: becomes pydocker, with the pty as stdin/stdout/stderr
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        self.output = b""
        self._pos = 0
        self.returncode: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            return False
        self.output += data
        return True

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[bytes]:
        """Wait until pattern (a regex) appears in output not consumed by an earlier expect."""
        regex = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.output, self._pos)
            if m:
                self._pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen within {timeout}s; output: {self.text()!r}")
            if not self._read(min(left, 0.2)) and not regex.search(self.output, self._pos):
                raise AssertionError(
                    f"{pattern!r} not seen before the terminal closed; output: {self.text()!r}"
                )

    def _alive(self) -> bool:
        if self.returncode is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.returncode = os.waitstatus_to_exitcode(status)
        return False

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal size; the kernel signals SIGWINCH to pydocker."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def expect_size(
        self, rows: int, cols: int, previous: tuple[int, int] | None = None, timeout: float = 15.0
    ) -> None:
        """Run `stty size` in the container's shell until it reports ROWS COLS. A terminal gets
        its size from the client's resize call, which the CLI posts after the start (or exec
        start) returns, or after SIGWINCH; at API 1.41 nothing orders that call before what is
        typed, so a shell can run a command on a terminal still 0x0 (busybox then prints
        "stty: standard input") or still PREVIOUS. Any other size, or none in time, fails."""
        waiting = [b"0 0"] + ([f"{previous[0]} {previous[1]}".encode()] if previous else [])
        deadline = time.monotonic() + timeout
        while True:
            self.send(b"stty size\r")
            seen = self.expect(r"(\d+ \d+|stty: standard input[^\r\n]*)\r\n").group(1)
            if seen == f"{rows} {cols}".encode():
                return
            assert seen.startswith(b"stty:") or seen in waiting, f"terminal size {seen!r}, not {rows} {cols}"
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never became {rows}x{cols}; output: {self.text()!r}")
            time.sleep(0.1)

    def until_answered(self, command: bytes, answer: str, timeout: float = 15.0) -> None:
        """Type COMMAND until ANSWER (a regex) comes back: an attach is live once a shell answers
        through it, and what is typed while the client is still attaching is the client's to
        drop (a user types at a prompt, not before), so a single try would test that race."""
        deadline = time.monotonic() + timeout
        while True:
            self.send(command)
            try:
                self.expect(answer, timeout=min(2.0, max(deadline - time.monotonic(), 0.1)))
                return
            except AssertionError:
                if time.monotonic() > deadline or not self._alive():
                    raise

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self._alive():
            if time.monotonic() > deadline:
                self.close()
                raise AssertionError(f"pydocker still running after {timeout}s; output: {self.text()!r}")
            self._read(0.1)
        while self._read(0.05) and select.select([self.fd], [], [], 0)[0]:
            pass
        assert self.returncode is not None
        return self.returncode

    def text(self) -> str:
        return re.sub("\r+\n", "\n", self.output.decode(errors="replace"))

    def close(self) -> None:
        if self._alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.returncode = -9
        try:
            os.close(self.fd)
        except OSError:
            pass


# Engine features pydockerd does not serve yet (their API answers 400/501 "not supported
# yet"). A test using one is marked `@needs_engine_feature("networks")`: against pydockerd it is
# an xfail(strict=True), so when the feature lands the test passes, pytest reports the strict
# xfail as failed, and the name is removed from this set: this is the one switch.
PYDOCKERD_LACKS: frozenset[str] = frozenset()


def needs_engine_feature(*features: str) -> pytest.MarkDecorator:
    """Mark a CLI test as needing these engine features (see PYDOCKERD_LACKS)."""
    return pytest.mark.needs_engine_feature(*features)


def expected_failure_on_pydockerd(features: tuple[str, ...]) -> pytest.MarkDecorator | None:
    missing = sorted(set(features) & PYDOCKERD_LACKS)
    if not missing:
        return None
    return pytest.mark.xfail(strict=True, reason=f"pydockerd does not serve {', '.join(missing)} yet")


def docker_via(
    daemon: RefDockerd,
    socket: Path,
    *args: str,
    input: str = "",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The Docker CLI against another socket (a recording proxy in front of `daemon`)."""
    return subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{socket}", *args], input=input, capture_output=True, text=True, timeout=120,
        env={**daemon._cli_env, **(env or {})}, cwd=cwd,
    )  # fmt: skip


class Names:
    """Unique names for containers, image tags, networks and volumes; removed at teardown."""

    def __init__(self) -> None:
        self.containers: list[str] = []
        self.images: list[str] = []
        self.networks: list[str] = []
        self.volumes: list[str] = []
        self.tag = uuid.uuid4().hex[:10]

    def network(self, label: str = "n") -> str:
        name = f"pdn-{label}-{self.tag}-{len(self.networks)}"
        self.networks.append(name)
        return name

    def volume(self, label: str = "v") -> str:
        name = f"pdv-{label}-{self.tag}-{len(self.volumes)}"
        self.volumes.append(name)
        return name

    def container(self, label: str = "c") -> str:
        name = f"pdc-{label}-{self.tag}-{len(self.containers)}"
        self.containers.append(name)
        return name

    def image(self, label: str = "img") -> str:
        name = f"pdc-{label}-{self.tag}-{len(self.images)}:t"
        self.images.append(name)
        return name
