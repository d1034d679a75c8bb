"""The last step into the container's process: through a tiny static program in a sealed memfd.

pyrunc's init and exec processes run the host's Python until their final execve. Exec'ing the
user's program straight from there lets a container whose program is a script starting with
"#!/proc/self/exe" (CVE-2019-5736) have the kernel load the interpreter through
/proc/self/exe, which is then the host's Python binary: it runs inside the container, where
any process can open /proc/PID/exe and hold the host's binary open until it can be written.
So the last execve is made by a copy of a 300-byte program in a sealed memfd instead: at that
moment /proc/self/exe is the copy, and nothing of the host. (runc exec's a memfd clone of
itself, later a small runc-dmz, for the same reason.)

The program (x86-64, assembled by hand below, no libc) refuses to run unless argv[0] is ""
(which only we pass: as a script's interpreter it gets a path there), marks the status fd
close-on-exec, and calls execve(argv[1], &argv[2], envp). If that fails it writes the record
b"\\0" + errno (4 bytes, little endian) to the status fd and exits 127; on success the status
fd closes at the exec, as with a plain execve from Python.

The memfd is made before any seccomp filter is loaded; a filter that refuses execveat makes
the exec fall back to a plain execve from Python. Measured cost: one more execve, about 1 ms
of CPU on the test machine.
"""

from __future__ import annotations

import fcntl
import os
import struct

from common import libc

_BASE = 0x400000  # where the single PT_LOAD segment is mapped
_HEADERS = 64 + 56  # ELF header + one program header
_MFD_EXEC = 0x0010  # executable memfd, said explicitly (Linux >= 6.3 warns otherwise)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_MESSAGE = b"pyrunc exec stub: not an interpreter\n"


def _code(status_fd: int) -> bytes:
    fd = struct.pack("<i", status_fd)
    return b"".join(
        [
            b"\x48\x8b\x04\x24",  # 00 mov rax, [rsp]          argc
            b"\x48\x83\xf8\x03",  # 04 cmp rax, 3
            b"\x72\x57",  # 08 jb refuse (61)
            b"\x48\x8b\x74\x24\x08",  # 0a mov rsi, [rsp+8]    argv[0]
            b"\x80\x3e\x00",  # 0f cmp byte [rsi], 0           must be ""
            b"\x75\x4d",  # 12 jne refuse (61)
            b"\xbf" + fd,  # 14 mov edi, STATUS_FD
            b"\xbe\x02\x00\x00\x00",  # 19 mov esi, F_SETFD
            b"\xba\x01\x00\x00\x00",  # 1e mov edx, FD_CLOEXEC
            b"\xb8\x48\x00\x00\x00",  # 23 mov eax, SYS_fcntl
            b"\x0f\x05",  # 28 syscall
            b"\x48\x8b\x04\x24",  # 2a mov rax, [rsp]          argc
            b"\x48\x8b\x7c\x24\x10",  # 2e mov rdi, [rsp+16]   argv[1]: the path
            b"\x48\x8d\x74\x24\x18",  # 33 lea rsi, [rsp+24]   &argv[2]: the user's argv
            b"\x48\x8d\x54\xc4\x10",  # 38 lea rdx, [rsp+rax*8+16]  envp
            b"\xb8\x3b\x00\x00\x00",  # 3d mov eax, SYS_execve
            b"\x0f\x05",  # 42 syscall                     returns only on failure
            b"\xf7\xd8",  # 44 neg eax                     errno
            b"\x48\xc1\xe0\x08",  # 46 shl rax, 8          record: 0x00, errno (LE)
            b"\x50",  # 4a push rax
            b"\xbf" + fd,  # 4b mov edi, STATUS_FD
            b"\x48\x89\xe6",  # 50 mov rsi, rsp
            b"\xba\x05\x00\x00\x00",  # 53 mov edx, 5
            b"\xb8\x01\x00\x00\x00",  # 58 mov eax, SYS_write
            b"\x0f\x05",  # 5d syscall
            b"\xeb\x18",  # 5f jmp out (79)
            b"\xbf\x02\x00\x00\x00",  # 61 refuse: mov edi, 2 (stderr)
            b"\x48\x8d\x35\x18\x00\x00\x00",  # 66 lea rsi, [rip+0x18]  the message (85)
            b"\xba" + struct.pack("<i", len(_MESSAGE)),  # 6d mov edx, len
            b"\xb8\x01\x00\x00\x00",  # 72 mov eax, SYS_write
            b"\x0f\x05",  # 77 syscall
            b"\xbf\x7f\x00\x00\x00",  # 79 out: mov edi, 127
            b"\xb8\xe7\x00\x00\x00",  # 7e mov eax, SYS_exit_group
            b"\x0f\x05",  # 83 syscall
            _MESSAGE,  # 85
        ]
    )


def image(status_fd: int) -> bytes:
    """The whole static ELF executable for STATUS_FD."""
    code = _code(status_fd)
    size = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little endian, version 1, System V
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH",
        2,  # ET_EXEC
        62,  # EM_X86_64
        1,  # EV_CURRENT
        _BASE + _HEADERS,  # entry: the code right after the headers
        64,  # program headers' offset
        0,  # no section headers
        0,  # flags
        64,  # ELF header size
        56,  # program header size
        1,  # one program header
        0,
        0,
        0,
    )
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)  # PT_LOAD, R+X, whole file
    return header + segment + code


def prepare(status_fd: int) -> int:
    """A sealed, close-on-exec memfd holding the program, or -1 where it cannot be had (another
    architecture, memfds refused), in which case the caller execs the plain way."""
    if os.uname().machine != "x86_64":
        return -1
    try:
        try:
            fd = os.memfd_create("pyrunc-exec-stub", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING | _MFD_EXEC)
        except OSError:  # before Linux 6.3, MFD_EXEC is unknown
            fd = os.memfd_create("pyrunc-exec-stub", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError:
        return -1
    try:
        os.write(fd, image(status_fd))
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        os.fchmod(fd, 0o555)
    except OSError:
        os.close(fd)
        return -1
    return fd


def exec_through(stub: int, exe: str, args: list[str], env: list[str], status_fd: int) -> None:
    """execve EXE with ARGS and ENV by way of the stub; returns only if the stub could not be exec'd
    (a seccomp profile refusing execveat, say), with STATUS_FD close-on-exec again."""
    os.set_inheritable(status_fd, True)  # the stub makes it close-on-exec again before its execve
    try:
        libc.execveat(stub, "", ["", exe, *args], env, libc.AT_EMPTY_PATH)
    except OSError:
        os.set_inheritable(status_fd, False)
