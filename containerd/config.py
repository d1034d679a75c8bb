"""pycontainerd's settings: command-line flags over an optional TOML file over defaults.

The TOML keys follow containerd's config.toml where one exists (root, state,
[grpc] address, [plugins."io.containerd.runtime.v2.task"] ...); only what pycontainerd
uses is read, and an unknown top-level key is an error rather than silently ignored.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any

from containerd.cri.config import PLUGIN_ID, CRIConfig, CRIConfigError, from_toml

DEFAULT_ROOT = "/var/lib/pycontainerd"
DEFAULT_STATE = "/run/pycontainerd"
DEFAULT_ADDRESS = "/run/pycontainerd/pycontainerd.sock"
DEFAULT_RUNTIME = "io.containerd.runc.v2"

_KNOWN_KEYS = {
    "version", "root", "state", "grpc", "runtimes", "default_runtime", "log_level", "shim", "snapshotter",
    "plugins", "disabled_plugins",
}  # fmt: skip


class ConfigError(Exception):
    pass


@dataclass
class Config:
    root: str = DEFAULT_ROOT
    state: str = DEFAULT_STATE
    address: str = DEFAULT_ADDRESS
    log_level: str = "info"
    # Runtime name (as clients send it, e.g. io.containerd.runc.v2) -> OCI runtime binary the shim execs.
    runtimes: dict[str, str] = field(default_factory=dict)
    default_runtime: str = DEFAULT_RUNTIME
    # How long a shim whose task exited waits for a daemon before cleaning up after itself.
    shim_orphan_timeout: float = 3600.0
    snapshotter: str = "overlayfs"
    # The CRI plugin (containerd/cri/): containerd's [plugins."io.containerd.grpc.v1.cri"] table.
    cri: CRIConfig = field(default_factory=CRIConfig)

    def runtime_binary(self, name: str) -> str:
        if name in self.runtimes:
            return self.runtimes[name]
        if name in ("", DEFAULT_RUNTIME, "io.containerd.runtime.v1.linux"):
            return self.runtimes.get(self.default_runtime) or default_runtime_binary()
        # A path names a runtime binary directly (what `ctr run --runtime /usr/sbin/runc` sends).
        if name.startswith("/"):
            return name
        raise ConfigError(f"unknown runtime {name!r}: configure it under [runtimes]")


def default_runtime_binary() -> str:
    """pyrunc from the same installation, else one on PATH."""
    here = os.path.dirname(os.path.abspath(sys.executable))
    candidate = os.path.join(here, "pyrunc")
    if os.path.exists(candidate):
        return candidate
    return "pyrunc"


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    cfg = Config()
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid config {path}: {exc}") from None
        unknown = set(data) - _KNOWN_KEYS
        if unknown:
            raise ConfigError(f"unknown keys in {path}: {', '.join(sorted(unknown))}")
        cfg.root = str(data.get("root", cfg.root))
        cfg.state = str(data.get("state", cfg.state))
        cfg.address = str((data.get("grpc") or {}).get("address", cfg.address))
        cfg.log_level = str(data.get("log_level", cfg.log_level))
        runtimes = data.get("runtimes") or {}
        if not isinstance(runtimes, dict) or not all(isinstance(v, str) for v in runtimes.values()):
            raise ConfigError(f"invalid config {path}: [runtimes] maps names to binary paths")
        cfg.runtimes = dict(runtimes)
        cfg.default_runtime = str(data.get("default_runtime", cfg.default_runtime))
        shim = data.get("shim") or {}
        cfg.shim_orphan_timeout = float(shim.get("orphan_timeout", cfg.shim_orphan_timeout))
        cfg.snapshotter = str(data.get("snapshotter", cfg.snapshotter))
        plugins = data.get("plugins") or {}
        try:
            cfg.cri = from_toml(plugins.get(PLUGIN_ID) or {} if isinstance(plugins, dict) else {})
        except CRIConfigError as exc:
            raise ConfigError(f"invalid config {path}: {exc}") from None
        disabled = data.get("disabled_plugins") or []
        if not isinstance(disabled, list):
            raise ConfigError(f"invalid config {path}: disabled_plugins is a list of plugin ids")
        cfg.cri.enabled = PLUGIN_ID not in disabled and "cri" not in disabled
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith("cri_"):
            setattr(cfg.cri, key[len("cri_") :], value)
        else:
            setattr(cfg, key, value)
    for key in ("root", "state", "address"):
        setattr(cfg, key, os.path.abspath(getattr(cfg, key)))
    return cfg
