"""Finding legacy (v1) plugins the way dockerd does: sockets and spec files in plugin directories.

`<sockets>/<name>.sock` or `<sockets>/<name>/<name>.sock` is a unix socket the plugin serves on;
`<specs>/<name>.spec` holds an address (`unix:///path` or `tcp://host:port`) and
`<specs>/<name>.json` a JSON object with `Addr` (and, in Docker, TLS settings). The directories
are settings (Docker's defaults below), so tests use temporary ones.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dockerd.volumes.errors import DriverError

DEFAULT_SOCKET_DIRS = ("/run/docker/plugins",)
DEFAULT_SPEC_DIRS = ("/etc/docker/plugins", "/usr/lib/docker/plugins")


@dataclass(frozen=True)
class PluginDirs:
    sockets: tuple[str, ...] = field(default=DEFAULT_SOCKET_DIRS)
    specs: tuple[str, ...] = field(default=DEFAULT_SPEC_DIRS)


@dataclass(frozen=True)
class PluginSpec:
    name: str
    address: str  # unix:///path or tcp://host:port


def _candidates(base: str, name: str, ext: str) -> list[str]:
    return [os.path.join(base, name + ext), os.path.join(base, name, name + ext)]


def _safe_name(name: str) -> bool:
    # the name becomes a file name: nothing that leaves the plugin directory
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def find(name: str, dirs: PluginDirs) -> PluginSpec | None:
    """The plugin NAME's address, or None when no directory has it. Unreadable specs raise DriverError."""
    if not _safe_name(name):
        return None
    for base in dirs.sockets:
        for path in _candidates(base, name, ".sock"):
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    return PluginSpec(name, "unix://" + path)
            except OSError:
                continue
    for base in dirs.specs:
        for ext in (".spec", ".json"):
            for path in _candidates(base, name, ext):
                if os.path.isfile(path):
                    return PluginSpec(name, _read_spec(path))
    return None


def _read_spec(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise DriverError(f"{path}: {exc.strerror}") from exc
    if path.endswith(".json"):
        try:
            info = json.loads(text)
        except ValueError as exc:
            raise DriverError(f"{path}: {exc}") from exc
        address = str(info.get("Addr", "")) if isinstance(info, dict) else ""
    else:
        address = text.strip()
    if not urlsplit(address).scheme:
        raise DriverError("Unknown protocol")
    return address


def scan(dirs: PluginDirs) -> list[str]:
    """Every plugin name the directories offer (sockets first), without duplicates."""
    names: list[str] = []
    for base in dirs.sockets:
        for root, _dirs, files in os.walk(base):
            for f in sorted(files):
                try:
                    if stat.S_ISSOCK(os.lstat(os.path.join(root, f)).st_mode):
                        names.append(os.path.splitext(f)[0])
                except OSError:
                    continue
    for base in dirs.specs:
        for _root, _dirs, files in os.walk(base):
            for f in sorted(files):
                stem, ext = os.path.splitext(f)
                if ext in (".spec", ".json"):
                    names.append(stem)
    return list(dict.fromkeys(names))
