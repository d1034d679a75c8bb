"""OCI `linux.seccomp` support: validate the profile, compile it with libseccomp, load it.

The work is split in three steps because they belong to different moments of a container's
life: `validate` runs in `pyrunc create` before anything is forked so a bad profile is a
clean error, `build_filter` compiles the BPF program while Python can still report errors
normally, and `SeccompFilter.load` is the last thing the init does before execve (every
syscall after it is filtered).

As runc does, a filter whose default action refuses gets a short BPF prologue that answers
ENOSYS for system calls newer than every call the profile names (per architecture): a
profile written before a call existed cannot have meant to refuse it, and C libraries
fall back to older calls only on ENOSYS (glibc's fchmodat on fchmodat2, say). libseccomp
compiles the rules, the program is exported, the prologue put in front, and the result
loaded with seccomp(2) (prctl when no flag is asked for).

libseccomp (libseccomp.so.2) is reached through ctypes; the constants below are the values
of its public header for the 2.5 series.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SeccompError(Exception):
    """A seccomp profile that cannot be used, or a libseccomp failure; the message is one line."""


# --- the OCI vocabulary and its libseccomp values -------------------------------------------

_ACT_KILL_THREAD = 0x00000000
_ACT_KILL_PROCESS = 0x80000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000
_ACT_NOTIFY = 0x7FC00000

_ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": _ACT_KILL_THREAD,  # libseccomp's historical name for KILL_THREAD
    "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": _ACT_TRAP,
    "SCMP_ACT_ERRNO": _ACT_ERRNO,
    "SCMP_ACT_TRACE": _ACT_TRACE,
    "SCMP_ACT_LOG": _ACT_LOG,
    "SCMP_ACT_ALLOW": _ACT_ALLOW,
    "SCMP_ACT_NOTIFY": _ACT_NOTIFY,
}
# Only these two actions carry a 16-bit return code (the errno, or the tracer's message).
_ACTIONS_WITH_ERRNO = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})
# Actions pyrunc knows but cannot honour: user notification needs the notify fd handed to
# the listener over a unix socket together with the container state.
_UNSUPPORTED_ACTIONS = frozenset({"SCMP_ACT_NOTIFY"})
# The libseccomp API level (seccomp_api_get) that first made each action usable.
_ACTION_API_LEVEL = {"SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3}

_OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI architecture name -> the name libseccomp's seccomp_arch_resolve_name understands.
_ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

_FLTATR_CTL_NNP = 3
_FLTATR_CTL_TSYNC = 4
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7
_FLTATR_API_SYSRAWRC = 9


class _FlagSpec:
    __slots__ = ("attribute", "api_level")

    def __init__(self, attribute: int, api_level: int) -> None:
        # The libseccomp filter attribute that turns the kernel flag on, and the seccomp_api_get()
        # level at which libseccomp and the kernel support it.
        self.attribute = attribute
        self.api_level = api_level


# Order as `runc features` lists them.
_FLAGS: dict[str, _FlagSpec] = {
    "SECCOMP_FILTER_FLAG_TSYNC": _FlagSpec(_FLTATR_CTL_TSYNC, 2),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _FlagSpec(_FLTATR_CTL_SSB, 4),
    "SECCOMP_FILTER_FLAG_LOG": _FlagSpec(_FLTATR_CTL_LOG, 3),
}

_FILTER_FLAG_BITS = {  # the kernel's SECCOMP_FILTER_FLAG_* values
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
}
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_SET_MODE_FILTER = 1
# Default actions that let unknown calls through anyway: no ENOSYS prologue for them (runc
# counts TRACE among them: a tracer handles new calls itself).
_PERMISSIVE_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"})
_X32_SYSCALL_BIT = 0x40000000
_MAX_ARGS = 6  # a syscall has at most six arguments
_MAX_ERRNO_RET = 0xFFFF  # the data field of a seccomp return value is 16 bits
_MAX_U64 = (1 << 64) - 1
_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name's "no such syscall"


# --- the validated profile ------------------------------------------------------------------
# Plain classes, not dataclasses: this module is imported on every container start, and the
# dataclasses module (with the inspect/typing machinery it loads) would cost more than the filter.


class ArgCondition:
    __slots__ = ("index", "op", "value", "value_two")

    def __init__(self, index: int, op: str, value: int, value_two: int) -> None:
        self.index = index
        self.op = op
        self.value = value
        self.value_two = value_two

    def __repr__(self) -> str:
        return f"ArgCondition(index={self.index}, op={self.op!r}, value={self.value}, value_two={self.value_two})"


class SyscallRule:
    __slots__ = ("names", "action", "errno_ret", "args")

    def __init__(
        self, names: tuple[str, ...], action: str, errno_ret: int | None, args: tuple[ArgCondition, ...]
    ) -> None:
        self.names = names
        self.action = action
        self.errno_ret = errno_ret
        self.args = args


class Profile:
    __slots__ = ("default_action", "default_errno_ret", "architectures", "flags", "syscalls")

    def __init__(
        self,
        default_action: str,
        default_errno_ret: int | None,
        architectures: tuple[str, ...],
        flags: tuple[str, ...],
        syscalls: tuple[SyscallRule, ...],
    ) -> None:
        self.default_action = default_action
        self.default_errno_ret = default_errno_ret
        self.architectures = architectures
        self.flags = flags
        self.syscalls = syscalls


def _type_name(value: object) -> str:
    return type(value).__name__ if value is not None else "null"


def _want_str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SeccompError(f"seccomp: {where} must be a string, got {_type_name(value)}")
    return value


def _want_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SeccompError(f"seccomp: {where} must be an array, got {_type_name(value)}")
    return value


def _want_uint(value: object, where: str, maximum: int) -> int:
    # bool is an int in Python but `true` is never a number in JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        raise SeccompError(f"seccomp: {where} must be an integer, got {_type_name(value)}")
    if not 0 <= value <= maximum:
        raise SeccompError(f"seccomp: {where} must be between 0 and {maximum}, got {value}")
    return value


def _parse_action(value: object, where: str) -> str:
    name = _want_str(value, where)
    if name not in _ACTIONS:
        raise SeccompError(f'seccomp: unknown action "{name}" in {where}')
    if name in _UNSUPPORTED_ACTIONS:
        raise SeccompError(
            f'seccomp: action "{name}" in {where} (user notification via listenerPath) is not supported by pyrunc'
        )
    return name


def _parse_errno_ret(value: object, action: str, where: str) -> int | None:
    if value is None:
        return None
    ret = _want_uint(value, where, _MAX_ERRNO_RET)
    if action not in _ACTIONS_WITH_ERRNO:
        raise SeccompError(
            f"seccomp: {where} is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}"
        )
    return ret


def _parse_arg(raw: object, where: str) -> ArgCondition:
    if not isinstance(raw, dict):
        raise SeccompError(f"seccomp: {where} must be an object, got {_type_name(raw)}")
    index = _want_uint(raw.get("index"), f"{where}.index", _MAX_ARGS - 1)
    op = _want_str(raw.get("op"), f"{where}.op")
    if op not in _OPERATORS:
        raise SeccompError(f'seccomp: unknown operator "{op}" in {where}.op')
    value = _want_uint(raw.get("value"), f"{where}.value", _MAX_U64)
    raw_two = raw.get("valueTwo")
    value_two = 0 if raw_two is None else _want_uint(raw_two, f"{where}.valueTwo", _MAX_U64)
    return ArgCondition(index=index, op=op, value=value, value_two=value_two)


def _parse_syscall(raw: object, where: str) -> SyscallRule:
    if not isinstance(raw, dict):
        raise SeccompError(f"seccomp: {where} must be an object, got {_type_name(raw)}")
    names = _want_list(raw.get("names"), f"{where}.names")
    if not names:
        raise SeccompError(f"seccomp: {where}.names must not be empty")
    for i, name in enumerate(names):
        if not _want_str(name, f"{where}.names[{i}]"):
            raise SeccompError(f"seccomp: {where}.names[{i}] must not be empty")
    action = _parse_action(raw.get("action"), f"{where}.action")
    errno_ret = _parse_errno_ret(raw.get("errnoRet"), action, f"{where}.errnoRet")
    raw_args = raw.get("args")
    args = [] if raw_args is None else _want_list(raw_args, f"{where}.args")
    conditions = tuple(_parse_arg(arg, f"{where}.args[{i}]") for i, arg in enumerate(args))
    return SyscallRule(names=tuple(names), action=action, errno_ret=errno_ret, args=conditions)


def parse(seccomp: object) -> Profile:
    """Check an OCI linux.seccomp object and return it typed; raises SeccompError."""
    if not isinstance(seccomp, dict):
        raise SeccompError(f"seccomp: linux.seccomp must be an object, got {_type_name(seccomp)}")
    default_action = _parse_action(seccomp.get("defaultAction"), "defaultAction")
    default_errno_ret = _parse_errno_ret(seccomp.get("defaultErrnoRet"), default_action, "defaultErrnoRet")

    raw_arches = seccomp.get("architectures")
    arches = [] if raw_arches is None else _want_list(raw_arches, "architectures")
    for i, arch in enumerate(arches):
        if _want_str(arch, f"architectures[{i}]") not in _ARCHES:
            raise SeccompError(f'seccomp: unknown architecture "{arch}" in architectures[{i}]')

    raw_flags = seccomp.get("flags")
    flags = [] if raw_flags is None else _want_list(raw_flags, "flags")
    for i, flag in enumerate(flags):
        if _want_str(flag, f"flags[{i}]") not in _FLAGS:
            raise SeccompError(f'seccomp: unknown flag "{flag}" in flags[{i}]')

    for key in ("listenerPath", "listenerMetadata"):
        if seccomp.get(key) is not None:
            _want_str(seccomp[key], key)

    raw_syscalls = seccomp.get("syscalls")
    syscalls = [] if raw_syscalls is None else _want_list(raw_syscalls, "syscalls")
    rules = tuple(_parse_syscall(rule, f"syscalls[{i}]") for i, rule in enumerate(syscalls))
    return Profile(
        default_action=default_action,
        default_errno_ret=default_errno_ret,
        architectures=tuple(arches),
        flags=tuple(flags),
        syscalls=rules,
    )


def validate(seccomp: dict[str, Any]) -> None:
    """Raise SeccompError if `seccomp` is not a usable OCI linux.seccomp object."""
    parse(seccomp)


def _action_value(action: str, errno_ret: int | None) -> int:
    value = _ACTIONS[action]
    if action in _ACTIONS_WITH_ERRNO:
        # The OCI spec's default return code for ERRNO and TRACE is EPERM.
        value |= (errno.EPERM if errno_ret is None else errno_ret) & _MAX_ERRNO_RET
    return value


# --- libseccomp through ctypes --------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    # struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


# libseccomp, once _lib() has loaded it: one handle per process (a cache, like functools.cache but
# without importing functools on every container start).
_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    """libseccomp with its prototypes declared; loaded once per process and never changed."""
    global _LIB
    if _LIB is not None:
        return _LIB
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as exc:
        raise SeccompError(f"seccomp: cannot load libseccomp.so.2: {exc}") from None
    ctx = ctypes.c_void_p
    prototypes: dict[str, tuple[Any, list[Any]]] = {
        "seccomp_version": (ctypes.POINTER(_Version), []),
        "seccomp_api_get": (ctypes.c_uint, []),
        "seccomp_init": (ctx, [ctypes.c_uint32]),
        "seccomp_release": (None, [ctx]),
        "seccomp_arch_resolve_name": (ctypes.c_uint32, [ctypes.c_char_p]),
        "seccomp_arch_native": (ctypes.c_uint32, []),
        "seccomp_arch_add": (ctypes.c_int, [ctx, ctypes.c_uint32]),
        "seccomp_attr_set": (ctypes.c_int, [ctx, ctypes.c_int, ctypes.c_uint32]),
        "seccomp_syscall_resolve_name": (ctypes.c_int, [ctypes.c_char_p]),
        "seccomp_syscall_resolve_name_arch": (ctypes.c_int, [ctypes.c_uint32, ctypes.c_char_p]),
        "seccomp_export_bpf": (ctypes.c_int, [ctx, ctypes.c_int]),
        "seccomp_rule_add_array": (
            ctypes.c_int,
            [ctx, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)],
        ),
        "seccomp_load": (ctypes.c_int, [ctx]),
        "seccomp_export_pfc": (ctypes.c_int, [ctx, ctypes.c_int]),
    }
    for name, (restype, argtypes) in prototypes.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    _LIB = lib
    return lib


def _fail(rc: int, what: str) -> SeccompError:
    # libseccomp returns -errno rather than setting errno.
    return SeccompError(f"seccomp: {what}: {os.strerror(-rc)}")


def libseccomp_version() -> str:
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _api_level() -> int:
    level: int = _lib().seccomp_api_get()
    return level


def _arch_token(arch: str) -> int:
    token: int = _lib().seccomp_arch_resolve_name(_ARCHES[arch].encode())
    return token


class SeccompFilter:
    """A compiled filter: libseccomp's context (kept for `export_pfc`) and the BPF program to
    load, with the ENOSYS prologue in front when the profile gets one."""

    def __init__(self, ctx: int, program: bytes = b"", flags: int = 0) -> None:
        self._ctx: int | None = ctx
        self.program = program
        self.flags = flags  # SECCOMP_FILTER_FLAG_* bits for seccomp(2)

    @classmethod
    def compiled(cls, program: bytes, flags: int) -> SeccompFilter:
        """A filter compiled before (`program`, `flags` as `build_filter` made them), to load."""
        filt = cls(0, program, flags)
        filt._ctx = None  # no libseccomp context behind it: nothing to export or release
        return filt

    def _handle(self) -> int:
        if self._ctx is None:
            raise SeccompError("seccomp: filter was already released")
        return self._ctx

    def load(self) -> None:
        """Install the filter on the calling thread (every thread with TSYNC)."""
        from common import libc

        try:
            libc.seccomp_set_filter(self.program, self.flags)
        except OSError as exc:
            hint = ""
            if exc.errno in (errno.EACCES, errno.EPERM):
                hint = " (a filter needs no_new_privs set or CAP_SYS_ADMIN)"
            raise SeccompError(f"seccomp: loading the filter: {os.strerror(exc.errno or 0)}{hint}") from None

    def _export(self, export: Any, name: str) -> bytes:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            rc = export(self._handle(), fd)
            if rc < 0:
                raise _fail(rc, "exporting the filter")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def export_bpf(self) -> bytes:
        """libseccomp's program as it compiled it (struct sock_filter array, host byte order)."""
        return self._export(_lib().seccomp_export_bpf, "seccomp-bpf")

    def export_pfc(self) -> str:
        """The filter as libseccomp's human-readable pseudo filter code, for debugging."""
        return self._export(_lib().seccomp_export_pfc, "seccomp-pfc").decode()

    def release(self) -> None:
        if self._ctx is not None:
            _lib().seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> SeccompFilter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- the ENOSYS prologue (classic BPF) ----------------------------------------------------------

_BPF_LD_W_ABS = 0x20
_BPF_JA = 0x05
_BPF_JEQ_K = 0x15
_BPF_JGT_K = 0x25
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_DATA_NR = 0  # offsetof(struct seccomp_data, nr)
_DATA_ARCH = 4  # offsetof(struct seccomp_data, arch)


class _Insn:
    """One instruction; jump targets are label names until `_assemble` resolves them."""

    __slots__ = ("code", "k", "jt", "jf")

    def __init__(self, code: int, k: int = 0, jt: str | None = None, jf: str | None = None) -> None:
        self.code = code
        self.k = k
        self.jt = jt
        self.jf = jf


def _assemble(items: list[_Insn | str]) -> bytes:
    """Instructions and labels (strings) into a sock_filter array; "filter" labels the end,
    where libseccomp's program will follow. Every jump goes forward, as BPF requires."""
    where: dict[str, int] = {}
    count = 0
    for item in items:
        if isinstance(item, str):
            where[item] = count
        else:
            count += 1
    where["filter"] = count
    out: list[bytes] = []
    for item in items:
        if isinstance(item, str):
            continue
        index = len(out)
        code, k = item.code, item.k
        if code == _BPF_JA:
            k = _skip(where, item.jt, index, 0xFFFFFFFF)
            jt = jf = 0
        else:
            jt, jf = _skip(where, item.jt, index, 255), _skip(where, item.jf, index, 255)
        out.append(struct.pack("=HBBI", code, jt, jf, k))
    return b"".join(out)


def _skip(where: dict[str, int], label: str | None, index: int, limit: int) -> int:
    """How many instructions a jump at `index` skips to reach `label` (none: the next one)."""
    if label is None:
        return 0
    skip = where[label] - index - 1
    if not 0 <= skip <= limit:
        raise SeccompError("seccomp: the ENOSYS prologue is too long for a BPF jump")
    return skip


def _last_syscalls(profile: Profile) -> dict[int, dict[str, int]]:
    """For each kernel architecture (AUDIT_ARCH_*) of the filter, the largest system call number
    the profile names, per mode ("x32" for x86_64's x32 ABI, else "native")."""
    lib = _lib()
    arches = profile.architectures or ()
    found: dict[int, dict[str, int]] = {}
    for arch in arches:
        token = _arch_token(arch)
        if token == 0:
            continue
        # libseccomp's arch tokens are the kernel's AUDIT_ARCH_* values, except x32's, whose
        # calls arrive as x86_64 with bit 30 set in the number.
        mode = "x32" if arch == "SCMP_ARCH_X32" else "native"
        audit = _arch_token("SCMP_ARCH_X86_64") if mode == "x32" else token
        largest = 0
        for rule in profile.syscalls:
            for name in rule.names:
                number = lib.seccomp_syscall_resolve_name_arch(token, name.encode())
                largest = max(largest, number)  # negative: not a call of this arch
        if largest > 0:
            found.setdefault(audit, {})[mode] = largest
    return found


def _enosys_prologue(profile: Profile) -> bytes:
    """Instructions that answer ENOSYS for calls past the profile's last one, then fall into
    libseccomp's filter; b"" when the default action already lets such calls through."""
    if profile.default_action in _PERMISSIVE_ACTIONS:
        return b""
    if profile.default_action in _ACTIONS_WITH_ERRNO and profile.default_errno_ret == errno.ENOSYS:
        return b""
    last = _last_syscalls(profile)
    if not last:
        return b""
    items: list[_Insn | str] = [_Insn(_BPF_LD_W_ABS, _DATA_ARCH)]
    for n, audit in enumerate(last):
        items.append(_Insn(_BPF_JEQ_K, audit, jt=f"arch{n}"))
    items.append(_Insn(_BPF_JA, jt="filter"))  # an architecture the prologue does not know
    x86_64 = _arch_token("SCMP_ARCH_X86_64")
    for n, (audit, modes) in enumerate(last.items()):
        items += [f"arch{n}", _Insn(_BPF_LD_W_ABS, _DATA_NR)]
        native, x32 = modes.get("native"), modes.get("x32")
        if native is not None and x32 is not None:
            items.append(_Insn(_BPF_JSET_K, _X32_SYSCALL_BIT, jt=f"x32_{n}"))
            items.append(_Insn(_BPF_JGT_K, native, jt="enosys", jf="filter"))
            items += [f"x32_{n}", _Insn(_BPF_JGT_K, x32, jt="enosys", jf="filter")]
        elif x32 is not None:
            items.append(_Insn(_BPF_JSET_K, _X32_SYSCALL_BIT, jf="filter"))  # x86_64 calls: not ours
            items.append(_Insn(_BPF_JGT_K, x32, jt="enosys", jf="filter"))
        elif native is not None:
            if audit == x86_64:
                items.append(_Insn(_BPF_JSET_K, _X32_SYSCALL_BIT, jt="filter"))  # x32 calls: not ours
            items.append(_Insn(_BPF_JGT_K, native, jt="enosys", jf="filter"))
    items += ["enosys", _Insn(_BPF_RET_K, _ACT_ERRNO | errno.ENOSYS)]
    return _assemble(items)


def _rule_condition_sets(args: tuple[ArgCondition, ...]) -> list[tuple[ArgCondition, ...]]:
    """One libseccomp rule per returned tuple.

    libseccomp refuses two comparisons on the same argument in one rule, so when a profile
    has them each condition becomes a rule of its own (runc does the same).
    """
    indexes = [arg.index for arg in args]
    if len(set(indexes)) == len(indexes):
        return [args]
    return [(arg,) for arg in args]


def _cmp_array(conditions: tuple[ArgCondition, ...]) -> ctypes.Array[_ArgCmp] | None:
    """The struct scmp_arg_cmp array for one rule; None (NULL) for a rule without conditions."""
    if not conditions:
        return None
    array = (_ArgCmp * len(conditions))()
    for slot, cond in zip(array, conditions, strict=True):
        slot.arg = cond.index
        slot.op = _OPERATORS[cond.op]
        slot.datum_a = cond.value
        slot.datum_b = cond.value_two
    return array


def _configure(ctx: int, profile: Profile, default_value: int) -> None:
    lib = _lib()
    # The runtime sets no_new_privs itself only when process.noNewPrivileges asks for it;
    # libseccomp would otherwise turn it on for every container at load time.
    rc = lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)
    if rc < 0:
        raise _fail(rc, "clearing the no_new_privs attribute")
    # Without it libseccomp folds every kernel error of seccomp_load into ECANCELED; the real
    # errno (EACCES: no no_new_privs and no CAP_SYS_ADMIN) is what tells the user the cause.
    # libseccomp older than 2.5 lacks the attribute, which only costs that detail.
    lib.seccomp_attr_set(ctx, _FLTATR_API_SYSRAWRC, 1)

    for arch in profile.architectures:
        token = _arch_token(arch)
        if token == 0:
            raise SeccompError(f'seccomp: architecture "{arch}" is not supported by libseccomp')
        rc = lib.seccomp_arch_add(ctx, token)
        if -rc == errno.EDOM:
            raise SeccompError(
                f"seccomp: architecture {arch} cannot share a filter with the native one (different byte order)"
            )
        if rc < 0 and -rc != errno.EEXIST:  # the native arch is always already there
            raise _fail(rc, f"adding architecture {arch}")

    level = _api_level()
    for flag in profile.flags:
        spec = _FLAGS[flag]
        if level < spec.api_level:
            raise SeccompError(f"seccomp: flag {flag} is not supported by this kernel and libseccomp")
        rc = lib.seccomp_attr_set(ctx, spec.attribute, 1)
        if rc < 0:
            raise _fail(rc, f"setting flag {flag}")

    # Hundreds of names per profile: look the two hot functions up once, build each rule's
    # condition arrays once rather than once per name.
    resolve = lib.seccomp_syscall_resolve_name
    add_rule = lib.seccomp_rule_add_array
    for rule in profile.syscalls:
        action = _action_value(rule.action, rule.errno_ret)
        # libseccomp rejects a rule that repeats the default action, and it would be a no-op.
        if action == default_value:
            continue
        arrays = [(len(c), _cmp_array(c)) for c in _rule_condition_sets(rule.args)]
        for name in rule.names:
            number = resolve(name.encode())
            # Profiles name syscalls that this kernel, arch or libseccomp may not know.
            if number == _NR_SCMP_ERROR:
                continue
            for count, array in arrays:
                rc = add_rule(ctx, action, number, count, array)
                if rc < 0:
                    raise _fail(rc, f'adding a rule for syscall "{name}"')


def build_filter(seccomp: dict[str, Any]) -> SeccompFilter:
    """Compile an OCI linux.seccomp object into a filter that is ready to load."""
    profile = parse(seccomp)
    lib = _lib()
    level = _api_level()
    for action in {profile.default_action, *(rule.action for rule in profile.syscalls)}:
        if level < _ACTION_API_LEVEL.get(action, 0):
            raise SeccompError(f"seccomp: action {action} is not supported by this kernel and libseccomp")

    default_value = _action_value(profile.default_action, profile.default_errno_ret)
    ctx = lib.seccomp_init(default_value)
    if not ctx:
        raise SeccompError(f"seccomp: libseccomp refused default action {profile.default_action}")
    filt = SeccompFilter(ctx)
    try:
        _configure(ctx, profile, default_value)
        filt.program = _enosys_prologue(profile) + filt.export_bpf()
    except BaseException:
        filt.release()
        raise
    filt.flags = sum(_FILTER_FLAG_BITS[flag] for flag in set(profile.flags))
    return filt


def features() -> dict[str, Any]:
    """The "seccomp" object of `pyrunc features`, shaped like runc's."""
    try:
        level = _api_level()
        archs = sorted(arch for arch in _ARCHES if _arch_token(arch) != 0)
    except SeccompError:
        return {"enabled": False}
    actions = sorted(
        name
        for name in _ACTIONS
        if name not in _UNSUPPORTED_ACTIONS and level >= _ACTION_API_LEVEL.get(name, 0)
    )
    return {
        "enabled": True,
        "actions": actions,
        "operators": sorted(_OPERATORS),
        "archs": archs,
        "knownFlags": list(_FLAGS),
        "supportedFlags": [name for name, spec in _FLAGS.items() if level >= spec.api_level],
    }
