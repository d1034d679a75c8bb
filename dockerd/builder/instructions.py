"""The Dockerfile's instructions as typed values, before variable substitution.

Words are kept as the parser gave them (quotes and `$VAR` still in them): substitution
happens when a step runs, with the environment and build arguments in scope at that step.
`original` is the instruction's text (continuation lines joined), what "Step N/M :" shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heredoc:
    name: str
    content: str
    chomp: bool = False  # "<<-": leading tabs removed


@dataclass(frozen=True)
class Instruction:
    line: int
    original: str

    @property
    def keyword(self) -> str:
        return self.original.split(None, 1)[0].upper() if self.original.strip() else ""


@dataclass(frozen=True)
class From(Instruction):
    base: str
    stage_name: str = ""
    platform: str = ""


@dataclass(frozen=True)
class Arg(Instruction):
    args: tuple[tuple[str, str | None], ...]  # (name, default or None)


@dataclass(frozen=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Run(Instruction):
    command: tuple[str, ...]  # exec form: the argv; shell form: one string
    exec_form: bool
    heredocs: tuple[Heredoc, ...] = ()
    network: str = ""  # RUN --network (BuildKit's), "" when not given


@dataclass(frozen=True)
class Copy(Instruction):
    sources: tuple[str, ...]
    dest: str
    add: bool = False  # ADD: local archives are extracted, URLs accepted
    source_stage: str = ""  # --from
    chown: str = ""
    chmod: str = ""
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str


@dataclass(frozen=True)
class User(Instruction):
    user: str


@dataclass(frozen=True)
class Expose(Instruction):
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Volume(Instruction):
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Command(Instruction):
    """CMD or ENTRYPOINT."""

    command: tuple[str, ...]
    exec_form: bool
    entrypoint: bool = False


@dataclass(frozen=True)
class Healthcheck(Instruction):
    test: tuple[str, ...]  # ("NONE",), ("CMD", ...), ("CMD-SHELL", script)
    interval: int = 0  # ns; 0: not set
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Shell(Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str


@dataclass(frozen=True)
class OnBuild(Instruction):
    expression: str  # the trigger, as written after ONBUILD


@dataclass(frozen=True)
class Maintainer(Instruction):
    name: str


@dataclass
class Stage:
    index: int
    source: From
    commands: list[Instruction] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.stage_name


@dataclass
class Dockerfile:
    meta_args: list[Arg]
    stages: list[Stage]
    escape: str = "\\"

    def stage_index(self, name: str) -> int | None:
        """The stage called NAME (case-insensitive, as Docker), or by its number."""
        lowered = name.lower()
        for stage in self.stages:
            if stage.name and stage.name == lowered:
                return stage.index
        if name.isdigit() and int(name) < len(self.stages):
            return int(name)
        return None
