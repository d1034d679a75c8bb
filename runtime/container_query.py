"""Read-only verbs: `state`, `list`, `ps`.

`state` is on containerd's paths (its runc shim asks for a task's status with it), so it
imports neither `json` (which imports `re`) nor `subprocess`: its indented output is written
here over common.fastjson, as json.dumps(..., indent=2) writes it. `list` and `ps` load them.
"""

from __future__ import annotations

import os
import pwd
import sys

from common import fastjson
from runtime import state as statemod
from runtime.errors import PyruncError
from runtime.linux.cgroups import load_manager


def state(root: str, container_id: str) -> None:
    cs = statemod.load(root, container_id)
    print(indented(statemod.oci_state(root, cs)))


def indented(value: object, level: int = 0) -> str:
    """VALUE as json.dumps(VALUE, indent=2) writes it: two spaces a level, ", " nowhere (each
    item ends its line), ": " after keys, ASCII only, empty containers as {} and []."""
    inner = "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{fastjson.dumps(str(k))}: {indented(v, level + 1)}" for k, v in value.items()]
    elif isinstance(value, list | tuple) and value:
        items = [f"{inner}{indented(v, level + 1)}" for v in value]
    else:
        return fastjson.dumps(value)
    open_, close = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return open_ + "\n" + ",\n".join(items) + "\n" + "  " * level + close


def list_containers(root: str, fmt: str, quiet: bool) -> None:
    import json

    rows = []
    for cid in statemod.list_ids(root):
        try:
            cs = statemod.load(root, cid)
        except PyruncError:
            continue
        st = statemod.oci_state(root, cs)
        try:
            owner = pwd.getpwuid(os.stat(os.path.join(root, cid)).st_uid).pw_name
        except (KeyError, OSError):
            owner = ""
        rows.append({**st, "owner": owner})
    if quiet:
        for row in rows:
            print(row["id"])
        return
    if fmt == "json":
        keys = ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner")
        listed = [
            {k: row[k] for k in keys} | ({"annotations": row["annotations"]} if "annotations" in row else {})
            for row in rows
        ]
        print(json.dumps(listed or None))
        return
    lines = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    lines += [(r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    for line in lines:
        print("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())


def ps(root: str, container_id: str, fmt: str, ps_args: list[str]) -> None:
    import json
    import subprocess

    cs = statemod.load(root, container_id)
    if statemod.status(root, cs) == "stopped":
        pids: list[int] = []
    else:
        pids = load_manager(cs.cgroup).pids()
    if fmt == "json":
        print(json.dumps(pids))
        return
    args = ps_args or ["-ef"]
    try:
        out = subprocess.run(["ps", *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PyruncError(f"ps {' '.join(args)} failed: {exc}") from None
    lines = out.splitlines()
    if not lines:
        return
    header = lines[0].split()
    if "PID" not in header:
        raise PyruncError("couldn't find PID field in ps output")
    column = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            sys.stdout.write(line + "\n")
