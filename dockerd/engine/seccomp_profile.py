"""Docker's seccomp profiles turned into the OCI `linux.seccomp` object, as dockerd does it.

A Docker profile (the default one, daemon.json `seccomp-profile`, `--security-opt
seccomp=PROFILE.json`) is more than an OCI one: `archMap` lists sub-architectures per
native one, and each rule may be kept or dropped by `includes`/`excludes` on the
container's capabilities (its bounding set), the host's architecture and a minimum kernel.
dockerd resolves all that per container; the runtime only sees the result.

The default profile is Docker's own `profiles/seccomp/default.json`, which scripts/setup
extracts from Debian's golang-github-docker-docker-dev (built from the same docker.io
source as the reference engine) into dockerd/profiles/; nothing here is hand-written.
"""

from __future__ import annotations

import json
import platform
import re
from pathlib import Path
from typing import Any, cast

from common import gojson
from dockerd.engine.errors import InvalidParameter

DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "seccomp-default.json"

# The host's machine name -> the name Docker's profiles use in includes/excludes "arches"
# (libseccomp's names, as moby maps Go's GOARCH), and the OCI name of its native architecture.
_HOST_ARCHES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
}


class ProfileError(InvalidParameter):
    """A profile dockerd would refuse; the message is dockerd's."""


def _go_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _want(value: object, kind: type, where: str, go_type: str) -> None:
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if not ok:
        raise ProfileError(
            f"Decoding seccomp profile failed: json: cannot unmarshal {_go_kind(value)} into Go struct field {where} of type {go_type}"
        )


def _check_strings(value: object, where: str) -> None:
    if value is None:
        return
    _want(value, list, where, "[]string")
    assert isinstance(value, list)
    for item in value:
        _want(item, str, where, "string")


def _check_filter(value: object, where: str) -> None:
    if value is None:
        return
    _want(value, dict, where, "seccomp.Filter")
    assert isinstance(value, dict)
    _check_strings(value.get("caps"), f"{where}.caps")
    _check_strings(value.get("arches"), f"{where}.arches")
    if value.get("minKernel") not in (None, ""):
        kernel_version(value["minKernel"])


def decode(text: str) -> dict[str, Any]:
    """A profile's JSON, checked for the shapes Docker's Go types accept."""
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"Decoding seccomp profile failed: {gojson.syntax_error(text, exc)}") from None
    _want(profile, dict, "Seccomp", "seccomp.Seccomp")
    for key in ("defaultAction", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            _want(profile[key], str, f"Seccomp.{key}", "string")
    if profile.get("defaultErrnoRet") is not None:
        _want(profile["defaultErrnoRet"], int, "Seccomp.defaultErrnoRet", "uint")
    _check_strings(profile.get("architectures"), "Seccomp.architectures")
    _check_strings(profile.get("flags"), "Seccomp.flags")
    if profile.get("archMap") is not None:
        _want(profile["archMap"], list, "Seccomp.archMap", "[]seccomp.Architecture")
        for entry in profile["archMap"]:
            _want(entry, dict, "Seccomp.archMap", "seccomp.Architecture")
            _want(entry.get("architecture", ""), str, "Architecture.architecture", "specs.Arch")
            _check_strings(entry.get("subArchitectures"), "Architecture.subArchitectures")
    if profile.get("syscalls") is not None:
        _want(profile["syscalls"], list, "Seccomp.syscalls", "[]*seccomp.Syscall")
        for rule in profile["syscalls"]:
            _want(rule, dict, "Seccomp.syscalls", "seccomp.Syscall")
            if rule.get("name") is not None:
                _want(rule["name"], str, "Syscall.name", "string")
            _check_strings(rule.get("names"), "Syscall.names")
            _want(rule.get("action", ""), str, "Syscall.action", "specs.LinuxSeccompAction")
            if rule.get("errnoRet") is not None:
                _want(rule["errnoRet"], int, "Syscall.errnoRet", "uint")
            if rule.get("args") is not None:
                _want(rule["args"], list, "Syscall.args", "[]*specs.LinuxSeccompArg")
                for arg in rule["args"]:
                    _want(arg, dict, "Syscall.args", "specs.LinuxSeccompArg")
            _check_filter(rule.get("includes"), "Syscall.includes")
            _check_filter(rule.get("excludes"), "Syscall.excludes")
    return cast(dict[str, Any], profile)


def kernel_version(text: object) -> tuple[int, int]:
    """A profile's "<kernel>.<major>" minKernel, with moby's errors."""
    if not isinstance(text, str):
        raise ProfileError(f'invalid kernel version: {json.dumps(text)}, expected "<kernel>.<major>"')
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ProfileError(f'invalid kernel version: "{text}", expected "<kernel>.<major>"')
    version = (int(parts[0]), int(parts[1]))
    if version == (0, 0):
        raise ProfileError(
            f'invalid kernel version: "{text}", expected "<kernel>.<major>": version cannot be 0.0'
        )
    return version


def host_kernel() -> tuple[int, int]:
    """The running kernel's "<kernel>.<major>" (6.18 for 6.18.44-foo)."""
    found = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def load_default() -> dict[str, Any]:
    try:
        text = DEFAULT_PROFILE.read_text()
    except OSError as exc:
        raise ProfileError(
            f"Docker's default seccomp profile is missing ({DEFAULT_PROFILE}: {exc.strerror}); scripts/setup installs it"
        ) from None
    return decode(text)


def _kept(rule: dict[str, Any], bounding: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    """dockerd's rule filter: every exclude must miss and every include must hold."""
    excludes = rule.get("excludes") or {}
    includes = rule.get("includes") or {}
    if arch in (excludes.get("arches") or []):
        return False
    if any(cap in bounding for cap in excludes.get("caps") or []):
        return False
    if excludes.get("minKernel") and kernel >= kernel_version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(cap in bounding for cap in includes.get("caps") or []):
        return False
    return not (includes.get("minKernel") and kernel < kernel_version(includes["minKernel"]))


def to_oci(
    profile: dict[str, Any],
    bounding: list[str],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """The OCI linux.seccomp object for a container whose bounding set is `bounding`; None
    when the profile turns seccomp off (no default action and no rules, as `{}`)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError(
            "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'"
        )
    if profile.get("listenerPath"):
        raise ProfileError(
            "seccomp profiles with a listenerPath (SCMP_ACT_NOTIFY) are not supported by pydockerd"
        )
    arch, native = _HOST_ARCHES.get(machine or platform.machine(), ("", ""))
    kernel = kernel or host_kernel()
    caps = set(bounding)
    oci: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "")}
    if profile.get("defaultErrnoRet") is not None:
        oci["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if native and entry.get("architecture") == native:
            architectures += [entry["architecture"], *(entry.get("subArchitectures") or [])]
            break
    if architectures:
        oci["architectures"] = architectures
    if profile.get("flags"):
        oci["flags"] = list(profile["flags"])
    rules = []
    for rule in profile.get("syscalls") or []:
        if not _kept(rule, caps, arch, kernel):
            continue
        if rule.get("name") and rule.get("names"):
            raise ProfileError(
                "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
            )
        names = [rule["name"]] if rule.get("name") else list(rule.get("names") or [])
        out: dict[str, Any] = {"names": names, "action": rule.get("action", "")}
        if rule.get("errnoRet") is not None:
            out["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            out["args"] = [dict(arg) for arg in rule["args"]]
        rules.append(out)
    oci["syscalls"] = rules
    return oci


def check_runtime_can_load(oci: dict[str, Any]) -> None:
    """Refuse at create what the runtime would refuse at start (an unknown action, say)."""
    from runtime.linux import seccomp

    try:
        seccomp.validate(oci)
    except seccomp.SeccompError as exc:
        raise ProfileError(f"invalid seccomp profile: {exc}") from None
