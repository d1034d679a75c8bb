"""pydockerd's command line and daemon.json, with dockerd's names, defaults and errors.

Every setting is a flag and (under the same name) a daemon.json key. As dockerd does, a
key the daemon does not know is refused, and so is a setting given both as a flag and in
the file ("specified both as a flag and in the configuration file").
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine.validate import json_kind

DEFAULT_HOST = "unix:///run/pydocker.sock"
DEFAULT_CONFIG_FILE = "/etc/pydocker/daemon.json"


class ConfigError(Exception):
    """A bad flag or daemon.json: pydockerd prints it and exits 1."""


@dataclass
class Setting:
    key: str  # the daemon.json key; the flag is --KEY
    kind: type  # str, bool, list (of str) or dict (of str)
    default: Any
    help: str
    short: str = ""
    flag: bool = True  # False: daemon.json only (e.g. log-opts, whose flag is --log-opt)
    long: str = ""  # the flag when it is not --KEY (hosts: --host)
    item: type = str  # a dict's values: str, or dict (default-ulimits' {"Name", "Soft", "Hard"} objects)


SETTINGS = [
    Setting(
        "hosts",
        list,
        [],
        "daemon socket(s): unix:///path, tcp://HOST:PORT (TLS), fd:// (systemd)",
        short="-H",
        long="--host",
    ),
    Setting("data-root", str, "/var/lib/pydocker", "root of persistent state"),
    Setting("exec-root", str, "/run/pydocker", "root of run-time state"),
    Setting(
        "pidfile", str, "", "path of the daemon's pid file (default EXEC-ROOT/pydockerd.pid)", short="-p"
    ),
    Setting("group", str, "docker", "group of the unix sockets"),
    Setting("cgroup-parent", str, "/pydocker", "parent cgroup of every container"),
    Setting("containerd", str, "", "pycontainerd socket; without it pydockerd starts its own"),
    Setting("log-level", str, "info", "debug, info, warn, error or fatal", short="-l"),
    Setting("debug", bool, False, "debug logging", short="-D"),
    Setting("tls", bool, False, "serve TLS on tcp:// (implied by --tlsverify)"),
    Setting("tlsverify", bool, False, "serve TLS and require client certificates signed by --tlscacert"),
    Setting("tlscacert", str, "", "CA that signs the client certificates (default ~/.docker/ca.pem)"),
    Setting("tlscert", str, "", "server certificate (default ~/.docker/cert.pem)"),
    Setting("tlskey", str, "", "server key (default ~/.docker/key.pem)"),
    Setting(
        "allow-insecure-tcp",
        bool,
        False,
        "serve tcp:// without TLS client verification (root access for anyone who can connect)",
    ),
    Setting("metrics-addr", str, "", "HOST:PORT serving Prometheus metrics at /metrics"),
    Setting("log-driver", str, "json-file", "default logging driver of containers (json-file or none)"),
    Setting("log-opts", dict, {}, "default options of the logging driver", flag=False),
    Setting("live-restore", bool, True, "keep containers running while the daemon is down (always on)"),
    Setting(
        "insecure-registries",
        list,
        [],
        "registries reached over plain HTTP when HTTPS fails (loopback always is)",
        long="--insecure-registry",
    ),
    Setting(
        "registry-mirrors",
        list,
        [],
        "mirrors tried first for docker.io pulls (URLs)",
        long="--registry-mirror",
    ),
    Setting(
        "default-registry",
        str,
        "docker.io",
        "where unqualified names (busybox) are pulled from and pushed to",
    ),
    Setting(
        "seccomp-profile",
        str,
        "",
        'seccomp profile of containers: a JSON file, "unconfined" or "builtin" (default: Docker\'s)',
    ),
    Setting("no-new-privileges", bool, False, "set no_new_privs on every container's processes"),
    Setting("default-ulimits", dict, {}, "default ulimits of containers", flag=False, item=dict),
    Setting(
        "userns-remap",
        str,
        "",
        "user/group whose subordinate ranges containers' ids map to (not supported yet: refused at start)",
    ),
    Setting(
        "runtimes",
        dict,
        {},
        'OCI runtimes: {"NAME": {"path": PATH, "runtimeArgs": [...]}} (flag: --add-runtime)',
        flag=False,
        item=dict,
    ),
    Setting("default-runtime", str, "runc", "the OCI runtime of containers created without --runtime"),
    Setting(
        "cpu-rt-period",
        int,
        0,
        "cpu.rt_period_us of the containers' parent cgroups (microseconds; 0: leave it)",
    ),
    Setting(
        "cpu-rt-runtime",
        int,
        0,
        "cpu.rt_runtime_us of the containers' parent cgroups (microseconds; 0: leave it)",
    ),
    # networking (dockerd/network/): dockerd's names
    Setting(
        "bridge",
        str,
        "",
        "the default bridge network's Linux bridge (default: pydocker0, or one named from --exec-root)",
        short="-b",
    ),
    Setting("bip", str, "", "the default bridge's address and prefix (e.g. 192.168.5.1/24)"),
    Setting("fixed-cidr", str, "", "the default bridge's range of container addresses"),
    Setting(
        "default-address-pools",
        list,
        [],
        'pools of networks: [{"base": "10.10.0.0/16", "size": 24}]',
        flag=False,
        item=dict,
    ),
    Setting("iptables", bool, True, "NAT, filtering and published ports through iptables"),
    Setting("ip-forward", bool, True, "set net.ipv4.ip_forward=1 for bridge networks"),
    Setting("icc", bool, True, "traffic between containers of the default bridge"),
    Setting("userland-proxy", bool, True, "a proxy process per published port (loopback connections)"),
    Setting("mtu", int, 0, "MTU of the default bridge's interfaces (0: 1500)"),
    Setting("dns", list, [], "DNS servers of every container", long="--dns"),
    Setting("dns-search", list, [], "DNS search domains of every container", long="--dns-search"),
    Setting("dns-opts", list, [], "DNS options of every container", long="--dns-opt"),
    # pydockerd's own: dockerd's directories are fixed; settable here so a test's plugins stay its own
    Setting(
        "volume-plugin-dirs",
        list,
        [],
        "where volume plugins' sockets and .spec/.json files are found (default: dockerd's /run/docker/plugins, /etc/docker/plugins, /usr/lib/docker/plugins)",
        long="--volume-plugin-dir",
    ),
]
BY_KEY = {s.key: s for s in SETTINGS}
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal", "panic")


@dataclass
class Options:
    values: dict[str, Any] = field(default_factory=dict)
    config_file: str = ""
    version: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def _parser(suppress: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pydockerd", description="The Docker Engine API over pycontainerd.")
    none = argparse.SUPPRESS if suppress else None
    for s in SETTINGS:
        if not s.flag:
            continue
        long = s.long or f"--{s.key}"
        names = [s.short, long] if s.short else [long]
        if s.kind is bool:
            # Go's boolean flags: --tlsverify, or --tlsverify=false (dockerd reads an explicit false as intent)
            p.add_argument(
                *names, dest=s.key, nargs="?", const=True, type=_bool, metavar="", default=argparse.SUPPRESS if suppress else False,
                help=s.help,
            )  # fmt: skip
        elif s.kind is list:
            p.add_argument(*names, dest=s.key, action="append", default=none, metavar="HOST", help=s.help)
        elif s.kind is int:
            p.add_argument(*names, dest=s.key, type=int, default=none, help=s.help)
        else:
            p.add_argument(*names, dest=s.key, default=none, help=s.help)
    p.add_argument(
        "--log-opt",
        dest="log-opts",
        action="append",
        default=none,
        metavar="KEY=VALUE",
        help="default options of the logging driver",
    )
    p.add_argument(
        "--default-ulimit",
        dest="default-ulimits",
        action="append",
        default=none,
        metavar="NAME=SOFT[:HARD]",
        help="default ulimits of containers",
    )
    # Merged with daemon.json's `runtimes` (dockerd allows both), so not the same key.
    p.add_argument(
        "--add-runtime",
        dest="add-runtime",
        action="append",
        default=none,
        metavar="NAME=PATH",
        help="register an OCI runtime",
    )
    p.add_argument(
        "--config-file", dest="config-file", default=none, help=f"daemon.json (default {DEFAULT_CONFIG_FILE})"
    )
    p.add_argument(
        "-v",
        "--version",
        dest="version",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
    )
    return p


def _bool(text: str) -> bool:
    value = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")
    return value


def parse(argv: list[str] | None) -> Options:
    """Flags, then daemon.json; raises ConfigError with dockerd's wording."""
    explicit = vars(_parser(suppress=True).parse_args(argv))
    version = bool(explicit.pop("version", False))
    config_file = explicit.pop("config-file", None)
    if "log-opts" in explicit:
        explicit["log-opts"] = _key_values(explicit["log-opts"])
    if "default-ulimits" in explicit:
        explicit["default-ulimits"] = {
            u["Name"]: u for u in (parse_ulimit(text) for text in explicit["default-ulimits"])
        }
    added_runtimes = explicit.pop("add-runtime", None) or []
    values = {
        s.key: (list(s.default) if s.kind is list else dict(s.default) if s.kind is dict else s.default)
        for s in SETTINGS
    }
    values.update(explicit)
    path = config_file or DEFAULT_CONFIG_FILE
    used = bool(config_file) or os.path.exists(path)  # the default file is optional, a named one is not
    from_file = _read_config_file(path) if used else {}
    conflicts = [
        f"{k}: (from flag: {_go(explicit[k])}, from file: {_go(v)})"
        for k, v in from_file.items()
        if k in explicit
    ]
    if conflicts:
        raise ConfigError(
            f"unable to configure the Docker daemon with file {path}: the following directives are specified both "
            f"as a flag and in the configuration file: {', '.join(conflicts)}"
        )
    values.update(from_file)
    values["add-runtime"] = list(added_runtimes)
    # As dockerd's checkTLSAuthOK: --tls=false or --tlsverify=false, said explicitly, is the
    # user asking for plain TCP (as --allow-insecure-tcp is).
    said = {**from_file, **explicit}
    if ("tls" in said or "tlsverify" in said) and not values["tls"] and not values["tlsverify"]:
        values["allow-insecure-tcp"] = True
    _check(values)
    return Options(values=values, config_file=path if used else "", version=version)


def _key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"invalid key/value pair {item!r}: want KEY=VALUE")
        out[key] = value
    return out


def _read_config_file(path: str) -> dict[str, Any]:
    prefix = f"unable to configure the Docker daemon with file {path}"
    try:
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{prefix}: open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(f"{prefix}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: the configuration must be a JSON object")
    unknown = sorted(k for k in data if k not in BY_KEY)
    if unknown:
        raise ConfigError(
            f"{prefix}: the following directives don't match any configuration option: {', '.join(unknown)}"
        )
    for key, value in data.items():
        kind = BY_KEY[key].kind
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if ok and kind is list:
            ok = all(isinstance(v, BY_KEY[key].item) for v in value)
        if ok and kind is dict:
            ok = all(isinstance(v, BY_KEY[key].item) for v in value.values())
        if not ok:
            want = {str: "string", bool: "bool", int: "int64", list: "[]string", dict: "map[string]string"}[
                kind
            ]
            if key == "runtimes":
                want = "map[string]types.Runtime"
            elif BY_KEY[key].item is dict:
                want = "map[string]*units.Ulimit"
            raise ConfigError(
                f"{prefix}: json: cannot unmarshal {json_kind(value)} into Go struct field Config.{key} of type {want}"
            )
    if "default-ulimits" in data:
        data["default-ulimits"] = {
            name: _ulimit_object(prefix, name, u) for name, u in data["default-ulimits"].items()
        }
    if "runc" in (data.get("runtimes") or {}):
        raise ConfigError(
            f"{prefix}: configuration validation from file failed: runtime name 'runc' is reserved"
        )
    return data


# The names Docker's --ulimit and --default-ulimit accept (go-units' ulimitNameMapping).
ULIMIT_NAMES = (
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio",
    "rttime", "sigpending", "stack",
)  # fmt: skip


def parse_ulimit(text: str) -> dict[str, Any]:
    """NAME=SOFT[:HARD], as go-units' ParseUlimit (dockerd's --default-ulimit)."""
    name, eq, limits = text.partition("=")
    if not eq:
        raise ConfigError(
            f'invalid argument {text!r} for "--default-ulimit" flag: invalid ulimit argument: {text}'
        )
    if name not in ULIMIT_NAMES:
        raise ConfigError(
            f'invalid argument {text!r} for "--default-ulimit" flag: invalid ulimit type: {name}'
        )
    soft_text, colon, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise ConfigError(
            f'invalid argument {text!r} for "--default-ulimit" flag: invalid ulimit argument: {text}'
        ) from None
    if soft > hard:
        raise ConfigError(
            f'invalid argument {text!r} for "--default-ulimit" flag: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}'
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def _ulimit_object(prefix: str, key: str, value: dict[str, Any]) -> dict[str, Any]:
    """A daemon.json default-ulimits entry: {"Name": ..., "Hard": N, "Soft": N}, Go's field names
    matched case-insensitively as encoding/json does."""
    fields = {k.lower(): v for k, v in value.items()}
    name, hard, soft = fields.get("name", ""), fields.get("hard", 0), fields.get("soft", 0)
    for field_name, item, kind, want in (
        ("Name", name, str, "string"),
        ("Hard", hard, int, "int64"),
        ("Soft", soft, int, "int64"),
    ):
        if not isinstance(item, kind) or isinstance(item, bool):
            raise ConfigError(
                f"{prefix}: json: cannot unmarshal {json_kind(item)} into Go struct field Ulimit.{field_name} of type {want}"
            )
    if name not in ULIMIT_NAMES:
        raise ConfigError(f"{prefix}: invalid ulimit type: {name or key}")
    if soft > hard:
        raise ConfigError(
            f"{prefix}: ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def _go(value: Any) -> str:
    """A value as Go's %v prints it (dockerd's conflict message)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _check(values: dict[str, Any]) -> None:
    if values["log-level"] not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {values['log-level']}")
    if not values["live-restore"]:
        raise ConfigError(
            "live-restore cannot be turned off: pydockerd always keeps containers running across its restarts"
        )
    if values["tlsverify"]:
        values["tls"] = True
    if values["tls"]:
        # As dockerd: missing paths default to the files in DOCKER_CERT_PATH or ~/.docker.
        cert_dir = os.environ.get("DOCKER_CERT_PATH") or os.path.join(os.path.expanduser("~"), ".docker")
        for key, name in (("tlscacert", "ca.pem"), ("tlscert", "cert.pem"), ("tlskey", "key.pem")):
            if not values[key] and (key != "tlscacert" or values["tlsverify"]):
                values[key] = os.path.join(cert_dir, name)
    values["hosts"] = [normalize_host(h) for h in values["hosts"]] or [DEFAULT_HOST]
    from dockerd.engine.runtimes import RuntimeConfigError, from_settings

    try:
        from_settings(values["runtimes"], values["add-runtime"], values["default-runtime"], "")
    except RuntimeConfigError as exc:
        raise ConfigError(str(exc)) from None
    # Per exec root, so that daemons on different roots never fight over one pid file.
    values["pidfile"] = values["pidfile"] or os.path.join(values["exec-root"], "pydockerd.pid")


def normalize_host(host: str) -> str:
    """dockerd's -H forms: unix:///path, unix:// (the default socket), tcp://HOST:PORT,
    HOST:PORT or :PORT (tcp), fd:// and fd://N."""
    host = host.strip()
    if host.startswith("unix://"):
        return host if len(host) > len("unix://") else DEFAULT_HOST
    if host.startswith("fd://"):
        rest = host[len("fd://") :]
        if rest and not rest.isdigit():
            raise ConfigError(f"invalid bind address format: {host}")
        return host
    if host.startswith("tcp://") or "://" not in host:
        hostport = host.removeprefix("tcp://")
        h, sep, port = hostport.rpartition(":")
        if not sep:
            h, port = hostport, "2376"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"invalid bind address format: {host}")
        return f"tcp://{h or '127.0.0.1'}:{port}"
    raise ConfigError(f"invalid bind address format: {host}")
