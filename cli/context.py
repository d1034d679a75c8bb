"""What every command receives: the client (connected lazily), the user's config file and
the errors a command raises to end with a message and an exit code."""

from __future__ import annotations

import json
import os
import sys

from cli.client import Client, Host, TLSConfig, host_from_env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cli.main import GlobalOptions


class CLIError(Exception):
    """End the command: print message (if any) to stderr and exit with status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def config_dir(flag: str | None) -> str:
    """--config beats PYDOCKER_CONFIG beats ~/.pydocker."""
    return flag or os.environ.get("PYDOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".pydocker")


def load_config(directory: str) -> dict[str, Any]:
    """~/.pydocker/config.json; keys used: host, detachKeys, psFormat, imagesFormat,
    statsFormat, tls {ca, cert, key, verify}. A missing file is an empty config."""
    path = os.path.join(directory, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CLIError(f"pydocker: error loading config file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CLIError(f"pydocker: error loading config file {path}: not a JSON object")
    return data


def _tls(gopts: GlobalOptions, config: dict[str, Any]) -> TLSConfig | None:
    conf = config.get("tls") if isinstance(config.get("tls"), dict) else {}
    assert isinstance(conf, dict)
    env_verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    verify = gopts.tlsverify or env_verify or bool(conf.get("verify"))
    if not (gopts.tls or verify or conf):
        return None
    cert_path = os.environ.get("DOCKER_CERT_PATH") or conf.get("certPath")

    def pick(flag: str | None, key: str, filename: str) -> str | None:
        if flag:
            return flag
        if conf.get(key):
            return str(conf[key])
        if cert_path and os.path.exists(os.path.join(cert_path, filename)):
            return os.path.join(cert_path, filename)
        return None

    return TLSConfig(
        ca=pick(gopts.tlscacert, "ca", "ca.pem"),
        cert=pick(gopts.tlscert, "cert", "cert.pem"),
        key=pick(gopts.tlskey, "key", "key.pem"),
        verify=verify,
    )


class Context:
    """The resolved host, TLS settings and user config; the client is created on first use."""

    def __init__(
        self,
        host: Host,
        tls: TLSConfig | None,
        config: dict[str, Any],
        debug: bool = False,
        config_dir: str = "",
    ) -> None:
        self.host = host
        self.tls = tls
        self.config = config
        self.config_dir = config_dir  # where config.json lives (--config, PYDOCKER_CONFIG or ~/.pydocker)
        self.debug = debug
        self._client: Client | None = None

    @classmethod
    def create(cls, gopts: GlobalOptions) -> Context:
        directory = config_dir(gopts.config_dir)
        config = load_config(directory)
        url = host_from_env(gopts.host, config.get("host") if isinstance(config.get("host"), str) else None)
        try:
            host = Host.parse(url)
        except ValueError as exc:
            raise CLIError(f"pydocker: {exc}", 125) from None
        return cls(host=host, tls=_tls(gopts, config), config=config, debug=gopts.debug, config_dir=directory)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.host, self.tls, os.environ.get("DOCKER_API_VERSION") or None)
        return self._client

    def out(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    def close(self) -> None:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            pass

    def config_str(self, key: str) -> str:
        value = self.config.get(key)
        return value if isinstance(value, str) else ""
