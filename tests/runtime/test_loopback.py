"""`lo` is up in every network namespace the runtime creates, as runc makes it.

Each case runs the same bundle under runc (the control) and pyrunc and compares what the
container sees: the loopback's flags and operstate, and a TCP connection over 127.0.0.1
(busybox nc serving and connecting inside the container).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Bundle, Pyrunc

SCRIPT = (
    "cat /sys/class/net/lo/flags; "
    "nc -l -p 5000 -e echo over-loopback & sleep 0.5; "
    "nc -w 2 127.0.0.1 5000 </dev/null || echo connect-failed; kill $! 2>/dev/null; wait"
)


def run_under(runtime: str, pyrunc: Pyrunc, bundle: Bundle, cid: str) -> str:
    if runtime == "pyrunc":
        done = pyrunc("run", "--bundle", str(bundle.path), cid)
    else:
        root = str(pyrunc.workdir / "runc-root")  # never the machine's /run/runc
        try:
            done = subprocess.run(
                ["runc", "--root", root, "run", "--bundle", str(bundle.path), cid],
                capture_output=True,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        finally:
            subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def user_namespace(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    for m in config["mounts"]:
        if m["destination"] == "/sys":
            m["options"] = [o for o in m["options"] if o != "nodev"]


@pytest.mark.parametrize("userns", [False, True], ids=["plain", "userns"])
def test_new_network_namespace_has_loopback_up(pyrunc: Pyrunc, userns: bool) -> None:
    if not userns:
        check_both_runtimes(pyrunc, userns)
        return
    # The mapped root (host uid 100000) must be able to walk to the rootfs and the exec fifo: a
    # world-readable directory (as tests/runtime/test_security_resources.py's user namespace test).
    base = Path(tempfile.mkdtemp(prefix="pyrunc-lo-"))
    base.chmod(0o755)
    try:
        check_both_runtimes(Pyrunc(root=base / "state", workdir=base), userns)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_both_runtimes(pyrunc: Pyrunc, userns: bool) -> None:
    seen = {}
    for runtime in ("runc", "pyrunc"):
        cid = pyrunc.new_id()
        bundle = pyrunc.bundle(["sh", "-c", SCRIPT])
        if userns:
            user_namespace(bundle.config)
        bundle.write()
        seen[runtime] = run_under(runtime, pyrunc, bundle, cid)
    assert seen["runc"].split() == ["0x9", "over-loopback"], seen["runc"]  # IFF_UP | IFF_LOOPBACK
    assert seen["pyrunc"] == seen["runc"]


def test_joined_network_namespace_is_left_as_it_is(pyrunc: Pyrunc) -> None:
    # A namespace given by path belongs to whoever made it: here the test's own, with lo down.
    holder = subprocess.Popen(["unshare", "--net", "sleep", "1000"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        subprocess.run(["sleep", "0.2"])
        seen = {}
        for runtime in ("runc", "pyrunc"):
            cid = pyrunc.new_id()
            bundle = pyrunc.bundle(["cat", "/sys/class/net/lo/flags"])
            for ns in bundle.config["linux"]["namespaces"]:
                if ns["type"] == "network":
                    ns["path"] = path
            bundle.write()
            seen[runtime] = run_under(runtime, pyrunc, bundle, cid)
        assert seen["runc"].split() == ["0x8"], seen["runc"]
        assert seen["pyrunc"] == seen["runc"]
    finally:
        holder.kill()
        holder.wait()
