"""Start Debian's reference dockerd (docker.io 20.10) on private temporary roots.

Tests use it to prove that pyrunc can stand in for runc under the real Docker: the daemon
gets `--add-runtime NAME=PATH` for each runtime under test, and `docker run --runtime NAME`
then drives that runtime exactly as it drives runc.

Isolation, so that parallel pytest-xdist workers and the host never see each other:

* every path the daemon owns (data root, exec root, socket, pid file, its managed
  containerd) lives in one fresh temporary directory;
* the daemon runs in a private mount namespace (`unshare --mount --propagation private`),
  and on request in a network namespace of its own,
  with throw-away overlays over /etc, /run and /opt: dockerd and containerd write to
  hard-coded shared paths (/etc/docker/key.json, /run/docker/plugins, /run/containerd/s,
  /opt/containerd) that no flag moves, and every container mount dies with the namespace;
* the daemon and all its descendants start in a cgroup of our own (pids hierarchy) and
  containers get a unique `--cgroup-parent`, so teardown can find any process left behind.

Teardown removes the containers, stops dockerd by its pid, then looks for leftovers
(processes in our cgroups or in the daemon's mount namespace, mounts under the temporary
directory, cgroup directories that cannot be removed); it cleans them up and then raises
`LeftoversError`, so a runtime that leaks makes the tests fail.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import termios
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO.parent / "shared" / "images"
BUSYBOX_TAR = SHARED_IMAGES / "busybox.tar"
PYRUNC = REPO / ".venv" / "bin" / "pyrunc"

# The machine's docker CLI (28.x, talks API 1.41 to dockerd 20.10) when present, else Debian's own.
DOCKER_CLI = next(
    (cli for cli in ("/usr/local/bin/docker", "/usr/bin/docker") if os.access(cli, os.X_OK)),
    "/usr/bin/docker",
)
DOCKERD = "/usr/sbin/dockerd"
UNSHARE = "/usr/bin/unshare"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The hierarchy the daemon is placed in; runc-like runtimes move each container to
# <cgroup-parent>/<id> in every hierarchy, so this one always holds every descendant.
TRACKING_HIERARCHY = "pids"
CONTAINERD_NAMESPACE = "dref"
# Directories overlaid with a private upper layer inside the daemon's mount namespace.
OVERLAID_DIRS = ("etc", "run", "opt")
DAEMON_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}


# What the Docker CLI prints on stderr from the engine's create warnings about the host, not
# about the container: the reference runs with --ip-forward=false, and a fresh machine has
# net.ipv4.ip_forward=0, so dockerd warns on every run there.
HOST_WARNINGS = ("WARNING: IPv4 forwarding is disabled. Networking will not work.",)


def without_host_warnings(text: str) -> str:
    """`text` (a CLI's stderr, or a TTY's merged output) without the host-warning lines."""
    return "".join(
        line for line in text.splitlines(keepends=True) if line.rstrip("\r\n") not in HOST_WARNINGS
    )


class DockerdRefError(Exception):
    """The reference dockerd could not be started or driven."""


class LeftoversError(DockerdRefError):
    """Something the daemon or a runtime started outlived the daemon."""


@dataclass(frozen=True)
class TtyResult:
    """A docker CLI run whose stdio was a pseudo-terminal."""

    returncode: int
    output: str  # everything written to the terminal, with "\r\n" line ends turned into "\n"


@dataclass
class RefDockerd:
    """A running reference dockerd; `docker()` runs the CLI against it."""

    workdir: Path
    socket: Path
    pid: int
    cgroup_parent: str  # e.g. "/pydocker-dref-1234-ab12cd34"; containers go to <parent>/<id>
    runtimes: Mapping[str, str]
    log_path: Path
    _cli_env: dict[str, str] = field(repr=False, default_factory=dict)

    @property
    def exec_root(self) -> Path:
        return self.workdir / "exec"

    def docker(
        self, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `docker -H unix://SOCKET ARGS...` and return its captured output (never raises on rc)."""
        try:
            return subprocess.run(
                [DOCKER_CLI, "-H", f"unix://{self.socket}", *args],
                input=input if input is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self._cli_env,
            )
        except subprocess.TimeoutExpired as exc:
            raise DockerdRefError(f"docker {' '.join(args)} took more than {timeout}s") from exc

    def docker_ok(self, *args: str, input: str | None = None, timeout: float = 60.0) -> str:
        """Run the CLI, raise DockerdRefError (with stderr and the daemon log's tail) unless rc is 0."""
        res = self.docker(*args, input=input, timeout=timeout)
        if res.returncode != 0:
            raise DockerdRefError(
                f"docker {' '.join(args)} exited {res.returncode}: {res.stderr.strip()}\n"
                f"--- dockerd log tail ---\n{self.log_tail()}"
            )
        return res.stdout

    def docker_tty(self, *args: str, timeout: float = 60.0, rows: int = 24, cols: int = 80) -> TtyResult:
        """Run the CLI with a pseudo-terminal as stdin/stdout/stderr, as `docker -t` needs."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        try:
            proc = subprocess.Popen(
                [DOCKER_CLI, "-H", f"unix://{self.socket}", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=self._cli_env,
                start_new_session=True,
            )
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    proc.wait()
                    raise DockerdRefError(f"docker {' '.join(args)} (on a tty) took more than {timeout}s")
                ready, _, _ = select.select([master], [], [], min(left, 0.2))
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError as exc:  # EIO: every slave fd is closed
                        if exc.errno != errno.EIO:
                            raise
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break
            rc = proc.wait(timeout=max(deadline - time.monotonic(), 1.0))
        finally:
            os.close(master)
        # Two terminals in a row (the container's and ours) each turn "\n" into "\r\n".
        text = re.sub("\r+\n", "\n", b"".join(chunks).decode(errors="replace"))
        return TtyResult(returncode=rc, output=text)

    def bundle_dir(self, container_id: str) -> Path:
        """The bundle containerd made for a (full-id) container; it exists while the task does."""
        return (
            self.exec_root
            / "containerd/daemon/io.containerd.runtime.v2.task"
            / CONTAINERD_NAMESPACE
            / container_id
        )

    def runtime_log(self, container_id: str) -> str:
        """The runtime's `--log` file (log.json) for a live container, or "" once it is gone."""
        try:
            return (self.bundle_dir(container_id) / "log.json").read_text(errors="replace")
        except OSError:
            return ""

    def cgroup_dir(self, hierarchy: str, container_id: str) -> Path:
        return CGROUP_ROOT / hierarchy / self.cgroup_parent.lstrip("/") / container_id

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dockerd log)"


def _mount_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _pids_in_mount_ns(ns: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _mount_ns(int(entry)) == ns:
            found.append(int(entry))
    return found


def _cgroup_trees(cgroup_parent: str) -> list[Path]:
    """Our cgroup directory in every mounted hierarchy (v1 controllers and the unified one)."""
    rel = cgroup_parent.lstrip("/")
    return [h / rel for h in sorted(CGROUP_ROOT.iterdir()) if (h / rel).is_dir()]


def _pids_in_cgroups(trees: Sequence[Path]) -> set[int]:
    pids: set[int] = set()
    for tree in trees:
        for dirpath, _dirs, files in os.walk(tree):
            if "cgroup.procs" in files:
                try:
                    text = Path(dirpath, "cgroup.procs").read_text()
                except OSError:
                    continue
                pids.update(int(p) for p in text.split())
    return pids


def _thaw(trees: Sequence[Path]) -> None:
    """A frozen process cannot die: thaw every frozen freezer cgroup of ours before killing."""
    for tree in trees:
        for dirpath, _dirs, files in os.walk(tree):
            if "freezer.state" in files:
                state = Path(dirpath, "freezer.state")
                try:
                    if state.read_text().strip() != "THAWED":
                        state.write_text("THAWED")
                except OSError:
                    pass


def _kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _remove_cgroup_trees(trees: Sequence[Path]) -> list[str]:
    """rmdir our cgroup directories bottom-up; return the ones that would not go."""
    stuck = []
    for tree in trees:
        for dirpath, _dirs, _files in sorted(os.walk(tree), key=lambda w: -len(w[0])):
            for attempt in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if attempt == 49:
                        stuck.append(f"{dirpath}: {exc.strerror}")
                    time.sleep(0.05)
    return stuck


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4].encode().decode("unicode_escape")
            if mount_point == str(root) or mount_point.startswith(prefix):
                found.append(mount_point)
    return found


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _launcher_script(
    workdir: Path, tracking_cgroup: Path, dockerd_args: Sequence[str], private_network: bool = False
) -> str:
    """The shell run by `unshare`: join our cgroup, overlay the shared dirs, become dockerd."""
    lines = ["set -e", f"echo $$ > {tracking_cgroup}/cgroup.procs"]
    if private_network:
        # A new network namespace starts with lo down; published ports bind to 127.0.0.1.
        lines.append("ip link set lo up")
    for d in OVERLAID_DIRS:
        upper, work = workdir / "ns" / d / "upper", workdir / "ns" / d / "work"
        lines.append(f"mount -t overlay overlay -o lowerdir=/{d},upperdir={upper},workdir={work} /{d}")
    lines.append("exec " + " ".join(_sh_quote(a) for a in dockerd_args))
    return "\n".join(lines)


def _sh_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _check_tools() -> None:
    for tool in (DOCKER_CLI, DOCKERD, UNSHARE):
        if not os.access(tool, os.X_OK):
            raise DockerdRefError(
                f"{tool} is not installed (the reference engine needs docker.io and util-linux)"
            )
    if os.geteuid() != 0:
        raise DockerdRefError("the reference dockerd needs root")


@contextmanager
def reference_dockerd(
    runtimes: Mapping[str, str | Path],
    images: Sequence[Path] = (BUSYBOX_TAR,),
    start_timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    private_network: bool = False,
) -> Iterator[RefDockerd]:
    """Start dockerd with `--add-runtime NAME=PATH` per entry (and `extra_args`), load `images`,
    yield, tear down.

    With `private_network` the daemon also gets a network namespace of its own (`unshare
    --net`): the bridges, veths and addresses of the networks a test creates then live and
    die with that namespace and never appear among the host's interfaces.

    Raises DockerdRefError if the daemon does not come up, LeftoversError at exit if anything
    it started survived it.
    """
    _check_tools()
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"pydocker-dref-{tag}-", dir="/tmp"))
    workdir.chmod(0o711)  # passable for a userns-remap daemon's remapped root (dockerd checks it)
    cgroup_parent = f"/pydocker-dref-{tag}"
    tracking = CGROUP_ROOT / TRACKING_HIERARCHY / cgroup_parent.lstrip("/") / "daemon"
    runtime_paths = {name: str(path) for name, path in runtimes.items()}
    sock = workdir / "docker.sock"
    log_path = workdir / "dockerd.log"
    cli_env = dict(DAEMON_ENV, DOCKER_CONFIG=str(workdir / "cli"))

    proc: subprocess.Popen[bytes] | None = None
    daemon: RefDockerd | None = None
    try:
        for d in OVERLAID_DIRS:
            (workdir / "ns" / d / "upper").mkdir(parents=True)
            (workdir / "ns" / d / "work").mkdir(parents=True)
        tracking.mkdir(parents=True)
        args = [
            DOCKERD,
            "--data-root", str(workdir / "data"),
            "--exec-root", str(workdir / "exec"),
            "-H", f"unix://{sock}",
            "--pidfile", str(workdir / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver", "overlay2",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", cgroup_parent,
            "--containerd-namespace", CONTAINERD_NAMESPACE,
            "--containerd-plugins-namespace", f"{CONTAINERD_NAMESPACE}-plugins",
            "--shutdown-timeout", "5",
        ]  # fmt: skip
        for name, path in runtime_paths.items():
            args += ["--add-runtime", f"{name}={path}"]
        args += list(extra_args)
        script = _launcher_script(workdir, tracking, args, private_network)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    UNSHARE,
                    "--mount",
                    *(["--net"] if private_network else []),
                    "--propagation",
                    "private",
                    "/bin/sh",
                    "-c",
                    script,
                ],  # fmt: skip
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=DAEMON_ENV,
                start_new_session=True,
            )
        daemon = RefDockerd(
            workdir=workdir,
            socket=sock,
            pid=proc.pid,
            cgroup_parent=cgroup_parent,
            runtimes=runtime_paths,
            log_path=log_path,
            _cli_env=cli_env,
        )
        _wait_ready(daemon, proc, start_timeout)
        for image in images:
            daemon.docker_ok("load", "-i", str(image), timeout=120)
        yield daemon
    finally:
        _teardown(workdir, cgroup_parent, proc, daemon)


def _wait_ready(daemon: RefDockerd, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise DockerdRefError(f"dockerd exited {proc.returncode} while starting:\n{daemon.log_tail()}")
        if (
            daemon.socket.exists()
            and daemon.docker("version", "--format", "{{.Server.Version}}").returncode == 0
        ):
            break
        if time.monotonic() > deadline:
            raise DockerdRefError(f"dockerd not ready after {timeout}s:\n{daemon.log_tail()}")
        time.sleep(0.2)
    pidfile = daemon.workdir / "docker.pid"
    recorded = pidfile.read_text().strip() if pidfile.exists() else ""
    if recorded != str(proc.pid):
        raise DockerdRefError(f"dockerd pid file says {recorded!r}, expected {proc.pid}")


def _teardown(
    workdir: Path,
    cgroup_parent: str,
    proc: subprocess.Popen[bytes] | None,
    daemon: RefDockerd | None,
) -> None:
    leftovers: list[str] = []
    ns = _mount_ns(proc.pid) if proc is not None else None
    # Hold the namespace open while we look for its members: once dockerd is gone it would be
    # freed, and a container made meanwhile by another engine could get the same inode number.
    ns_fd = _open_ns(proc.pid) if proc is not None else None
    try:
        _teardown_checked(workdir, cgroup_parent, proc, daemon, ns, leftovers)
    finally:
        if ns_fd is not None:
            os.close(ns_fd)


def _open_ns(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    except OSError:
        return None


def _teardown_checked(
    workdir: Path,
    cgroup_parent: str,
    proc: subprocess.Popen[bytes] | None,
    daemon: RefDockerd | None,
    ns: str | None,
    leftovers: list[str],
) -> None:
    if daemon is not None and proc is not None and proc.poll() is None:
        # Remove containers through the daemon first: that is the runtime's own delete path.
        ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            res = daemon.docker("rm", "-f", *ids, timeout=120)
            if res.returncode != 0:
                leftovers.append(f"docker rm -f failed: {res.stderr.strip()}")

    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            leftovers.append(f"dockerd {proc.pid} ignored SIGTERM for 40s")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    # The daemon is gone; whatever it (or a runtime) started and is still alive is a leftover.
    if ns is not None:
        stray = _pids_once_exits_finish(lambda: _pids_in_mount_ns(ns))
        if stray:
            leftovers.append(f"processes left in dockerd's mount namespace: {_describe(stray)}")
            _kill_pids(stray)
            for pid in stray:
                _wait_gone(pid, 5)
    sweep_cgroups_and_mounts(cgroup_parent, workdir, leftovers)
    log_tail = daemon.log_tail() if daemon is not None else ""
    shutil.rmtree(workdir, ignore_errors=True)
    if workdir.exists():
        leftovers.append(f"{workdir} could not be removed")
    if leftovers:
        raise LeftoversError(
            "; ".join(leftovers) + (f"\n--- dockerd log tail ---\n{log_tail}" if log_tail else "")
        )


def sweep_cgroups_and_mounts(cgroup_parent: str, workdir: Path, leftovers: list[str]) -> None:
    """After the daemons are gone: kill what is still in our cgroups, remove the cgroups,
    unmount what is under `workdir`; each finding is appended to `leftovers`."""
    trees = _cgroup_trees(cgroup_parent)
    in_cgroups = _pids_once_exits_finish(lambda: _pids_in_cgroups(trees))
    if in_cgroups:
        leftovers.append(f"processes left in cgroups {cgroup_parent}: {_describe(in_cgroups)}")
        _thaw(trees)
        _kill_pids(in_cgroups)
        for pid in in_cgroups:
            _wait_gone(pid, 5)
    stuck = _remove_cgroup_trees(trees)
    if stuck:
        leftovers.append(f"cgroups that could not be removed: {stuck}")
    mounts = _mounts_under(workdir)
    if mounts:
        leftovers.append(f"mounts left under {workdir} in the host namespace: {mounts}")
        for mount_point in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount_point], capture_output=True, check=False)


PF_EXITING = 0x4  # a task's flag (include/linux/sched.h) from the start of its do_exit


def _exiting(pid: int) -> bool:
    """Whether PID is already on its way out: exited or killed, the kernel still tearing it down
    (its threads, its memory, its namespaces), which can take a while on a loaded machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            flags = int(f.read().rsplit(")", 1)[1].split()[6])
    except (OSError, IndexError, ValueError):
        return False  # gone
    return bool(flags & PF_EXITING)


def _pids_once_exits_finish(find: Callable[[], Iterable[int]], timeout: float = 10.0) -> list[int]:
    """The processes `find` lists, once those already exiting have left (for up to `timeout`
    seconds). A process stays in cgroup.procs until its last thread is gone, after its leader has
    become a zombie and its command line has emptied: such a process has ended, it is not a leak.
    One that is not exiting is returned at once; one still exiting after `timeout`, too."""
    deadline = time.monotonic() + timeout
    while True:
        pids = sorted(find())
        if not any(_exiting(pid) for pid in pids) or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def _status_summary(pid: int) -> str:
    """State, PPid, Name and Threads from /proc/PID/status: an empty command line alone cannot
    tell an exiting process (its memory already released) from a zombie or a stuck one."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return "gone"
    keep = ("Name:", "State:", "PPid:", "Threads:")
    return ", ".join(" ".join(line.split()) for line in lines if line.startswith(keep))


def _describe(pids: Sequence[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmd = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
                .strip()
            )
        except OSError:
            cmd = "?"
        out.append(f"{pid} ({cmd[:120]}) [{_status_summary(pid)}]")
    return ", ".join(out)
