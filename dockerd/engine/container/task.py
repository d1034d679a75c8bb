"""The containerd task's calls that may fail harmlessly (the task is already gone)."""

from __future__ import annotations

import time

from containerd.client import Client
from containerd.client.errors import ContainerdError


def delete_quietly(client: Client, cid: str) -> int | None:
    """Tasks.Delete: the exit status it reports, None when there was no task to delete."""
    try:
        return client.tasks.delete(cid).status
    except ContainerdError:
        return None


def kill_quietly(client: Client, cid: str, signal: int, *, all: bool = False) -> None:
    try:
        client.tasks.kill(cid, signal, all=all)
    except ContainerdError:
        pass


def timestamp_text(ns: int) -> str | None:
    """A containerd time (ns since the epoch) as Docker's RFC 3339 text; None when unset."""
    if not ns:
        return None
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def go_message(exc: ContainerdError) -> str:
    """A containerd error as dockerd prints it: Go's errdefs turn a gRPC status of no known kind
    into ErrUnknown, wrapped, so the code comes after the message ("...: unknown"); the client
    library puts it in front, as containerd's own Go errors print."""
    text = str(exc)
    if text.startswith("unknown: "):
        return f"{text.removeprefix('unknown: ')}: unknown"
    return text
