"""The CRI plugin's settings: containerd's `[plugins."io.containerd.grpc.v1.cri"]` keys, and flags.

Only what the plugin uses is read, with containerd's key names, so a node's config.toml section
for containerd's CRI plugin works here (sandbox_image, restrict_oom_score_adj, stream server,
[cni], [registry.mirrors], [registry.configs.*.auth], the runc runtime's BinaryName); keys of
its own are `address` (serve CRI on a separate socket), `sandbox_image_import` (an OCI layout or
archive imported when the sandbox image is missing) and `netns_dir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

PLUGIN_ID = "io.containerd.grpc.v1.cri"
K8S_NAMESPACE = "k8s.io"
DEFAULT_SANDBOX_IMAGE = "docker.io/pydocker/pause:3.6-catatonit"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_BIN_DIR = "/usr/lib/cni"


class CRIConfigError(Exception):
    pass


@dataclass
class CRIConfig:
    enabled: bool = True
    address: str = ""  # "" = the daemon's own socket
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    sandbox_image_import: str = ""
    restrict_oom_score_adj: bool = False
    stream_server_address: str = "127.0.0.1"
    stream_server_port: int = 0  # 0: any free port
    max_container_log_line_size: int = 16 * 1024
    cni_conf_dir: str = DEFAULT_CNI_CONF_DIR
    cni_bin_dir: str = DEFAULT_CNI_BIN_DIR
    cni_max_conf_num: int = 1
    netns_dir: str = ""  # "" = <state>/io.containerd.grpc.v1.cri/netns
    snapshotter: str = "overlayfs"
    runtime_binary: str = ""  # runc's BinaryName; "" = the daemon's default runtime
    systemd_cgroup: bool = False
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    auths: dict[str, dict[str, str]] = field(default_factory=dict)
    insecure: list[str] = field(default_factory=list)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise CRIConfigError(f"[{key}] must be a table")
    return value


def from_toml(section: dict[str, Any]) -> CRIConfig:
    """The CRI plugin's table of a containerd config.toml (version 2)."""
    cfg = CRIConfig()
    scalar = {
        "sandbox_image": str,
        "sandbox_image_import": str,
        "address": str,
        "restrict_oom_score_adj": bool,
        "stream_server_address": str,
        "max_container_log_line_size": int,
        "netns_dir": str,
    }
    for key, kind in scalar.items():
        if key in section:
            value = section[key]
            if not isinstance(value, kind):
                raise CRIConfigError(f"{PLUGIN_ID}: {key} must be a {kind.__name__}")
            setattr(cfg, key, value)
    if "stream_server_port" in section:
        try:
            cfg.stream_server_port = int(section["stream_server_port"])
        except (TypeError, ValueError):
            raise CRIConfigError(f"{PLUGIN_ID}: stream_server_port must be a port number") from None
    cni = _table(section, "cni")
    cfg.cni_conf_dir = str(cni.get("conf_dir", cfg.cni_conf_dir))
    cfg.cni_bin_dir = str(cni.get("bin_dir", cfg.cni_bin_dir))
    cfg.cni_max_conf_num = int(cni.get("max_conf_num", cfg.cni_max_conf_num))
    containerd = _table(section, "containerd")
    cfg.snapshotter = str(containerd.get("snapshotter", cfg.snapshotter))
    runtimes = _table(containerd, "runtimes")
    default = str(containerd.get("default_runtime_name", "runc"))
    runc = runtimes.get(default) or {}
    options = runc.get("options") or {} if isinstance(runc, dict) else {}
    if isinstance(options, dict):
        cfg.runtime_binary = str(options.get("BinaryName", ""))
        cfg.systemd_cgroup = bool(options.get("SystemdCgroup", False))
    registry = _table(section, "registry")
    for host, mirror in _table(registry, "mirrors").items():
        endpoints = mirror.get("endpoint") if isinstance(mirror, dict) else None
        if not isinstance(endpoints, list) or not all(isinstance(e, str) for e in endpoints):
            raise CRIConfigError(f'{PLUGIN_ID}: registry.mirrors."{host}".endpoint must be a list of URLs')
        cfg.mirrors[host] = list(endpoints)
    for host, conf in _table(registry, "configs").items():
        if not isinstance(conf, dict):
            continue
        auth = conf.get("auth")
        if isinstance(auth, dict):
            cfg.auths[host] = {k: str(v) for k, v in auth.items()}
        tls = conf.get("tls")
        if isinstance(tls, dict) and tls.get("insecure_skip_verify"):
            cfg.insecure.append(host)
    return cfg


def plugin_dirs(root: str, state: str) -> tuple[str, str]:
    """The plugin's own directories under the daemon's root and state, as containerd names them."""
    return os.path.join(root, PLUGIN_ID), os.path.join(state, PLUGIN_ID)
