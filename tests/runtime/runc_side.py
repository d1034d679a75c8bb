"""Debian's runc on the same bundle as pyrunc: the reference where the OCI spec leaves room.

`Runc` has the `Pyrunc` fixture's calling convention (files for stdio, its own --root), and
`both()` runs one config through each runtime so a test can compare what the containers saw.
runc's containers are named by the `pyrunc` fixture's `new_id`, so the fixture's leak checks
(cgroups under /pyrunc-test-<id>, mounts under the test's temp dir) cover them too.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.runtime.conftest import Pyrunc

RUNC = "/usr/sbin/runc"


@dataclass
class Runc:
    root: Path

    def __call__(
        self, *args: str, timeout: float = 60, wrap: list[str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            command = [*(wrap or []), RUNC, "--root", str(self.root), *args]
            done = subprocess.run(command, stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(done.args, done.returncode, out.read(), err.read())


def both(
    pyrunc: Pyrunc,
    args: list[str],
    edit: Callable[[dict[str, Any]], None],
    verb: str = "run",
    wrap: list[str] | None = None,
    rootfs_edit: Callable[[Path], None] | None = None,
) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """`run` (or VERB) the same config under runc and pyrunc, each command prefixed with WRAP
    (a setpriv, say), each bundle's rootfs changed by ROOTFS_EDIT; {"runc": ..., "pyrunc": ...}."""
    runc = Runc(pyrunc.root.parent / "runc-state")
    results = {}
    for name in ("runc", "pyrunc"):
        cid = pyrunc.new_id()
        bundle = pyrunc.bundle(args)
        edit(bundle.config)
        if rootfs_edit is not None:
            rootfs_edit(bundle.rootfs)
        bundle.write()
        tool = runc if name == "runc" else pyrunc
        results[name] = tool(verb, "--bundle", str(bundle.path), cid, wrap=wrap)
        if verb != "run":
            tool("delete", "--force", cid)
    return results
