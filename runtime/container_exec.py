"""`pyrunc exec`: start another process inside a running container's namespaces and cgroups."""

from __future__ import annotations

import os
import struct

from common import fastjson, libc
from runtime import process
from runtime import spec as specmod
from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux import inroot, namespaces
from runtime.linux.cgroups import load_manager
from runtime.supervise import Forwarding, wait
from runtime.sync import Channel, exec_failure, report_and_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, NoReturn

    from runtime.linux.seccomp import SeccompFilter


class ExecOptions:
    def __init__(
        self,
        root: str,
        container_id: str,
        process_file: str | None = None,
        args: list[str] | None = None,
        tty: bool = False,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        cwd: str | None = None,
        env: list[str] | None = None,
        user: str | None = None,
        additional_gids: list[int] | None = None,
        caps: list[str] | None = None,
        no_new_privs: bool = False,
        preserve_fds: int = 0,
        ignore_paused: bool = False,
    ) -> None:
        self.root = root
        self.container_id = container_id
        self.process_file = process_file
        self.args = args or []
        self.tty = tty
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.cwd = cwd
        self.env = env or []
        self.user = user
        self.additional_gids = additional_gids or []
        self.caps = caps or []
        self.no_new_privs = no_new_privs
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused


def build_process(opts: ExecOptions, base: dict[str, Any]) -> dict[str, Any]:
    proc: dict[str, Any]
    if opts.process_file:
        try:
            with open(opts.process_file, "rb") as f:
                proc = fastjson.loads(f.read())
        except OSError as exc:
            raise PyruncError(f"cannot read process file {opts.process_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise PyruncError(f"invalid process file {opts.process_file}: {exc}") from None
    else:
        if not opts.args:
            raise PyruncError("exec: a command to run is required (or --process FILE)")
        # A deep copy: the process comes from JSON, so a JSON round trip is one (without `copy`).
        proc = fastjson.loads(fastjson.dumps(base))
        proc["args"] = opts.args
        proc["terminal"] = opts.tty
        proc.pop("consoleSize", None)
        proc["env"] = list(proc.get("env") or []) + opts.env
        if opts.cwd:
            proc["cwd"] = opts.cwd
        if opts.user:
            uid, _, gid = opts.user.partition(":")
            try:
                proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
            except ValueError:
                raise PyruncError(f"invalid --user {opts.user!r}: want UID[:GID]") from None
        if opts.additional_gids:
            proc.setdefault("user", {})["additionalGids"] = opts.additional_gids
        if opts.caps:
            caps = proc.setdefault("capabilities", {})
            for key in ("bounding", "effective", "permitted", "ambient"):
                caps[key] = sorted(set(caps.get(key) or []) | set(opts.caps))
        if opts.no_new_privs:
            proc["noNewPrivileges"] = True
    specmod.check_process(proc)
    proc.setdefault("cwd", "/")
    return proc


def exec_process(opts: ExecOptions) -> int:
    cs = statemod.load(opts.root, opts.container_id)
    current = statemod.status(opts.root, cs)
    if current == "stopped":
        raise PyruncError("cannot exec in a stopped container")
    if current == "paused" and not opts.ignore_paused:
        raise PyruncError("cannot exec in a paused container (use --ignore-paused to override)")
    proc = build_process(opts, cs.config.get("process") or {})
    if proc.get("capabilities"):
        from runtime.linux import capabilities

        capabilities.validate(proc["capabilities"])
    process.validate_rlimits(proc.get("rlimits") or [])

    console_fd: int | None = None
    ours: socket.socket | None = None
    keep: list[socket.socket] = []
    if proc.get("terminal"):
        # Imported before the fork: after setns into the container's mount namespace it cannot be.
        import socket

        from runtime.linux import console

        if opts.console_socket:
            sock = console.connect(opts.console_socket)
            keep.append(sock)
            console_fd = sock.fileno()
        elif opts.detach:
            raise PyruncError("cannot allocate tty if runc will detach without setting console socket")
        else:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            keep.append(theirs)
            console_fd = theirs.fileno()
    if not opts.detach:
        libc.set_child_subreaper()

    # Load every module the child needs now: after setns into the container's mount namespace
    # the host's Python files are out of reach.
    seccomp_filter = None
    seccomp_cfg = (cs.config.get("linux") or {}).get("seccomp")
    if seccomp_cfg:
        seccomp_filter = _seccomp_filter(cs.directory(opts.root), seccomp_cfg)
    kinds = [ns["type"] for ns in specmod.namespaces(cs.config)]
    opened = namespaces.open_paths(namespaces.of_process(cs.pid, kinds))
    in_userns = "user" in kinds
    parent, child = Channel.pair()
    first = os.fork()
    if first == 0:
        parent.close()
        _stage1(child, opened, proc, console_fd, seccomp_filter, opts.preserve_fds, in_userns)
    child.close()
    for _, fd in opened:
        os.close(fd)
    for sock in keep:
        sock.close()
    try:
        try:
            load_manager(cs.cgroup).add_process(first)
            parent.send("go")
            pid = int(parent.expect("pid")["pid"])
        finally:
            os.waitpid(first, 0)
        master = None
        if ours is not None:
            from runtime.linux import console

            master = console.receive_master(ours)
            ours.close()
        msg = parent.recv_or_eof()
        if msg is not None and msg["type"] == "error":
            raise PyruncError(msg["message"])
        if msg is not None and msg["type"] == "exec-errno":
            raise PyruncError(exec_failure(proc["args"][0], msg["errno"]))
    finally:
        parent.close()
    if opts.pid_file:
        statemod.write_state_file(os.path.abspath(opts.pid_file), str(pid).encode(), 0o644)
    if opts.detach:
        return 0
    with Forwarding(pid):
        return wait(pid, master)


# The container's compiled seccomp program, kept in its state directory (removed with it by
# delete): compiling Docker's default profile with libseccomp costs an exec 12-16 ms of CPU, a
# third of a forked `pyrunc exec`'s, and every exec of a container compiles the same profile
# (runc compiles it each time too, in Go, for ~2 ms). The file holds the profile it was compiled
# from, compared byte for byte, so a profile that differs is compiled again.
_SECCOMP_CACHE = "seccomp.bpf"
_SECCOMP_MAGIC = b"pyrunc-seccomp-1\n"
_SECCOMP_HEADER = struct.Struct("<III")  # flags, profile length, program length


def _seccomp_filter(directory: str, cfg: dict[str, Any]) -> SeccompFilter:
    """CFG compiled: from the cache in DIRECTORY when it was compiled from the same profile."""
    from runtime.linux import seccomp

    profile = fastjson.dumps(cfg).encode()
    path = os.path.join(directory, _SECCOMP_CACHE)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    cached = _cached_program(data, profile)
    if cached is not None:
        return seccomp.SeccompFilter.compiled(*cached)
    filt = seccomp.build_filter(cfg)
    header = _SECCOMP_HEADER.pack(filt.flags, len(profile), len(filt.program))
    try:
        statemod.write_state_file(path, _SECCOMP_MAGIC + header + profile + filt.program)
    except OSError:
        pass  # a cache: the next exec compiles again
    return filt


def _cached_program(data: bytes, profile: bytes) -> tuple[bytes, int] | None:
    """(program, flags) from a cache file's DATA if it was compiled from PROFILE."""
    start = len(_SECCOMP_MAGIC) + _SECCOMP_HEADER.size
    if not data.startswith(_SECCOMP_MAGIC) or len(data) < start:
        return None
    flags, profile_len, program_len = _SECCOMP_HEADER.unpack_from(data, len(_SECCOMP_MAGIC))
    if len(data) != start + profile_len + program_len or data[start : start + profile_len] != profile:
        return None
    return data[start + profile_len :], flags


def _stage1(
    chan: Channel,
    opened: list[tuple[str, int]],
    proc: dict[str, Any],
    console_fd: int | None,
    seccomp_filter: Any,
    preserve_fds: int,
    in_userns: bool,
) -> NoReturn:
    try:
        # Non-dumpable before we enter the container, as the init is (see init.stage1).
        libc.set_dumpable(False)
        chan.expect("go")
        namespaces.join(opened)
        pid = os.fork()
        if pid == 0:
            _stage2(chan, proc, console_fd, seccomp_filter, preserve_fds, in_userns)
        chan.send("pid", pid=pid)
        os._exit(0)
    except BaseException as exc:  # noqa: BLE001
        report_and_exit(chan, exc)
    os._exit(1)


def _stage2(
    chan: Channel,
    proc: dict[str, Any],
    console_fd: int | None,
    seccomp_filter: Any,
    preserve_fds: int,
    in_userns: bool,
) -> NoReturn:
    try:
        os.setsid()
        if proc.get("terminal") and console_fd is not None:
            from runtime.linux import console

            master, slave_path = console.open_pty()
            size = proc.get("consoleSize")
            if size:
                libc.set_winsize(master, size.get("height", 0), size.get("width", 0))
            console.send_master(console_fd, master)
            os.close(master)
            console.attach_slave(slave_path)
        if console_fd is not None:
            os.close(console_fd)
        inroot.chdir(proc["cwd"])
        process.apply_rlimits(proc.get("rlimits") or [])
        exe = process.resolve_executable(proc["args"][0], process.env_dict(proc.get("env") or []))
        process.finalize_and_exec(proc, exe, seccomp_filter, preserve_fds, in_userns, chan.write_fd)
    except BaseException as exc:  # noqa: BLE001
        report_and_exit(chan, exc)
    os._exit(1)
