"""Every raw system call the project makes through ctypes goes through this module.

pyrunc uses most of it; the shim's mount helper, pycontainerd's snapshots and pydockerd's
filesystem and volume code use mount/umount. Keeping the calls in one place means the rest
is plain Python logic over a small, typed surface, and the ctypes details (argument types,
errno handling) are written once. It is on pyrunc's start path: it imports only ctypes and
C-backed standard modules (and ctypes.util never: that spawns ldconfig).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct

# By soname: ctypes.util.find_library would spawn ldconfig, costing more than a container start.
_libc = ctypes.CDLL("libc.so.6", use_errno=True)

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
        err = ctypes.get_errno()
        raise SyscallError(err, f"{what}: {os.strerror(err)}")
    return result


def _b(path: str | bytes | None) -> bytes | None:
    if path is None:
        return None
    return path if isinstance(path, bytes) else os.fsencode(path)


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(
        _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
        f"mount {source or fstype} on {target}",
    )


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): PATH looked up from DIRFD under the RESOLVE rules, all in one system call (so
    RESOLVE_IN_ROOT keeps every symlink and '..' inside DIRFD whatever changes meanwhile)."""
    how = _OpenHow(flags, mode, resolve)
    raw = _b(path)
    for _ in range(64):
        fd = _libc.syscall(
            SYS_openat2, ctypes.c_int(dirfd), raw, ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))
        )
        # EAGAIN: a rename raced with a '..' lookup; the kernel asks us to try again.
        if fd >= 0 or ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(fd, f"open {path}")


def execveat(dirfd: int, path: str, argv: list[str], envp: list[str], flags: int) -> None:
    """execveat(2); returns only on failure (raises)."""
    args = (ctypes.c_char_p * (len(argv) + 1))(*[os.fsencode(a) for a in argv], None)
    env = (ctypes.c_char_p * (len(envp) + 1))(*[os.fsencode(e) for e in envp], None)
    _check(
        _libc.syscall(SYS_execveat, ctypes.c_int(dirfd), _b(path), args, env, ctypes.c_int(flags)), "execveat"
    )


def set_dumpable(on: bool) -> None:
    """Non-dumpable: /proc/PID/{exe,fd,mem,...} of this process are closed to anyone without
    CAP_SYS_PTRACE over it, whatever their uid (execve of a normal binary sets it back)."""
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.syscall(SYS_setns, fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_pivot_root, _b(new_root), _b(put_old)), f"pivot_root {new_root}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_keepcaps(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def capbset_read(cap: int) -> bool:
    res: int = _libc.prctl(PR_CAPBSET_READ, cap, 0, 0, 0)
    return res == 1


def capbset_drop(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def cap_ambient_clear() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def cap_ambient_raise(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.syscall(SYS_capset, ctypes.byref(header), data), "capset")


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) sets."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.syscall(SYS_capget, ctypes.byref(header), data), "capget")
    return (
        data[0].effective | data[1].effective << 32,
        data[0].permitted | data[1].permitted << 32,
        data[0].inheritable | data[1].inheritable << 32,
    )


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def join_session_keyring(name: str) -> None:
    """A fresh session keyring, so the container cannot read the keys of the runtime's session."""
    _check(_libc.syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, _b(name)), "join session keyring")


CLOSE_RANGE_CLOEXEC = 4


def cloexec_from(first: int) -> None:
    """Mark every fd >= FIRST close-on-exec: nothing of the runtime leaks into the container, yet
    the sync channel stays usable to report a failed execve."""
    if _libc.syscall(SYS_close_range, first, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC) < 0:
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


class _SockFprog(ctypes.Structure):
    # struct sock_fprog
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(program: bytes, flags: int) -> None:
    """Install a classic BPF program (a struct sock_filter array) as the caller's seccomp filter.

    prctl when no SECCOMP_FILTER_FLAG_* is asked for (it cannot take flags), seccomp(2) otherwise.
    """
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    if flags:
        _check(
            _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, ctypes.c_ulong(flags), ctypes.byref(prog)),
            "seccomp",
        )
    else:
        _check(
            _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
            "prctl(PR_SET_SECCOMP)",
        )
