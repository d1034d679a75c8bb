"""Start pydockerd (with its own pycontainerd) on private temporary roots, for tests.

The handle it yields has the same face as the reference engine's (tests/dockerd_ref.py):
`socket`, `docker()`, `docker_ok()`, `docker_tty()`, `log_tail()`, so one test body can be
pointed at either engine with the same real Docker CLI.

Isolation and leak checks:

* data root, exec root, socket and logs live in one fresh temporary directory;
* pydockerd starts inside a cgroup of our own (pids hierarchy), so pycontainerd, every
  shim and every container process stays findable, and containers get a unique
  `--cgroup-parent`;
* teardown removes the containers through the API, stops pydockerd and pycontainerd by
  their pids, then fails with LeftoversError if any process, cgroup, mount or FIFO
  directory of ours is still there (after cleaning it up, so one leak does not cascade).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.dockerd_ref import (
    BUSYBOX_TAR,
    CGROUP_ROOT,
    DAEMON_ENV,
    TRACKING_HIERARCHY,
    DockerdRefError,
    LeftoversError,
    RefDockerd,
    _wait_gone,
    sweep_cgroups_and_mounts,
)

REPO = Path(__file__).resolve().parent.parent
PYDOCKERD = REPO / ".venv" / "bin" / "pydockerd"


class PyDockerd(RefDockerd):
    """A running pydockerd; `docker()` runs the real Docker CLI against it."""

    @property
    def data_root(self) -> Path:
        return self.workdir / "data"

    @property
    def containerd_pid(self) -> int | None:
        try:
            return int((self.exec_root / "containerd" / "pycontainerd.pid").read_text())
        except (OSError, ValueError):
            return None


def until(what: str, check: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll `check` until it is true; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout}s)")
        time.sleep(0.05)


def inspect(daemon: RefDockerd, name: str) -> dict[str, Any]:
    """`docker inspect NAME`, decoded."""
    found: list[dict[str, Any]] = json.loads(daemon.docker_ok("inspect", name))
    return found[0]


def _join_cgroup(path: Path) -> None:
    with open(path / "cgroup.procs", "w") as f:
        f.write(str(os.getpid()))


def start_pydockerd(
    daemon: PyDockerd, extra_args: Sequence[str] = (), program: Path = PYDOCKERD, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """(Re)start pydockerd (`program`, the checkout's by default; in `cwd`, ours by default) for an
    existing handle, e.g. after a test killed it."""
    tracking = CGROUP_ROOT / TRACKING_HIERARCHY / daemon.cgroup_parent.lstrip("/") / "daemon"
    tracking.mkdir(parents=True, exist_ok=True)
    args = [
        str(program),
        "-H", f"unix://{daemon.socket}",
        "--data-root", str(daemon.workdir / "data"),
        "--exec-root", str(daemon.workdir / "exec"),
        "--pidfile", str(daemon.workdir / "pydockerd.pid"),
        "--cgroup-parent", daemon.cgroup_parent,
        *extra_args,
    ]  # fmt: skip
    with open(daemon.log_path, "ab") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(DAEMON_ENV),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=lambda: _join_cgroup(tracking),
        )
    object.__setattr__(daemon, "pid", proc.pid)
    return proc


def wait_ready(daemon: PyDockerd, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise DockerdRefError(f"pydockerd exited {proc.returncode} while starting:\n{daemon.log_tail()}")
        if (
            daemon.socket.exists()
            and daemon.docker("version", "--format", "{{.Server.Version}}").returncode == 0
        ):
            return
        if time.monotonic() > deadline:
            raise DockerdRefError(f"pydockerd not ready after {timeout}s:\n{daemon.log_tail()}")
        time.sleep(0.1)


@contextmanager
def pydockerd_engine(
    images: Sequence[Path] = (BUSYBOX_TAR,),
    extra_args: Sequence[str] = (),
    start_timeout: float = 60.0,
    program: Path = PYDOCKERD,
    cwd: Path | None = None,
) -> Iterator[PyDockerd]:
    """Start pydockerd (`program`, the checkout's by default; in `cwd`, ours by default), load
    `images`, yield, tear down; raise LeftoversError on any leak."""
    if os.geteuid() != 0:
        raise DockerdRefError("pydockerd needs root")
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"pydocker-pd-{tag}-", dir="/tmp"))
    workdir.chmod(0o711)  # passable for a userns-remap daemon's remapped root (dockerd checks it)
    daemon = PyDockerd(
        workdir=workdir,
        socket=workdir / "docker.sock",
        pid=0,
        cgroup_parent=f"/pydocker-pd-{tag}",
        runtimes={},
        log_path=workdir / "pydockerd.log",
        _cli_env=dict(DAEMON_ENV, DOCKER_CONFIG=str(workdir / "cli")),
    )
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = start_pydockerd(daemon, extra_args, program, cwd)
        wait_ready(daemon, proc, start_timeout)
        for image in images:
            daemon.docker_ok("load", "-i", str(image), timeout=120)
        yield daemon
    finally:
        teardown(daemon)


def _alive(pid: int) -> bool:
    """Whether PID has a thread left. A zombie is dead unless it is a thread-group leader whose
    other threads are still being torn down: after exit_group the leader shows "Z" at once, while
    the last thread out still frees the address space (tens of ms for a daemon, more under load),
    and until then the process stays in its cgroup's cgroup.procs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def stop_pid(pid: int | None, timeout: float = 30.0) -> bool:
    """SIGTERM a pid we started and wait; SIGKILL after `timeout`. False if it had to be killed."""
    if not pid or not _alive(pid):
        return True
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
            return False
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def _network_tag(daemon: PyDockerd) -> str:
    """The hash of the exec root that names this daemon's links and chains (dockerd/main.py's
    network_options)."""
    import hashlib

    return hashlib.sha256(str(daemon.exec_root.absolute()).encode()).hexdigest()[:6]


def _own_links(tag: str) -> list[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()
            if any(name in line for name in (f"pyd{tag}", f"pyv{tag}", f"pyb{tag}-"))]  # fmt: skip


def network_leftovers(daemon: PyDockerd) -> list[str]:
    """Every kernel object named for this daemon (links, iptables chains and rules, namespace
    mounts): its names come from a hash of its exec root."""
    tag = _network_tag(daemon)
    found = _own_links(tag)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found += [line for line in rules.splitlines() if f"PYD{tag.upper()}" in line]
    with open("/proc/self/mountinfo") as f:
        found += [
            line.split()[4] for line in f if line.split()[4].startswith(str(daemon.exec_root / "netns"))
        ]
    return found


def remove_network_leftovers(daemon: PyDockerd) -> None:
    """Delete what network_leftovers found, so that a failed test leaves the host as it was:
    the rules in the built-in chains that name our chains or links, our chains, our links.
    The namespace mounts go with the mounts under the daemon's directory."""
    import shlex

    tag = _network_tag(daemon)
    ours = (f"PYD{tag.upper()}", f"pyd{tag}", f"pyv{tag}", f"pyb{tag}-")
    for table in ("filter", "nat"):
        rules = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True).stdout
        chains = [line[1:].split()[0] for line in rules.splitlines() if line.startswith(f":PYD{tag.upper()}")]
        for line in rules.splitlines():
            if line.startswith("-A ") and line.split()[1] not in chains and any(n in line for n in ours):
                subprocess.run(["iptables", "-t", table, "-D", *shlex.split(line)[1:]], capture_output=True)
        for flag in ("-F", "-X"):
            for chain in chains:
                subprocess.run(["iptables", "-t", table, flag, chain], capture_output=True)
    for link in _own_links(tag):
        subprocess.run(["ip", "link", "del", link], capture_output=True)


def teardown(daemon: PyDockerd) -> None:
    leftovers: list[str] = []
    if daemon.pid and _alive(daemon.pid):
        # A daemon that no longer answers must not stop the rest of the clean-up.
        try:
            ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.split()
            if ids:
                res = daemon.docker("rm", "-f", *ids, timeout=120)
                if res.returncode != 0:
                    leftovers.append(f"docker rm -f failed: {res.stderr.strip()}")
        except DockerdRefError as exc:
            leftovers.append(str(exc))
    if not stop_pid(daemon.pid, 40):
        leftovers.append(f"pydockerd {daemon.pid} ignored SIGTERM for 40s")
    if not stop_pid(daemon.containerd_pid, 40):
        leftovers.append(f"pycontainerd {daemon.containerd_pid} ignored SIGTERM for 40s")
    network_left = network_leftovers(daemon)
    if network_left:
        leftovers += [f"network object left: {what}" for what in network_left]
        remove_network_leftovers(daemon)
    sweep_cgroups_and_mounts(daemon.cgroup_parent, daemon.workdir, leftovers)
    fifo_root = daemon.exec_root / "fifo"
    if fifo_root.exists() and any(fifo_root.iterdir()):
        leftovers.append(f"FIFO directories left: {sorted(p.name for p in fifo_root.iterdir())}")
    log_tail = daemon.log_tail()
    shutil.rmtree(daemon.workdir, ignore_errors=True)
    if leftovers:
        raise LeftoversError("; ".join(leftovers) + f"\n--- pydockerd log tail ---\n{log_tail}")
