"""pyregistry's settings: a TOML file (`--config`) shaped like distribution's config.yml, then flags.

    [http]
    addr = "127.0.0.1:5000"
    [http.tls]
    certificate = "/etc/pyregistry/cert.pem"
    key = "/etc/pyregistry/key.pem"
    [storage]
    rootdirectory = "/var/lib/pyregistry"
    fsync = true                    # sync blobs, links and tags to disk before they become visible
    [storage.delete]
    enabled = true
    [storage.maintenance.readonly]
    enabled = false
    [storage.maintenance.uploadpurging]
    age = "168h"
    [uploads]
    maxsessions = 1024              # more open upload sessions answer 429 TOOMANYREQUESTS
    [auth.htpasswd]
    realm = "pyregistry"
    path = "/etc/pyregistry/htpasswd"
    [auth.token]                    # bearer tokens; credentials still come from auth.htpasswd
    service = "pyregistry"
    issuer = "pyregistry"
    realm = ""                      # default: this server's own /token
    expiration = 300
    secretfile = ""                 # HMAC key; default ROOT/token.key (made on first start)
    [[access]]
    account = "*"                   # fnmatch; "anonymous" for requests without credentials
    repository = "library/*"
    actions = ["pull", "push"]

TOML, not YAML: the standard library reads it (tomllib) and the keys keep distribution's names.
Flags given on the command line override the file. Unknown keys are refused.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.auth import Rule


class ConfigError(Exception):
    pass


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    root: Path = Path("/var/lib/pyregistry")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    realm: str = "pyregistry"
    read_only: bool = False
    delete_enabled: bool = True
    fsync: bool = True
    purge_age: float = 7 * 86400
    max_sessions: int = 1024
    token: bool = False
    token_service: str = "pyregistry"
    token_issuer: str = "pyregistry"
    token_realm: str = ""
    token_expiration: int = 300
    token_secretfile: Path | None = None
    access: list[Rule] = field(default_factory=list)
    log_level: str = "info"


_SCHEMA: dict[str, Any] = {
    "version": str,
    "log": {"level": str},
    "http": {"addr": str, "tls": {"certificate": str, "key": str}},
    "storage": {
        "rootdirectory": str,
        "fsync": bool,
        "delete": {"enabled": bool},
        "maintenance": {"readonly": {"enabled": bool}, "uploadpurging": {"age": str}},
    },
    "uploads": {"maxsessions": int},
    "auth": {
        "htpasswd": {"realm": str, "path": str},
        "token": {"service": str, "issuer": str, "realm": str, "expiration": int, "secretfile": str},
    },
    "access": list,
}


def _check(doc: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    for key, value in doc.items():
        path = f"{where}.{key}" if where else key
        if key not in schema:
            raise ConfigError(f"unknown configuration key {path!r}")
        want = schema[key]
        if isinstance(want, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"configuration key {path!r} must be a table")
            _check(value, want, path)
        elif not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise ConfigError(f"configuration key {path!r} must be of type {want.__name__}")


def parse_addr(addr: str) -> tuple[str, int]:
    """HOST:PORT, [V6]:PORT or :PORT (all interfaces, as distribution's `:5000`)."""
    m = re.match(r"^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$", addr)
    if not m or int(m.group(3)) > 65535:
        raise ConfigError(f"invalid address {addr!r}: want HOST:PORT")
    host = m.group(1) or m.group(2) or "0.0.0.0"
    return host, int(m.group(3))


def parse_duration(text: str) -> float:
    """Go-style durations as distribution writes them: 168h, 30m, 1h30m, 10s."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"invalid duration {text!r} (e.g. 168h, 30m)")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _rules(entries: list[Any]) -> list[Rule]:
    rules = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) - {"account", "repository", "actions"}:
            raise ConfigError(f"access[{i}]: want account, repository and actions")
        account, repository, actions = e.get("account", "*"), e.get("repository", "*"), e.get("actions")
        if not isinstance(account, str) or not isinstance(repository, str):
            raise ConfigError(f"access[{i}]: account and repository must be strings")
        if not isinstance(actions, list) or not all(a in ("pull", "push", "delete", "*") for a in actions):
            raise ConfigError(f"access[{i}]: actions must be a list of pull, push, delete or *")
        rules.append(Rule(account, repository, frozenset(actions)))
    return rules


def load_file(path: Path, s: Settings) -> None:
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read configuration {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration {path}: {e}") from None
    _check(doc, _SCHEMA, "")
    http, storage, auth = doc.get("http", {}), doc.get("storage", {}), doc.get("auth", {})
    if "addr" in http:
        s.host, s.port = parse_addr(http["addr"])
    tls = http.get("tls", {})
    if tls:
        s.tls_cert = Path(tls["certificate"]) if "certificate" in tls else None
        s.tls_key = Path(tls["key"]) if "key" in tls else None
    if "rootdirectory" in storage:
        s.root = Path(storage["rootdirectory"])
    s.fsync = storage.get("fsync", s.fsync)
    s.delete_enabled = storage.get("delete", {}).get("enabled", s.delete_enabled)
    maintenance = storage.get("maintenance", {})
    s.read_only = maintenance.get("readonly", {}).get("enabled", s.read_only)
    if "age" in maintenance.get("uploadpurging", {}):
        s.purge_age = parse_duration(maintenance["uploadpurging"]["age"])
    s.max_sessions = doc.get("uploads", {}).get("maxsessions", s.max_sessions)
    if s.max_sessions < 1:
        raise ConfigError("uploads.maxsessions must be at least 1")
    if "htpasswd" in auth:
        if "path" not in auth["htpasswd"]:
            raise ConfigError("auth.htpasswd.path is required")
        s.htpasswd = Path(auth["htpasswd"]["path"])
        s.realm = auth["htpasswd"].get("realm", s.realm)
    if "token" in auth:
        t = auth["token"]
        s.token = True
        s.token_service = t.get("service", s.token_service)
        s.token_issuer = t.get("issuer", s.token_issuer)
        s.token_realm = t.get("realm", s.token_realm)
        s.token_expiration = t.get("expiration", s.token_expiration)
        if s.token_expiration < 1:
            raise ConfigError("auth.token.expiration must be at least 1 (seconds)")
        if t.get("secretfile"):
            s.token_secretfile = Path(t["secretfile"])
    s.access = _rules(doc.get("access", []))
    if "level" in doc.get("log", {}):
        s.log_level = {"warn": "warning"}.get(doc["log"]["level"], doc["log"]["level"])


def validate(s: Settings) -> None:
    if (s.tls_cert is None) != (s.tls_key is None):
        raise ConfigError("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
    if s.token and s.htpasswd is None and not s.access:
        raise ConfigError("token auth needs an htpasswd file (--htpasswd) or access rules for anonymous")
    if s.access and s.htpasswd is None and not s.token:
        raise ConfigError("access rules need auth: --htpasswd (and optionally [auth.token])")
    if s.log_level not in ("debug", "info", "warning", "error", "critical"):
        raise ConfigError(f"invalid log level {s.log_level!r}")
