"""The OCI runtime specification where pyrunc departed from it (issue 16, "Runtime conformance").

Where the spec leaves room, Debian's runc on the same bundle is the reference (runc_side.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Pyrunc, mounts_under
from tests.runtime.runc_side import both


def test_fifo_and_unbuffered_devices_are_created_like_runc(pyrunc: Pyrunc) -> None:
    """linux.devices of type p (fifo) and u (unbuffered char) get their nodes with mode and owner,
    as under runc. As runc 1.1, pyrunc adds no cgroup rule for them: linux.resources.devices
    decides (Docker's `--device HOST:CONTAINER:r` is read-only that way), so the devices cgroup's
    list is runc's. Before the fix create failed: "unknown device type 'p'"."""

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
    assert sorted(lines[2:]) == sorted(results["runc"].stdout.decode().splitlines()[2:])
    assert not any(rule.startswith(("p", "c 1:11 ")) for rule in lines[2:])


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
        results["pyrunc"].stderr == b"pyrunc: runc create failed: unable to start container process: "
        b"unable to apply caps: the runtime does not hold CAP_SYS_RESOURCE\n"
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
    # `run` fails the same way and removes what it created, as runc's run does.
    cid = pyrunc.new_id()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert (done.returncode, done.stderr.decode()) == (
        1,
        f"pyrunc: runc run failed: unable to start container process: {expected}\n",
    )
    assert not (pyrunc.root / cid).exists()


def _without_namespaces(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = []
    config["linux"]["maskedPaths"] = config["linux"]["readonlyPaths"] = []
    config.pop("hostname")


def test_without_namespaces_the_container_still_gets_its_mounts(pyrunc: Pyrunc) -> None:
    """No namespaces at all: the container shares the runtime's, mount namespace included, and still
    gets its mounts (made there, below a bind of its rootfs, then chroot), with the same view as
    under runc; delete takes them all away again (runc leaves them: it runs here in a throwaway
    mount namespace, where its making the host's mounts slaves harms nobody). Before the fix
    every mount was skipped and the init died opening /proc/self/fd."""
    script = "ls /dev; test -e /proc/self/fd/1 && echo proc-ok; cut -d' ' -f5 /proc/self/mountinfo | sort"
    runc = both(
        pyrunc,
        ["sh", "-c", script],
        _without_namespaces,
        wrap=["unshare", "--mount", "--propagation", "private"],
    )
    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["sh", "-c", script])
    _without_namespaces(bundle.config)
    ours = pyrunc("run", "--bundle", str(bundle.write().path), cid)  # in the host's mount namespace
    assert runc["runc"].returncode == 0, runc["runc"].stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == runc["runc"].stdout == runc["pyrunc"].stdout
    lines = ours.stdout.decode().split()
    assert {"null", "zero", "ptmx", "stdout", "proc-ok", "/", "/proc", "/dev", "/dev/pts", "/sys"} <= set(
        lines
    )
    assert mounts_under(str(pyrunc.workdir)) == []


def test_without_a_mount_namespace_masked_paths_are_refused_and_the_root_is_read_only(pyrunc: Pyrunc) -> None:
    """maskedPaths and readonlyPaths would mount over the runtime's own /proc and /sys: refused, as
    runc refuses them. root.readonly is honoured (our bind of the rootfs is remounted read-only;
    runc 1.1 ignores it there). A create that fails once the mounts are made leaves none."""

    def keep_masks(config: dict[str, Any]) -> None:
        masked = config["linux"]["maskedPaths"]
        _without_namespaces(config)
        config["linux"]["maskedPaths"] = masked

    refused = both(
        pyrunc, ["true"], keep_masks, verb="create", wrap=["unshare", "--mount", "--propagation", "private"]
    )
    for name in ("runc", "pyrunc"):
        assert refused[name].returncode == 1
        assert b"unable to restrict sys entries without a private MNT namespace" in refused[name].stderr, (
            refused
        )

    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(
        ["sh", "-c", "touch /probe || echo read-only; touch /dev/shm/probe && echo shm-writable"]
    )
    _without_namespaces(bundle.config)
    bundle.config["root"]["readonly"] = True
    bundle.write()
    done = pyrunc("run", "--bundle", str(bundle.path), cid)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["read-only", "shm-writable"]
    assert b"Read-only file system" in done.stderr

    cid = pyrunc.new_id()
    bundle = pyrunc.bundle(["true"])
    _without_namespaces(bundle.config)
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    bundle.write()
    assert pyrunc("create", "--bundle", str(bundle.path), cid).returncode == 1
    assert mounts_under(str(pyrunc.workdir)) == []
