"""The last steps of any container process (init or exec), from resolving argv[0] to execve.

Order matters and follows the kernel's rules: the bounding set is dropped while we are
still root; keepcaps preserves permitted caps across the uid switch; capset restores the
requested sets; no_new_privs and seccomp come last (seccomp before the cap drop when
no_new_privs is off, because loading a filter then needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum, which the start path does not need
import errno
import os
import resource

from common import libc
from runtime.errors import PyruncError
from runtime.linux import capabilities, exec_stub

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}  # fmt: skip
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def resolve_executable(arg0: str, env: dict[str, str]) -> str:
    """Find argv[0] as execvp would, in the container's PATH, so `create` can fail early with a clear error."""
    if "/" in arg0:
        _check_executable(arg0, arg0)
        return arg0
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", arg0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise PyruncError(f'exec: "{arg0}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PyruncError(f'exec: "{name}": stat {path}: no such file or directory') from None
    except OSError as exc:
        raise PyruncError(f'exec: "{name}": {exc.strerror}') from None
    if os.path.isdir(path):  # what execve answers for a directory, and so runc
        raise PyruncError(f'exec: "{name}": permission denied')
    if not st.st_mode & 0o111:
        raise PyruncError(f'exec: "{name}": permission denied')


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    """runc's HOME for a process whose environment has none: the home directory of its uid in
    the container's /etc/passwd, "/" when there is no such entry (or no such file)."""
    try:
        with open(passwd, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "/"
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 6 and fields[2].strip() == str(uid):
            return fields[5] or "/"
    return "/"


def validate_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for rl in rlimits:
        if rl["type"] not in RLIMITS:
            raise PyruncError(f"unknown rlimit type {rl['type']!r}")


def apply_rlimits(rlimits: list[dict[str, Any]]) -> None:
    for rl in rlimits:
        try:
            resource.setrlimit(RLIMITS[rl["type"]], (rl["soft"], rl["hard"]))
        except (OSError, ValueError) as exc:
            raise PyruncError(f"cannot set {rl['type']} to {rl['soft']}/{rl['hard']}: {exc}") from None


def set_oom_score_adj(value: int, pid: int | str = "self") -> None:
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as exc:
        raise PyruncError(f"cannot set oom_score_adj to {value}: {exc.strerror}") from None


def finalize_and_exec(
    proc: dict[str, Any],
    exe: str,
    seccomp_filter: Any | None,
    preserve_fds: int,
    in_userns: bool,
    status_fd: int,
) -> NoReturn:
    """Drop to the process's credentials and exec it. STATUS_FD (close-on-exec) is where the
    caller hears of a failure: a failed execve is written there by the exec stub."""
    # Made while no seccomp filter can refuse memfd_create yet.
    stub = exec_stub.prepare(status_fd)
    caps = proc.get("capabilities")
    user = proc.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    nnp = bool(proc.get("noNewPrivileges"))
    env = env_dict(proc.get("env") or [])
    if not env.get("HOME"):
        env["HOME"] = home_of(uid)  # read while still root, as runc does

    if seccomp_filter is not None and not nnp:
        seccomp_filter.load()
    if caps is not None:
        capabilities.drop_bounding(caps.get("bounding") or [])
    libc.set_keepcaps(True)
    try:
        os.setgroups(user.get("additionalGids") or [])
    except OSError as exc:
        # With setgroups denied in a user namespace, an empty list is the only thing we could set anyway.
        if not (in_userns and exc.errno == errno.EPERM and not user.get("additionalGids")):
            raise PyruncError(f"setgroups: {exc.strerror}") from None
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise PyruncError(f"cannot switch to uid {uid} gid {gid}: {exc.strerror}") from None
    if caps is not None:
        capabilities.apply_process_sets(caps)
    libc.set_keepcaps(False)
    os.umask(user["umask"] if user.get("umask") is not None else 0o022)
    if nnp:
        libc.set_no_new_privs()
    for sig in (
        _signal.SIGPIPE,
        _signal.SIGXFSZ,
        _signal.SIGINT,
        _signal.SIGTERM,
        _signal.SIGCHLD,
        _signal.SIGHUP,
    ):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    libc.cloexec_from(3 + preserve_fds)
    if seccomp_filter is not None and nnp:
        seccomp_filter.load()
    if stub >= 0:
        exec_stub.exec_through(stub, exe, proc["args"], [f"{k}={v}" for k, v in env.items()], status_fd)
    try:
        os.execve(exe, proc["args"], env)
    except OSError as exc:
        raise PyruncError(f'exec: "{proc["args"][0]}": {exc.strerror}') from None
