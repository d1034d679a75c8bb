"""GET /containers/{id}/top: the container's processes as the host's `ps` shows them."""

from __future__ import annotations

import re
import subprocess
from typing import TYPE_CHECKING, Any

from containerd.client.errors import ContainerdError
from containerd.client.errors import NotFound as ContainerdNotFound
from dockerd.engine.errors import Conflict, EngineError, InvalidParameter

if TYPE_CHECKING:
    from dockerd.engine.container.backend import Containers


def top(d: Containers, ref: str, ps_args: str) -> dict[str, Any]:
    """GET /containers/{id}/top: the host's `ps` restricted to the task's pids (Tasks.ListPids)."""
    ps_args = ps_args or "-ef"
    validate_ps_args(ps_args)
    c = d.get(ref)
    if not c.running():
        raise Conflict(f"Container {c.id} is not running")
    if c.state.get("Restarting"):
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    try:
        listed = d.client.tasks.pids(c.id)
    except ContainerdError as exc:
        if isinstance(exc, ContainerdNotFound) or not c.running():
            raise Conflict(f"Container {c.id} is not running") from None
        raise EngineError(f"listing the processes of {c.id}: {exc}") from None
    pids = [p.pid for p in listed]
    args = ps_args.split(" ")
    # As dockerd: ps restricted to the pids first; some options (f) refuse -q, so retry without.
    result = subprocess.run(["ps", *args, "-q" + ",".join(map(str, pids))], capture_output=True, text=True)
    if result.returncode != 0:
        result = subprocess.run(["ps", *args], capture_output=True, text=True)
        if result.returncode != 0:
            first = (result.stderr.split("\n", 1)[0] or f"exit status {result.returncode}").strip()
            raise InvalidParameter(f"ps: {first}")
    answer = parse_ps_output(result.stdout, set(pids))
    d.publish("container", "top", c.id, {"image": c.image_ref, "name": c.name})
    return answer


def validate_ps_args(ps_args: str) -> None:
    """dockerd refuses renaming a column to PID (it would fool the PID column lookup)."""
    for key, value in re.findall(r"\s+([^\s]*)=\s*(PID[^\s]*)", ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    return [f for f in re.split(r"[\t\n\f\r ]+", line) if f]


def parse_ps_output(output: str, pids: set[int]) -> dict[str, Any]:
    """dockerd's parsePSOutput: keep the lines of PIDS (and the thread lines that follow them)."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise InvalidParameter("Couldn't find PID field in ps output")
    index = titles.index("PID")
    processes: list[list[str]] = []
    keep_threads = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= index:
            continue
        if fields[index] == "-":
            if keep_threads:
                processes.append(_merge_tail(fields, len(titles)))
            continue
        try:
            pid = int(fields[index])
        except ValueError:
            raise InvalidParameter(f"Unexpected pid '{fields[index]}': invalid syntax") from None
        keep_threads = pid in pids
        if keep_threads:
            processes.append(_merge_tail(fields, len(titles)))
    return {"Processes": processes, "Titles": titles}


def _merge_tail(fields: list[str], columns: int) -> list[str]:
    """The last column (the command) may hold spaces: join whatever overhangs into it."""
    return fields[: columns - 1] + [" ".join(fields[columns - 1 :])]
