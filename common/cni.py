"""Running a CNI plugin: the one executor pycontainerd's CRI plugin and pydockerd's CNI driver share.

A CNI plugin is a program: the command (ADD, DEL, CHECK...) and the container's identity go in
environment variables, the network's configuration on stdin, the result (ADD) or an error object
({"code", "msg", "details"}) comes back on stdout (the CNI specification, as libcni's invoke
package runs it). What differs between the callers is only what they put in the configuration
and how they word a failure, so this module returns the result or raises `PluginError` with the
parts, and each caller words it in its own daemon's convention.

Loaded by daemons only (not by pyrunc or the shim), so `json` and `subprocess` are fine here.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TIMEOUT = 60  # seconds; a plugin that hangs fails the call instead of the daemon's thread


@dataclass(frozen=True)
class Invocation:
    """Who the plugin works for: the CNI_* environment of one call."""

    container_id: str
    netns: str  # the namespace's path ("" on a DEL whose namespace is gone, as the spec allows)
    ifname: str
    path: Sequence[str]  # CNI_PATH: where the plugin and the ones it delegates to (IPAM) are
    args: str = ""  # CNI_ARGS ("K=V;K=V")

    def environ(self, command: str) -> dict[str, str]:
        env = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_PATH": ":".join(self.path),
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        if self.args:
            env["CNI_ARGS"] = self.args
        return env


class PluginError(Exception):
    """A plugin that is missing, timed out, failed or answered something that is not JSON."""

    def __init__(self, plugin: str, command: str, message: str, reason: str = "failed") -> None:
        super().__init__(message)
        self.plugin = plugin
        self.command = command
        self.message = message
        self.reason = reason  # "missing", "timeout", "failed" (its own error object) or "result"


def find_plugin(name: str, search: Sequence[str]) -> str | None:
    """The plugin's program in the first directory of SEARCH holding it (a bare name only)."""
    if not name or "/" in name or name.startswith("."):
        return None
    for directory in search:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


def error_text(stdout: bytes, stderr: bytes) -> str:
    """The plugin's error object as libcni words it ("msg: details"), else what it printed."""
    try:
        doc = json.loads(stdout)
        if isinstance(doc, dict) and doc.get("msg"):
            return f"{doc['msg']}{': ' + doc['details'] if doc.get('details') else ''}"
    except ValueError:
        pass
    return (stderr or stdout).decode(errors="replace").strip() or "no output"


def invoke(conf: Mapping[str, Any], command: str, who: Invocation) -> Any:
    """Run the plugin named by CONF's "type" with COMMAND; its JSON result (None when it printed none)."""
    kind = str(conf.get("type", ""))
    binary = find_plugin(kind, who.path)
    if binary is None:
        raise PluginError(
            kind, command, f'failed to find plugin "{kind}" in path [{" ".join(who.path)}]', "missing"
        )
    try:
        done = subprocess.run(
            [binary],
            input=json.dumps(conf).encode(),
            env=who.environ(command),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PluginError(kind, command, f"plugin type={kind!r} {command} timed out", "timeout") from None
    if done.returncode != 0:
        raise PluginError(kind, command, error_text(done.stdout, done.stderr))
    if not done.stdout.strip():
        return None
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise PluginError(
            kind, command, f"plugin type={kind!r} returned a result that is not JSON", "result"
        ) from None
