"""Seccomp profiles for the CRI's SecurityProfile: RuntimeDefault, Unconfined, Localhost.

A profile in Docker's format (what containerd's seccomp.LoadProfile reads and what its default is
written in) becomes the OCI `linux.seccomp` of one container: entries whose `includes`/`excludes`
(capabilities, architectures, minimum kernel) do not fit the container are left out, and the
architecture map gives the OCI architectures. RuntimeDefault is Docker's own default profile,
which scripts/setup extracts from Debian's source package of the reference engine into
dockerd/profiles/ (read here as a data file: pycontainerd imports nothing of pydockerd).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from typing import Any

from containerd.errors import InvalidArgument

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PROFILE = os.path.join(REPO, "dockerd", "profiles", "seccomp-default.json")
_MACHINE_ARCH = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}


def _kernel() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return 0, 0


def _fits(rule: dict[str, Any], caps: set[str], arch: str) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if inc.get("minKernel"):
        major, minor = (int(x) for x in str(inc["minKernel"]).split(".")[:2])
        if _kernel() < (major, minor):
            return False
    if exc.get("arches") and arch in exc["arches"]:
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    return True


def convert(profile: dict[str, Any], caps: Iterable[str]) -> dict[str, Any]:
    """A Docker-format profile to the OCI seccomp of a container holding CAPS."""
    arch, scmp_arch = _MACHINE_ARCH.get(platform.machine(), ("amd64", "SCMP_ARCH_X86_64"))
    have = set(caps)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO")}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    arches: list[str] = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_arch:
            arches = [scmp_arch, *entry.get("subArchitectures", [])]
    if arches:
        out["architectures"] = arches
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not _fits(rule, have, arch):
            continue
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        item: dict[str, Any] = {"names": list(names), "action": rule["action"]}
        if rule.get("args"):
            item["args"] = rule["args"]
        if "errnoRet" in rule:
            item["errnoRet"] = rule["errnoRet"]
        syscalls.append(item)
    out["syscalls"] = syscalls
    return out


def load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except OSError as exc:
        raise InvalidArgument(f"failed to load seccomp profile {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"failed to parse seccomp profile {path!r}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"seccomp profile {path!r} is not a JSON object")
    return doc


def for_profile(
    kind: int, localhost_ref: str, legacy_path: str, caps: Iterable[str], privileged: bool
) -> dict[str, Any] | None:
    """The OCI seccomp section for a CRI SecurityProfile (None: unconfined).

    kind is SecurityProfile.ProfileType (0 RuntimeDefault, 1 Unconfined, 2 Localhost); a request
    that sets neither it nor the deprecated path gets containerd 1.6's default: unconfined."""
    if privileged:
        return None
    if legacy_path and kind == 0 and not localhost_ref:
        if legacy_path in ("unconfined", ""):
            return None
        if legacy_path in ("runtime/default", "docker/default"):
            return convert(load(DEFAULT_PROFILE), caps)
        if legacy_path.startswith("localhost/"):
            return convert(load(legacy_path[len("localhost/") :]), caps)
        raise InvalidArgument(f"unsupported seccomp profile {legacy_path!r}")
    if kind == 1:
        return None
    if kind == 2:
        if not localhost_ref or not os.path.isabs(localhost_ref):
            raise InvalidArgument(f"seccomp profile localhost_ref {localhost_ref!r} must be an absolute path")
        return convert(load(localhost_ref), caps)
    return convert(load(DEFAULT_PROFILE), caps)
