"""Every raw system call the project makes through ctypes goes through this module.

pyrunc uses most of it; the shim's mount helper, pycontainerd's snapshots and pydockerd's
filesystem and volume code use mount/umount. Keeping the calls in one place means the rest
is plain Python logic over a small, typed surface, and the foreign-call details (argument
types, errno handling) are written once.

It is on pyrunc's create, run and exec paths, so it is built on `_ctypes`, the C half of ctypes,
and not on the `ctypes` package: importing the package costs 12M instructions (more than half
an interpreter's start: its module body defines and checks every C type), `_ctypes` under 1M.
The few C types needed are declared here; structures are packed with `struct` into buffers the
kernel reads (or writes, through an array over a bytearray). ctypes.util is never imported: it
spawns ldconfig.
"""

from __future__ import annotations

import _ctypes
import errno
import fcntl
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # typeshed makes the C data types generic; at run time they are not subscriptable
    _IntData = _ctypes._SimpleCData[int]
    _BytesData = _ctypes._SimpleCData[bytes]
    _PointerData = _ctypes._SimpleCData[bytes | None]
else:
    _IntData = _BytesData = _PointerData = _ctypes._SimpleCData


class _Int(_IntData):
    _type_ = "i"


class _Long(_IntData):
    """Every integer argument: on x86_64 a long fills the register an int argument is read from,
    and a variadic callee (syscall) reads longs."""

    _type_ = "l"


class _CharP(_PointerData):
    _type_ = "z"


class _Char(_BytesData):
    _type_ = "c"


class _Function(_ctypes.CFuncPtr):
    """A libc function returning int, errno saved for _ctypes.get_errno (ctypes' use_errno).
    No argtypes: _call converts the arguments (bytes and None pass as pointers)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


class _Library:
    """What _ctypes needs of a library to look a function up in it: its dlopen handle."""

    def __init__(self, soname: str) -> None:
        # RTLD_NOW (2): a missing symbol fails here, not at the first call.
        self._handle = _ctypes.dlopen(soname, 2)

    def function(self, name: str, restype: type[_IntData] = _Int) -> _Function:
        fn = _Function((name, self))  # type: ignore[arg-type]  # _ctypes reads only ._handle
        fn.restype = restype
        return fn


def _call(fn: _Function, *args: object) -> int:
    """FN(ARGS...): integers as C longs, bytes and None as pointers, C arrays by address."""
    result: int = fn(*[_Long(a) if isinstance(a, int) else a for a in args])
    return result


def _buffer(data: bytearray) -> _ctypes.Array[_Char]:
    """DATA as a C array the callee may write into (bytes passed directly are read-only)."""
    return (_Char * len(data)).from_buffer(data)


# By soname: ctypes.util.find_library would spawn ldconfig, costing more than a container start.
_libc = _Library("libc.so.6")
_mount = _libc.function("mount")
_umount2 = _libc.function("umount2")
_unshare = _libc.function("unshare")
_sethostname = _libc.function("sethostname")
_setdomainname = _libc.function("setdomainname")
_prctl = _libc.function("prctl")
_syscall_fn = _libc.function("syscall", _Long)


def _syscall(number: int, *args: object) -> int:
    return _call(_syscall_fn, number, *args)


# --- constants (x86_64 / generic Linux) ---------------------------------------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

SYS_pivot_root = 155
SYS_setns = 308
SYS_capget = 125
SYS_capset = 126
SYS_close_range = 436
SYS_keyctl = 250
SYS_openat2 = 437
SYS_execveat = 322
KEYCTL_JOIN_SESSION_KEYRING = 1

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413


AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
# openat2's resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class SyscallError(OSError):
    """An OSError that also names the call, so messages read 'mount /proc: Permission denied'."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = _ctypes.get_errno()
        raise SyscallError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(path: str | bytes | None) -> bytes | None:
    if path is None:
        return None
    return path if isinstance(path, bytes) else os.fsencode(path)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _call(_mount, _b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source or fstype} on {target}",
    )


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): PATH looked up from DIRFD under the RESOLVE rules, all in one system call (so
    RESOLVE_IN_ROOT keeps every symlink and '..' inside DIRFD whatever changes meanwhile)."""
    how = struct.pack("=QQQ", flags, mode, resolve)  # struct open_how, which the kernel only reads
    raw = _b(path)
    for _ in range(64):
        fd = _syscall(SYS_openat2, dirfd, raw, how, len(how))
        # EAGAIN: a rename raced with a '..' lookup; the kernel asks us to try again.
        if fd >= 0 or _ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(fd, f"open {path}")


def _string_array(items: list[str]) -> _ctypes.Array[_CharP]:
    """A NULL-terminated char *[] (argv, envp)."""
    return (_CharP * (len(items) + 1))(*[os.fsencode(item) for item in items], None)


def execveat(dirfd: int, path: str, argv: list[str], envp: list[str], flags: int) -> None:
    """execveat(2); returns only on failure (raises)."""
    _check(
        _syscall(SYS_execveat, dirfd, _b(path), _string_array(argv), _string_array(envp), flags), "execveat"
    )


def set_dumpable(on: bool) -> None:
    """Non-dumpable: /proc/PID/{exe,fd,mem,...} of this process are closed to anyone without
    CAP_SYS_PTRACE over it, whatever their uid (execve of a normal binary sets it back)."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def umount(target: str, flags: int = 0) -> None:
    _check(_call(_umount2, _b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_call(_unshare, flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_syscall(SYS_setns, fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(SYS_pivot_root, _b(new_root), _b(put_old)), f"pivot_root {new_root}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_call(_sethostname, raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_call(_setdomainname, raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_call(_prctl, option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def capbset_read(cap: int) -> bool:
    res = _call(_prctl, PR_CAPBSET_READ, cap, 0, 0, 0)
    return res == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def cap_ambient_clear() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def cap_ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


# struct __user_cap_header_struct {u32 version; int pid} and, for version 3, two
# struct __user_cap_data_struct {u32 effective, permitted, inheritable}: the low and high 32 bits.
_CAP_HEADER = "=Ii"
_CAP_DATA = "=IIIIII"


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = bytearray(struct.pack(_CAP_HEADER, _LINUX_CAPABILITY_VERSION_3, 0))
    low, high = 0xFFFFFFFF, 32
    data = struct.pack(
        _CAP_DATA,
        effective & low, permitted & low, inheritable & low,
        (effective >> high) & low, (permitted >> high) & low, (inheritable >> high) & low,
    )  # fmt: skip
    _check(_syscall(SYS_capset, _buffer(header), data), "capset")


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) sets."""
    header = bytearray(struct.pack(_CAP_HEADER, _LINUX_CAPABILITY_VERSION_3, 0))
    data = bytearray(struct.calcsize(_CAP_DATA))
    _check(_syscall(SYS_capget, _buffer(header), _buffer(data)), "capget")
    eff0, perm0, inh0, eff1, perm1, inh1 = struct.unpack(_CAP_DATA, data)
    return eff0 | eff1 << 32, perm0 | perm1 << 32, inh0 | inh1 << 32


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def join_session_keyring(name: str) -> None:
    """A fresh session keyring, so the container cannot read the keys of the runtime's session."""
    _check(_syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, _b(name)), "join session keyring")


CLOSE_RANGE_CLOEXEC = 4


def cloexec_from(first: int) -> None:
    """Mark every fd >= FIRST close-on-exec: nothing of the runtime leaks into the container, yet
    the sync channel stays usable to report a failed execve."""
    if _syscall(SYS_close_range, first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) < 0:
        for fd in os.listdir("/proc/self/fd"):
            if int(fd) >= first:
                try:
                    os.set_inheritable(int(fd), False)
                except OSError:
                    pass


def set_controlling_tty(fd: int) -> None:
    fcntl.ioctl(fd, TIOCSCTTY, 0)


def pty_unlock_and_number(master_fd: int) -> int:
    fcntl.ioctl(master_fd, TIOCSPTLCK, struct.pack("i", 0))
    buf = fcntl.ioctl(master_fd, TIOCGPTN, struct.pack("I", 0))
    number: int = struct.unpack("I", buf)[0]
    return number


def set_winsize(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def get_winsize(fd: int) -> tuple[int, int]:
    buf = fcntl.ioctl(fd, TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
    rows, cols, _, _ = struct.unpack("HHHH", buf)
    return rows, cols


SYS_seccomp = 317
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1


def seccomp_set_filter(program: bytes, flags: int) -> None:
    """Install a classic BPF program (a struct sock_filter array) as the caller's seccomp filter.

    prctl when no SECCOMP_FILTER_FLAG_* is asked for (it cannot take flags), seccomp(2) otherwise.
    """
    code = bytearray(program)
    buf = _buffer(code)
    # struct sock_fprog {unsigned short len; struct sock_filter *filter}: 6 bytes of padding.
    prog = bytearray(struct.pack("=H6xQ", len(program) // 8, _ctypes.addressof(buf)))
    fprog = _buffer(prog)
    if flags:
        _check(_syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, fprog), "seccomp")
    else:
        _check(
            _call(_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _ctypes.addressof(fprog), 0, 0),
            "prctl(PR_SET_SECCOMP)",
        )
