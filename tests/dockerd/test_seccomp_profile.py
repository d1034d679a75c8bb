"""Docker's default profile (the file scripts/setup extracts from Debian's
golang-github-docker-docker-dev) through pydockerd's converter, for hosts and containers this
machine is not: an older kernel, another architecture, other capabilities. What this
machine's containers get is compared with dockerd's rule for rule in test_engine_security.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockerd.engine import seccomp_profile as sp
from dockerd.engine.spec import DEFAULT_CAPS


def allowed(oci: dict[str, Any] | None) -> set[str]:
    """Calls an unconditional ALLOW rule lets through."""
    assert oci is not None
    return {
        n
        for r in oci["syscalls"]
        if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
        for n in r["names"]
    }


def rules_for(oci: dict[str, Any] | None, name: str) -> list[dict[str, Any]]:
    assert oci is not None
    return [r for r in oci["syscalls"] if name in r["names"]]


@pytest.fixture(scope="module")
def default() -> dict[str, Any]:
    return sp.load_default()


def test_the_default_is_dockers_own_file(default: dict[str, Any]) -> None:
    source = (sp.DEFAULT_PROFILE.parent / "SOURCE").read_text().split()
    assert source[0] == "golang-github-docker-docker-dev"
    assert source[2].endswith("/github.com/docker/docker/profiles/seccomp/default.json")
    assert default["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"x86_64", "aarch64"} <= {
        a["architecture"].removeprefix("SCMP_ARCH_").lower() for a in default["archMap"]
    }


def test_ptrace_only_from_kernel_4_8(default: dict[str, Any]) -> None:
    assert "ptrace" not in allowed(sp.to_oci(default, DEFAULT_CAPS, "x86_64", (4, 4)))
    assert "ptrace" in allowed(sp.to_oci(default, DEFAULT_CAPS, "x86_64", (4, 8)))
    assert "ptrace" in allowed(sp.to_oci(default, DEFAULT_CAPS, "x86_64", (6, 18)))


def test_namespaces_and_mounts_follow_cap_sys_admin(default: dict[str, Any]) -> None:
    plain = sp.to_oci(default, DEFAULT_CAPS, "x86_64", (6, 1))
    admin = sp.to_oci(default, [*DEFAULT_CAPS, "CAP_SYS_ADMIN"], "x86_64", (6, 1))
    for call in ("unshare", "mount", "umount2", "setns", "clone", "bpf"):
        assert call not in allowed(plain) and call in allowed(admin), call
    # Without CAP_SYS_ADMIN, clone only without namespace flags, clone3 answers ENOSYS.
    (clone,) = rules_for(plain, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    assert [(r["action"], r.get("errnoRet")) for r in rules_for(plain, "clone3")] == [("SCMP_ACT_ERRNO", 38)]
    assert [r["action"] for r in rules_for(admin, "clone3")] == ["SCMP_ACT_ALLOW"]
    for call in ("keyctl", "add_key", "request_key", "personality"):
        assert call not in allowed(plain) and call not in allowed(admin), call


def test_architecture_decides_arch_rules_and_sub_architectures(default: dict[str, Any]) -> None:
    amd64 = sp.to_oci(default, DEFAULT_CAPS, "x86_64", (6, 1))
    s390x = sp.to_oci(default, DEFAULT_CAPS, "s390x", (6, 1))
    arm64 = sp.to_oci(default, DEFAULT_CAPS, "aarch64", (6, 1))
    assert amd64 is not None and s390x is not None and arm64 is not None
    assert amd64["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert s390x["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    assert arm64["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" in allowed(amd64) and "arch_prctl" not in allowed(arm64)
    # s390 passes clone's flags in its second argument.
    assert [r["args"][0]["index"] for r in rules_for(s390x, "clone")] == [1]


def test_profiles_dockerd_refuses(default: dict[str, Any]) -> None:
    with pytest.raises(sp.ProfileError, match=r"^'name' and 'names' were specified"):
        sp.to_oci(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}],
            },
            [],
        )
    with pytest.raises(
        sp.ProfileError, match=r'^invalid kernel version: "4.8.1", expected "<kernel>.<major>"$'
    ):
        sp.decode(
            json.dumps(
                {
                    "syscalls": [
                        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8.1"}}
                    ]
                }
            )
        )
    with pytest.raises(sp.ProfileError, match=r"version cannot be 0.0$"):
        sp.kernel_version("0.0")
    with pytest.raises(
        sp.ProfileError,
        match=r"^Decoding seccomp profile failed: json: cannot unmarshal string into Go struct field Seccomp.syscalls",
    ):
        sp.decode('{"syscalls": "read"}')
    # A profile with nothing in it turns seccomp off, as in dockerd.
    assert sp.to_oci({}, DEFAULT_CAPS) is None
    converted = sp.to_oci(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO"}]}, []
    )
    assert converted is not None and converted["syscalls"] == [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}
    ]
