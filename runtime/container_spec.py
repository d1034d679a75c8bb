"""`pyrunc spec` and `pyrunc features`."""

from __future__ import annotations

import json
import os

from runtime.errors import PyruncError


def write_spec(bundle: str, rootless: bool) -> None:
    from runtime.spec_default import default_spec

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyruncError("File config.json exists. Remove it first.")
    try:
        with open(path, "x") as f:
            json.dump(default_spec(rootless=rootless), f, indent="\t")
    except OSError as exc:
        raise PyruncError(f"cannot write {path}: {exc.strerror}") from None


def features() -> None:
    from common import mountopts
    from runtime.linux import capabilities, seccomp
    from runtime.spec import NAMESPACE_FLAGS
    from runtime.state import OCI_VERSION

    out = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(
            [*mountopts.FLAG_OPTIONS, *mountopts.PROPAGATION, "tmpcopyup"]  # the tables are the truth
        ),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": capabilities.NAMES,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false"},
    }
    print(json.dumps(out, indent=4))
