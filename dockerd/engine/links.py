"""The environment variables of a legacy `--link TARGET:ALIAS`, as dockerd's links package sets them.

For a link named `/<container>/<alias>` to a target at IP exposing some ports:

    ALIAS_PORT=proto://IP:port                   the lowest port (tcp before udp at equal numbers)
    ALIAS_PORT_<first>_<PROTO>_START=...          per run of consecutive ports: START, ADDR, PROTO,
    ..._ADDR, ..._PROTO, ..._PORT_START,          PORT_START, END, PORT_END (the first port names it)
    ..._END, ..._PORT_END
    ALIAS_PORT_<port>_<PROTO>=proto://IP:port     per port: the URL, ADDR, PORT, PROTO
    ALIAS_NAME=/<container>/<alias>
    ALIAS_ENV_<KEY>=<value>                       the target's own Config.Env (HOME and PATH left out)

ALIAS is the alias upper-cased with "-" as "_" (other characters stay, as dockerd's). The list
may repeat a key (the run's ADDR/PROTO and the first port's): `spec.merged_env` keeps the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Port:
    number: int
    proto: str  # "tcp", "udp", "sctp"

    @classmethod
    def parse(cls, key: str) -> Port:
        number, _, proto = key.partition("/")
        return cls(int(number), (proto or "tcp").lower())


def _order(p: Port) -> tuple[int, int]:
    return p.number, 0 if p.proto == "tcp" else 1


def _run_end(ports: list[Port], index: int) -> int:
    """The index of the last port of the run of consecutive numbers starting at INDEX
    (dockerd's nextContiguous, which looks at numbers only)."""
    value = ports[index].number
    for i in range(index + 1, len(ports)):
        if ports[i].number > value + 1:
            return i - 1
        value += 1
    return len(ports) - 1


def link_env(
    link_name: str, alias: str, ip: str, exposed: Sequence[str], target_env: Sequence[str]
) -> list[str]:
    """The variables of one link: LINK_NAME is "/<container>/<alias>", EXPOSED the target's port keys."""
    prefix = alias.upper().replace("-", "_")
    ports = sorted((Port.parse(k) for k in exposed), key=_order)
    env: list[str] = []
    if ports:
        env.append(f"{prefix}_PORT={ports[0].proto}://{ip}:{ports[0].number}")
    i = 0
    while i < len(ports):
        j = _run_end(ports, i)
        if j > i + 1:  # three ports or more make a run, as dockerd's
            p, q = ports[i], ports[j]
            head = f"{prefix}_PORT_{p.number}_{p.proto.upper()}"
            env += [
                f"{head}_START={p.proto}://{ip}:{p.number}",
                f"{head}_ADDR={ip}",
                f"{head}_PROTO={p.proto}",
                f"{head}_PORT_START={p.number}",
                f"{prefix}_PORT_{p.number}_{q.proto.upper()}_END={q.proto}://{ip}:{q.number}",
                f"{prefix}_PORT_{p.number}_{q.proto.upper()}_PORT_END={q.number}",
            ]
            i = j + 1
        else:
            i += 1
    for p in ports:
        head = f"{prefix}_PORT_{p.number}_{p.proto.upper()}"
        env += [f"{head}={p.proto}://{ip}:{p.number}", f"{head}_ADDR={ip}", f"{head}_PORT={p.number}",
                f"{head}_PROTO={p.proto}"]  # fmt: skip
    env.append(f"{prefix}_NAME={link_name}")
    for item in target_env:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env
