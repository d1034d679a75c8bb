"""The OCI runtime specification where pyrunc departed from it (issue 16, "Runtime conformance").

Where the spec leaves room, Debian's runc on the same bundle is the reference (runc_side.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Pyrunc
from tests.runtime.runc_side import both


def test_fifo_and_unbuffered_devices_are_created_like_runc(pyrunc: Pyrunc) -> None:
    """linux.devices of type p (fifo) and u (unbuffered char) get their nodes with mode and owner,
    as under runc. pyrunc also allows the spec's devices in the cgroup (runc 1.1 leaves that to
    linux.resources.devices): a char rule for u, none for p, which the devices controller cannot
    express. Before the fix create failed: "unknown device type 'p'"."""

    def edit(config: dict[str, Any]) -> None:
        config["linux"]["devices"] = [
            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o640, "uid": 0, "gid": 0},
            {
                "path": "/dev/kmsg-u",
                "type": "u",
                "major": 1,
                "minor": 11,
                "fileMode": 0o600,
                "uid": 0,
                "gid": 0,
            },
        ]

    script = "stat -c '%n %F %a %t:%T' /dev/myfifo /dev/kmsg-u; cat /sys/fs/cgroup/devices/devices.list"
    results = both(pyrunc, ["sh", "-c", script], edit)
    assert results["runc"].returncode == 0, results["runc"].stderr
    assert results["pyrunc"].returncode == 0, results["pyrunc"].stderr
    nodes = ["/dev/myfifo fifo 640 0:0", "/dev/kmsg-u character special file 600 1:b"]
    assert results["runc"].stdout.decode().splitlines()[:2] == nodes
    lines = results["pyrunc"].stdout.decode().splitlines()
    assert lines[:2] == nodes
    assert "c 1:11 rwm" in lines[2:] and not any(rule.startswith("p") for rule in lines[2:])


def test_every_poststart_and_poststop_hook_runs_after_a_failure(pyrunc: Pyrunc, tmp_path: Path) -> None:
    """The spec: a failed poststart or poststop hook is a warning, and the remaining hooks and the
    lifecycle go on. Before the fix the first failure skipped the hooks after it."""
    cid = pyrunc.new_id()
    record = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$1" >> {record}\n')
    hook.chmod(0o755)
    failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]}
    bundle = pyrunc.bundle(["true"])
    bundle.config["hooks"] = {
        stage: [failing, {"path": str(hook), "args": ["hook.sh", stage]}, failing]
        for stage in ("poststart", "poststop")
    }
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert record.read_text().splitlines() == ["poststart", "poststop"]
    warnings = done.stderr.decode().splitlines()
    assert warnings == [
        f"pyrunc: warning: {stage} hook /bin/sh exited with status 3: broken"
        for stage in ("poststart",) * 2 + ("poststop",) * 2
    ]
    assert not (pyrunc.root / cid).exists()


def test_capabilities_the_runtime_lacks_fail_create_like_runc(pyrunc: Pyrunc) -> None:
    """capset refused by the host: both runtimes run with CAP_SYS_RESOURCE out of their bounding set
    (setpriv), and the config asks for it. runc fails create ("unable to apply caps"), and so does
    pyrunc, naming the capability. Before the fix create and start exited 0 and the init died."""

    def edit(config: dict[str, Any]) -> None:
        for key in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][key].append("CAP_SYS_RESOURCE")

    without = ["setpriv", "--bounding-set", "-sys_resource"]
    results = both(pyrunc, ["true"], edit, verb="create", wrap=without)
    assert results["runc"].returncode == 1 and b"unable to apply caps" in results["runc"].stderr
    assert results["pyrunc"].returncode == 1
    assert (
        results["pyrunc"].stderr
        == b"pyrunc: unable to apply caps: the runtime does not hold CAP_SYS_RESOURCE\n"
    )


@pytest.mark.parametrize("failure", ["hook", "capset", "execve"])
def test_a_failure_after_start_fails_start(pyrunc: Pyrunc, failure: str) -> None:
    """What goes wrong between `start` and the user's process (a startContainer hook, capset,
    execve itself) fails `start` with the init's message, and the container is stopped: never a
    start that exits 0 for a container that silently died. Before the fix start exited 0."""
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["/bin/broken"] if failure == "execve" else ["true"])
    expected = {
        "hook": "startContainer hook /bin/false exited with status 1",
        # An inheritable capability outside the bounding set: the kernel refuses the set.
        "capset": "capset: Operation not permitted",
        # Executable, but its interpreter is missing: only execve can tell.
        "execve": 'exec: "/bin/broken": No such file or directory',
    }[failure]
    if failure == "hook":
        bundle.config["hooks"] = {"startContainer": [{"path": "/bin/false"}]}
    elif failure == "capset":
        bundle.config["process"]["capabilities"]["inheritable"] = ["CAP_CHOWN"]
    else:
        (bundle.rootfs / "bin" / "broken").write_text("#!/no/such/interpreter\n")
        (bundle.rootfs / "bin" / "broken").chmod(0o755)
    bundle.write()
    pyrunc.ok("create", "--bundle", str(bundle.path), cid)
    done = pyrunc("start", cid)
    assert done.returncode == 1
    assert done.stderr.decode() == f"pyrunc: unable to start container process: {expected}\n"
    assert pyrunc.state(cid)["status"] == "stopped"
    pyrunc.ok("delete", cid)
