"""Seccomp filters compiled by runtime.linux.seccomp and loaded for real in forked children.

Each filtered check runs in a child made with os.fork: the filter is built in the parent
(as the runtime does before its fork/exec sequence), the child loads it, makes the syscall
and sends the outcome back through a pipe, then leaves with os._exit. The parent stays
unfiltered, which the tests also check.
"""

from __future__ import annotations

import ctypes
import errno
import os
import pickle
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import libc
from runtime.linux import seccomp as sc

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_personality = 135
SYS_clone3 = 435
SYS_getppid = 110
PER_QUERY = 0xFFFFFFFF  # personality() argument that only reads the current persona
ADDR_NO_RANDOMIZE = 0x0040000
READ_IMPLIES_EXEC = 0x0400000
CAP_SYS_ADMIN = 21


def raw_syscall(number: int, *args: int) -> int:
    res = int(_libc.syscall(number, *(ctypes.c_ulong(a) for a in args)))
    if res == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


@dataclass
class Outcome:
    value: Any = None  # what the probe returned
    errno: int | None = None  # or the errno of the OSError it raised
    error: str | None = None  # or any other exception, as text
    signal: int | None = None  # set when the child was killed instead of reporting


def run_filtered(
    profile: dict[str, Any],
    probe: Callable[[], Any],
    *,
    no_new_privs: bool = True,
    before_load: Callable[[], None] | None = None,
) -> Outcome:
    filt = sc.build_filter(profile)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(read_fd)
            # A seccomp kill dumps core otherwise.
            libc.prctl(libc.PR_SET_DUMPABLE, 0)
            if no_new_privs:
                libc.set_no_new_privs()
            if before_load is not None:
                before_load()
            try:
                filt.load()
                outcome = Outcome(value=probe())
            except OSError as exc:
                outcome = Outcome(errno=exc.errno)
            except Exception as exc:  # noqa: BLE001 - any failure of the probe is the outcome reported
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
            os.write(write_fd, pickle.dumps(outcome))
        except BaseException:  # noqa: BLE001 - the forked child must reach os._exit
            code = 99
        finally:
            os._exit(code)
    os.close(write_fd)
    filt.release()
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return Outcome(signal=os.WTERMSIG(status))
    assert os.WEXITSTATUS(status) == 0, "child failed before reporting"
    result: Outcome = pickle.loads(data)
    return result


# --- filters on a single syscall ------------------------------------------------------------


def test_errno_rule_blocks_mkdir_only_in_the_child(tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    target = tmp_path / "blocked"
    outcome = run_filtered(profile, lambda: os.mkdir(target))
    assert outcome.errno == errno.EPERM
    assert not target.exists()
    os.mkdir(target)  # the parent carries no filter
    assert target.is_dir()


def test_errno_defaults_to_eperm_and_other_syscalls_still_work(tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }

    def probe() -> int:
        (tmp_path / "f").write_text("x")  # open/write unaffected
        os.mkdir(tmp_path / "d")
        return 0

    assert run_filtered(profile, probe).errno == errno.EPERM
    assert (tmp_path / "f").read_text() == "x"


def test_default_errno_ret_is_used_for_unlisted_syscalls() -> None:
    profile = docker_like_profile()
    profile["defaultErrnoRet"] = errno.EOPNOTSUPP
    outcome = run_filtered(profile, lambda: libc.unshare(libc.CLONE_NEWUTS))
    assert outcome.errno == errno.EOPNOTSUPP


def test_arg_condition_denies_one_value_only() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EACCES,
                "args": [{"index": 0, "value": ADDR_NO_RANDOMIZE, "op": "SCMP_CMP_EQ"}],
            }
        ],
    }

    def probe() -> tuple[int, int | None]:
        current = raw_syscall(SYS_personality, PER_QUERY)
        try:
            raw_syscall(SYS_personality, ADDR_NO_RANDOMIZE)
        except OSError as exc:
            return current, exc.errno
        return current, None

    outcome = run_filtered(profile, probe)
    assert outcome.error is None and outcome.errno is None
    current, denied = outcome.value
    assert current >= 0
    assert denied == errno.EACCES


def test_same_argument_twice_becomes_separate_rules() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [
                    {"index": 0, "value": ADDR_NO_RANDOMIZE, "op": "SCMP_CMP_EQ"},
                    {"index": 0, "value": READ_IMPLIES_EXEC, "op": "SCMP_CMP_EQ"},
                ],
            }
        ],
    }

    def probe() -> dict[int, int | None]:
        results: dict[int, int | None] = {}
        for value in (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, PER_QUERY):
            try:
                raw_syscall(SYS_personality, value)
                results[value] = None
            except OSError as exc:
                results[value] = exc.errno
        return results

    outcome = run_filtered(profile, probe)
    assert outcome.value == {ADDR_NO_RANDOMIZE: errno.EPERM, READ_IMPLIES_EXEC: errno.EPERM, PER_QUERY: None}


def test_masked_eq_and_range_operators() -> None:
    # Deny personality when the ADDR_NO_RANDOMIZE bit is set, and any persona >= 0x1000000.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EINVAL,
                "args": [
                    {
                        "index": 0,
                        "value": ADDR_NO_RANDOMIZE,
                        "valueTwo": ADDR_NO_RANDOMIZE,
                        "op": "SCMP_CMP_MASKED_EQ",
                    }
                ],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.E2BIG,
                "args": [{"index": 0, "value": 0x1000000, "op": "SCMP_CMP_GE"}],
            },
        ],
    }

    def probe() -> list[int | None]:
        results: list[int | None] = []
        for value in (ADDR_NO_RANDOMIZE | 0x0008, 0x1000000, 0):
            try:
                raw_syscall(SYS_personality, value)
                results.append(None)
            except OSError as exc:
                results.append(exc.errno)
        return results

    assert run_filtered(profile, probe).value == [errno.EINVAL, errno.E2BIG, None]


def test_conditions_on_different_arguments_must_all_match() -> None:
    # getpriority(which, who): deny only PRIO_PROCESS (0) for "myself" (0).
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["getpriority"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.ESRCH,
                "args": [
                    {"index": 0, "value": os.PRIO_PROCESS, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                ],
            }
        ],
    }

    def probe() -> list[int | None]:
        results: list[int | None] = []
        for which, who in ((os.PRIO_PROCESS, 0), (os.PRIO_PROCESS, os.getpid()), (os.PRIO_PGRP, 0)):
            try:
                os.getpriority(which, who)
                results.append(None)
            except OSError as exc:
                results.append(exc.errno)
        return results

    assert run_filtered(profile, probe).value == [errno.ESRCH, None, None]


def test_kill_process_action_kills_with_sigsys() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    outcome = run_filtered(profile, lambda: raw_syscall(SYS_getppid))
    assert outcome.signal == signal.SIGSYS


def test_unknown_syscall_names_are_skipped_and_known_ones_kept(tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall_xyz", "mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    assert run_filtered(profile, lambda: os.mkdir(tmp_path / "d")).errno == errno.EPERM


def test_rule_equal_to_default_action_is_skipped() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},  # EPERM too: same as the default
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EIO},
            {"names": ["getuid"], "action": "SCMP_ACT_ALLOW"},
        ],
    }
    with sc.build_filter(profile) as filt:
        pfc = filt.export_pfc()
    assert '"getpid"' not in pfc
    assert '"getppid"' in pfc and "ERRNO(5)" in pfc
    assert '"getuid"' in pfc


def test_architectures_are_added_to_the_filter() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["socketcall", "mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    with sc.build_filter(profile) as filt:
        pfc = filt.export_pfc()
    assert "filter for arch x86_64" in pfc and "filter for arch x86 " in pfc and "filter for arch x32" in pfc
    # socketcall exists only on x86 (number 102 there).
    assert 'filter for syscall "socketcall" (102)' in pfc


def test_flags_are_accepted_and_the_filter_loads() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}],
    }
    assert run_filtered(profile, lambda: raw_syscall(SYS_getppid)).value == os.getpid()


def test_load_leaves_no_new_privs_to_the_runtime() -> None:
    # With CAP_SYS_ADMIN a filter loads without no_new_privs, and loading must not set it:
    # only process.noNewPrivileges decides that.
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    outcome = run_filtered(profile, lambda: libc.prctl(libc.PR_GET_NO_NEW_PRIVS), no_new_privs=False)
    assert outcome.value == 0


def test_load_without_no_new_privs_or_cap_sys_admin_is_a_clear_error() -> None:
    def drop_sys_admin() -> None:
        everything = (1 << (libc.last_cap() + 1)) - 1
        with open("/proc/self/status") as f:
            permitted = next(int(line.split()[1], 16) for line in f if line.startswith("CapPrm:"))
        caps = permitted & everything & ~(1 << CAP_SYS_ADMIN)
        libc.capset(caps, caps, 0)

    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}],
    }
    outcome = run_filtered(profile, lambda: None, no_new_privs=False, before_load=drop_sys_admin)
    assert outcome.error is not None
    assert outcome.error.startswith("SeccompError: seccomp: loading the filter:")
    assert "no_new_privs" in outcome.error


# --- a realistic profile: what dockerd writes for a default container on x86_64 -------------

DOCKER_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64
fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64
send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid
setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt
set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown
sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace
""".split()


def docker_like_profile() -> dict[str, Any]:
    """Docker's default profile as dockerd writes it into config.json (x86_64, default caps).

    Taken from the current moby profile, which also denies AF_VSOCK sockets through an
    argument condition; Docker 28.2 here writes the same rules minus that one.
    """

    def allow(names: list[str], args: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        rule: dict[str, Any] = {"names": names, "action": "SCMP_ACT_ALLOW"}
        if args is not None:
            rule["args"] = args
        return rule

    personality = [
        allow(["personality"], [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
        for v in (0, 8, 131072, 131080, 4294967295)
    ]
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            allow(list(DOCKER_ALLOWED)),
            allow(["socket"], [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]),
            *personality,
            allow(["arch_prctl"]),
            allow(["modify_ldt"]),
            allow(["clone"], [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            allow(["chroot"]),
        ],
    }


def test_docker_like_profile_compiles() -> None:
    with sc.build_filter(docker_like_profile()) as filt:
        pfc = filt.export_pfc()
    assert 'filter for syscall "openat" (257)' in pfc
    assert 'filter for syscall "personality"' in pfc
    assert "ERRNO(38)" in pfc


def test_docker_like_profile_loads_and_enforces(tmp_path: Path) -> None:
    def probe() -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def attempt(label: str, action: Callable[[], Any]) -> None:
            try:
                action()
                seen[label] = "ok"
            except OSError as exc:
                seen[label] = exc.errno

        attempt("mkdir", lambda: os.mkdir(tmp_path / "d"))
        attempt("personality query", lambda: raw_syscall(SYS_personality, PER_QUERY))
        attempt("personality no-randomize", lambda: raw_syscall(SYS_personality, ADDR_NO_RANDOMIZE))
        attempt("unix socket", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())
        attempt("vsock socket", lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close())
        attempt("clone3", lambda: raw_syscall(SYS_clone3, 0, 0))
        attempt("unshare", lambda: libc.unshare(libc.CLONE_NEWUTS))

        def fork_and_reap() -> None:
            pid = os.fork()  # plain clone(SIGCHLD): allowed by the MASKED_EQ rule
            if pid == 0:
                os._exit(7)
            _, status = os.waitpid(pid, 0)
            assert os.WEXITSTATUS(status) == 7

        attempt("fork", fork_and_reap)
        return seen

    outcome = run_filtered(docker_like_profile(), probe)
    assert outcome.error is None, outcome.error
    assert outcome.value == {
        "mkdir": "ok",
        "personality query": "ok",
        "personality no-randomize": errno.EPERM,
        "unix socket": "ok",
        "vsock socket": errno.EPERM,
        "clone3": errno.ENOSYS,
        "unshare": errno.EPERM,
        "fork": "ok",
    }


SYS_syslog = 103  # older than the profile's last call and not in it: the default action
SYS_fchmodat2 = 452  # newer than every call the profile names (futex_waitv, 449)
SYS_mseal = 462
SYSLOG_ACTION_SIZE_BUFFER = 10


def probe_new_and_old_calls(tmp_path: Path) -> dict[str, int | str]:
    seen: dict[str, int | str] = {}
    for label, number, args in (
        ("syslog", SYS_syslog, (SYSLOG_ACTION_SIZE_BUFFER, 0, 0)),
        ("fchmodat2", SYS_fchmodat2, (-100, 0, 0o755, 0)),  # AT_FDCWD, NULL path
        ("mseal", SYS_mseal, (0, 0, 0)),
        ("no such call", 1000, ()),
    ):
        try:
            raw_syscall(number, *args)
            seen[label] = "ok"
        except OSError as exc:
            seen[label] = exc.errno or 0
    return seen


def test_calls_newer_than_the_profile_get_enosys_as_under_runc(tmp_path: Path) -> None:
    """runc puts an ENOSYS prologue in front of a refusing filter: a call past the largest one
    the profile names is answered "not implemented", so C libraries fall back to older calls
    (glibc's fchmodat uses fchmodat2 and retries only on ENOSYS)."""
    outcome = run_filtered(docker_like_profile(), lambda: probe_new_and_old_calls(tmp_path))
    assert outcome.value == {
        "syslog": errno.EPERM,
        "fchmodat2": errno.ENOSYS,
        "mseal": errno.ENOSYS,
        "no such call": errno.ENOSYS,
    }


def test_no_enosys_prologue_for_a_permissive_default_or_when_the_default_is_enosys(tmp_path: Path) -> None:
    allowing = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["syslog"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}],
    }
    with sc.build_filter(allowing) as filt:
        assert filt.program == filt.export_bpf()
    outcome = run_filtered(allowing, lambda: probe_new_and_old_calls(tmp_path))
    assert outcome.value is not None
    assert outcome.value["syslog"] == errno.EACCES
    assert outcome.value["fchmodat2"] == errno.EFAULT  # reached the kernel (NULL path)

    enosys_default = docker_like_profile()
    enosys_default["defaultErrnoRet"] = errno.ENOSYS
    with sc.build_filter(enosys_default) as filt:
        assert filt.program == filt.export_bpf()
    outcome = run_filtered(enosys_default, lambda: probe_new_and_old_calls(tmp_path))
    assert outcome.value == {
        "syslog": errno.ENOSYS,
        "fchmodat2": errno.ENOSYS,
        "mseal": errno.ENOSYS,
        "no such call": errno.ENOSYS,
    }


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_FOO"}, 'seccomp: unknown action "SCMP_ACT_FOO" in defaultAction'),
        ({}, "seccomp: defaultAction must be a string, got null"),
        ({"defaultAction": 3}, "seccomp: defaultAction must be a string, got int"),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]},
            'seccomp: unknown action "SCMP_ACT_NOPE" in syscalls[0].action',
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]},
            'seccomp: unknown architecture "SCMP_ARCH_Z80" in architectures[0]',
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86"},
            "seccomp: architectures must be an array, got str",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_BOGUS"]},
            'seccomp: unknown flag "SECCOMP_FILTER_FLAG_BOGUS" in flags[0]',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}],
                    }
                ],
            },
            'seccomp: unknown operator "SCMP_CMP_ABOUT" in syscalls[0].args[0].op',
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "seccomp: syscalls[0].args[0].index must be between 0 and 5, got 6",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            "seccomp: syscalls[0].args[0].value must be an integer, got str",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read", "action": "SCMP_ACT_ERRNO"}]},
            "seccomp: syscalls[0].names must be an array, got str",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
            "seccomp: syscalls[0].names must not be empty",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": True}],
            },
            "seccomp: syscalls[0].errnoRet must be an integer, got bool",
        ),
        (
            {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
            "seccomp: defaultErrnoRet is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW",
        ),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
            "seccomp: defaultErrnoRet must be between 0 and 65535, got -1",
        ),
        (["SCMP_ACT_ALLOW"], "seccomp: linux.seccomp must be an object, got list"),
    ],
)
def test_bad_profiles_are_rejected_with_a_clear_message(profile: Any, message: str) -> None:
    with pytest.raises(sc.SeccompError) as info:
        sc.validate(profile)
    assert str(info.value) == message
    with pytest.raises(sc.SeccompError):
        sc.build_filter(profile)


def test_notify_is_reported_as_unsupported() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/listener.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}],
    }
    with pytest.raises(sc.SeccompError, match="SCMP_ACT_NOTIFY.*not supported"):
        sc.validate(profile)


def test_valid_profile_passes_validation() -> None:
    sc.validate(docker_like_profile())
    sc.validate({"defaultAction": "SCMP_ACT_KILL"})


# --- features -------------------------------------------------------------------------------


def test_features_and_version() -> None:
    assert sc.libseccomp_version().count(".") == 2
    feats = sc.features()
    assert feats["enabled"] is True
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_LOG"} <= set(
        feats["actions"]
    )
    assert "SCMP_ACT_NOTIFY" not in feats["actions"]
    assert len(feats["operators"]) == 7
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"} <= set(feats["archs"])
    assert feats["knownFlags"] == [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_LOG",
    ]
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    # Every advertised value is accepted by validate and compiles.
    for action in feats["actions"]:
        rule_action = "SCMP_ACT_ALLOW" if action != "SCMP_ACT_ALLOW" else "SCMP_ACT_ERRNO"
        profile = {"defaultAction": action, "syscalls": [{"names": ["mkdir"], "action": rule_action}]}
        sc.build_filter(profile).release()
    # libseccomp puts only architectures of the native byte order into one filter.
    little_endian = [
        arch
        for arch in feats["archs"]
        if not arch.startswith(("SCMP_ARCH_MIPS", "SCMP_ARCH_PPC", "SCMP_ARCH_S390", "SCMP_ARCH_PARISC"))
    ]
    little_endian += ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC64LE"]
    sc.build_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": little_endian}).release()
    with pytest.raises(sc.SeccompError, match="SCMP_ARCH_S390X cannot share a filter with the native one"):
        sc.build_filter({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_S390X"]})
