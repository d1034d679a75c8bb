"""OCI runtimes a container may run under (`docker run --runtime NAME`), as dockerd 20.10 has them.

`runc` is the stock runtime: pycontainerd's own default OCI runtime (pyrunc), and its name is
reserved. Others come from daemon.json `runtimes` ({"NAME": {"path": ..., "runtimeArgs": [...]}})
and `--add-runtime NAME=PATH`; `default-runtime` names the one containers get without --runtime.

They reach pycontainerd as dockerd's reach containerd: the container record names the shim
runtime `io.containerd.runc.v2` with `containerd.runc.v1.Options` whose `binary_name` is the OCI
runtime's path (for a runtime with runtimeArgs, a wrapper script under EXEC-ROOT/runtimes that
adds them, as dockerd writes one), and pycontainerd hands that binary to the shim.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine.errors import InvalidParameter

STOCK = "runc"
# dockerd 20.10 lists containerd's shim names as runtimes too; they run the stock runtime.
LEGACY = ("io.containerd.runc.v2", "io.containerd.runtime.v1.linux")
SHIM = "io.containerd.runc.v2"
OPTIONS_TYPE = "containerd.runc.v1.Options"


class RuntimeConfigError(ValueError):
    """A bad `runtimes`/`--add-runtime`/`default-runtime` setting (dockerd's wording)."""


@dataclass(frozen=True)
class Runtime:
    path: str = ""
    args: tuple[str, ...] = ()


@dataclass
class Runtimes:
    configured: dict[str, Runtime] = field(default_factory=dict)
    default: str = STOCK
    wrapper_dir: str = ""  # EXEC-ROOT/runtimes

    def resolve(self, name: str | None) -> str:
        """The runtime a container gets for HostConfig.Runtime NAME (create time: 400 if unknown)."""
        name = name or self.default
        if name != STOCK and name not in LEGACY and name not in self.configured:
            raise InvalidParameter(f"Unknown runtime specified {name}")
        return name

    def binary(self, name: str) -> str | None:
        """The OCI runtime binary for NAME; None is the stock one (pycontainerd's default)."""
        runtime = self.configured.get(name)
        if runtime is None:
            return None
        if not runtime.path:
            raise InvalidParameter(f"runtime {name} has no path configured")
        if not runtime.args:
            return runtime.path
        return self._wrapper(name, runtime)

    def _wrapper(self, name: str, runtime: Runtime) -> str:
        # The shim runs the binary with runc's arguments only: the runtime's own arguments go in
        # a script, as dockerd does (its EXEC-ROOT/runtimes/NAME).
        os.makedirs(self.wrapper_dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.wrapper_dir, name)
        text = f'#!/bin/sh\nexec {shlex.join([runtime.path, *runtime.args])} "$@"\n'
        try:
            with open(path) as f:
                if f.read() == text:
                    return path
        except OSError:
            pass
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)
        return path

    def info(self) -> dict[str, Any]:
        """`docker info`'s Runtimes."""
        out: dict[str, Any] = {name: {"path": "pyrunc"} for name in (*LEGACY, STOCK)}
        for name, runtime in self.configured.items():
            entry: dict[str, Any] = {"path": runtime.path} if runtime.path else {}
            if runtime.args:
                entry["runtimeArgs"] = list(runtime.args)
            out[name] = entry
        return dict(sorted(out.items()))


def from_settings(
    file_runtimes: dict[str, Any], added: list[str], default: str, wrapper_dir: str
) -> Runtimes:
    """daemon.json `runtimes`, the `--add-runtime` flags and `default-runtime`, checked as dockerd does."""
    configured: dict[str, Runtime] = {}
    for name, entry in file_runtimes.items():
        if name == STOCK:
            raise RuntimeConfigError(f"runtime name '{STOCK}' is reserved")
        configured[name] = _from_json(name, entry)
    for item in added:
        name, eq, path = item.partition("=")
        name, path = name.strip().lower(), path.strip()
        if not eq or not name or not path:
            raise RuntimeConfigError(
                f'invalid argument "{item}" for "--add-runtime" flag: invalid runtime argument: {item}'
            )
        if name == STOCK:
            raise RuntimeConfigError(
                f'invalid argument "{item}" for "--add-runtime" flag: runtime name \'{STOCK}\' is reserved'
            )
        if name in configured:
            raise RuntimeConfigError(
                f'invalid argument "{item}" for "--add-runtime" flag: runtime \'{name}\' was already defined'
            )
        configured[name] = Runtime(path)
    runtimes = Runtimes(configured, default or STOCK, wrapper_dir)
    if runtimes.default != STOCK and runtimes.default not in configured:
        raise RuntimeConfigError(f"specified default runtime '{runtimes.default}' does not exist")
    return runtimes


def _from_json(name: str, entry: Any) -> Runtime:
    if not isinstance(entry, dict):
        raise RuntimeConfigError(
            f"runtime {name}: json: cannot unmarshal into Go value of type types.Runtime"
        )
    path = entry.get("path", "")
    args = entry.get("runtimeArgs") or []
    if not isinstance(path, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise RuntimeConfigError(f"runtime {name}: path must be a string and runtimeArgs a list of strings")
    return Runtime(path, tuple(args))
