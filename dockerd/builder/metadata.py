"""The instructions that only change the image config (ENV, LABEL, CMD, ...): the new config
and the text dockerd's classic builder records for them in the history ("#(nop)  ENV A=1")."""

from __future__ import annotations

import posixpath
import signal
from collections.abc import Mapping
from typing import Any

from dockerd.builder import gotext
from dockerd.builder import instructions as ins
from dockerd.builder.errors import BuildFailed
from dockerd.builder.shell import process_word, process_words

DEFAULT_SHELL = ("/bin/sh", "-c")


def set_env(config: dict[str, Any], key: str, value: str) -> None:
    env = list(config.get("Env") or [])
    for i, item in enumerate(env):
        if item.partition("=")[0] == key:
            env[i] = f"{key}={value}"
            break
    else:
        env.append(f"{key}={value}")
    config["Env"] = env


def env_map(config: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def shell_of(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def command_form(command: ins.Command, config: Mapping[str, Any]) -> list[str]:
    if command.exec_form:
        return list(command.command)
    return [*shell_of(config), " ".join(command.command)] if command.command else []


def _ports(words: list[str]) -> list[str]:
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        low, _, high = port.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise BuildFailed(f"invalid containerPort: {port}") from None
        if proto not in ("tcp", "udp", "sctp") or not 0 < first <= last <= 65535:
            raise BuildFailed(f"invalid port specification: {gotext.quote(word)}")
        out += [f"{p}/{proto}" for p in range(first, last + 1)]
    return out


def _signal(text: str) -> None:
    name = text.upper().removeprefix("SIG")
    if text.isdigit() and 0 < int(text) < 65:
        return
    if not hasattr(signal, f"SIG{name}") and not name.startswith("RTMIN") and not name.startswith("RTMAX"):
        raise BuildFailed(f"Invalid signal: {text}")


def _healthcheck_text(h: ins.Healthcheck) -> str:
    """%v of dockerd's *HealthConfig, which is what its history shows."""
    retries = f"'{chr(h.retries)}'" if 32 <= h.retries < 127 else f"'\\x{h.retries:02x}'"
    durations = " ".join(
        gotext.quote(gotext.duration_string(d)) for d in (h.interval, h.timeout, h.start_period)
    )
    return f"&{{{gotext.quote_list(h.test)} {durations} {retries}}}"


def apply(
    instruction: ins.Instruction, image: dict[str, Any], env: Mapping[str, str], escape: str, cmd_set: bool
) -> str:
    """Change IMAGE (the whole image config; its "config" is the container config) as
    INSTRUCTION says; the text the history records after "#(nop) "."""
    config: dict[str, Any] = image.setdefault("config", {})
    if isinstance(instruction, ins.Env):
        pairs = [(process_word(k, env, escape), process_word(v, env, escape)) for k, v in instruction.pairs]
        for key, value in pairs:
            if not key:
                raise BuildFailed("ENV names can not be blank")
            set_env(config, key, value)
        return "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
    if isinstance(instruction, ins.Label):
        pairs = [(process_word(k, env, escape), process_word(v, env, escape)) for k, v in instruction.pairs]
        labels = dict(config.get("Labels") or {})
        labels.update(pairs)
        config["Labels"] = labels
        return "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
    if isinstance(instruction, ins.Maintainer):
        image["author"] = instruction.name
        return f"MAINTAINER {instruction.name}"
    if isinstance(instruction, ins.Expose):
        words = [w for p in instruction.ports for w in process_words(p, env, escape)]
        ports = dict(config.get("ExposedPorts") or {})
        ports.update({p: {} for p in _ports(words)})
        config["ExposedPorts"] = ports
        return "EXPOSE " + " ".join(words)
    if isinstance(instruction, ins.Volume):
        paths = [process_word(p, env, escape) for p in instruction.paths]
        if any(not p.strip() for p in paths):
            raise BuildFailed("VOLUME specified can not be an empty string")
        volumes = dict(config.get("Volumes") or {})
        volumes.update({p: {} for p in paths})
        config["Volumes"] = volumes
        return f"VOLUME {gotext.value_list(paths)}"
    if isinstance(instruction, ins.User):
        config["User"] = process_word(instruction.user, env, escape)
        return f"USER {config['User']}"
    if isinstance(instruction, ins.StopSignal):
        sig = process_word(instruction.signal, env, escape)
        _signal(sig)
        config["StopSignal"] = sig
        return f"STOPSIGNAL {sig}"
    if isinstance(instruction, ins.Command):
        form = command_form(instruction, config)
        if instruction.entrypoint:
            config["Entrypoint"] = form
            if not cmd_set:
                config["Cmd"] = None
            return f"ENTRYPOINT {gotext.quote_list(form)}"
        config["Cmd"] = form
        return f"CMD {gotext.quote_list(form)}"
    if isinstance(instruction, ins.Healthcheck):
        check: dict[str, Any] = {"Test": list(instruction.test)}
        durations: tuple[tuple[str, int], ...] = (
            ("Interval", instruction.interval), ("Timeout", instruction.timeout),
            ("StartPeriod", instruction.start_period), ("StartInterval", instruction.start_interval),
            ("Retries", instruction.retries),
        )  # fmt: skip
        for field_name, amount in durations:
            if amount:
                check[field_name] = amount
        config["Healthcheck"] = check
        return f"HEALTHCHECK {_healthcheck_text(instruction)}"
    if isinstance(instruction, ins.Shell):
        config["Shell"] = list(instruction.shell)
        return f"SHELL {gotext.value_list(instruction.shell)}"
    if isinstance(instruction, ins.OnBuild):
        config["OnBuild"] = [*(config.get("OnBuild") or []), instruction.expression]
        return f"ONBUILD {instruction.expression}"
    raise BuildFailed(f"not a metadata instruction: {instruction.keyword}")


def workdir(current: str, path: str) -> str:
    """WORKDIR's new directory: absolute, or relative to the current one."""
    if not path:
        raise BuildFailed("cannot normalize nothing")
    joined = path if path.startswith("/") else posixpath.join(current or "/", path)
    return posixpath.normpath(joined)
