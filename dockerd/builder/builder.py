"""The classic builder's dispatch loop on pycontainerd.

    builder = Builder(client, BuilderConfig(tmp_dir=..., docker_version=...))
    job = builder.prepare(body, BuildOptions(tags=["app:1"]))   # BuildRequestError: HTTP status
    try:
        result = job.run(progress)                               # BuildFailed: the stream's error
    finally:
        job.close()

prepare() unpacks the context and parses the Dockerfile, so everything dockerd refuses before
its stream starts is refused there. run() walks the stages up to the target, one step per
instruction: the step's cache key is looked up first (parent image ID + what the step does,
with the source checksums of a COPY); on a miss the step runs (RUN in a container, COPY/ADD
onto a snapshot, the others on the config alone), its layer is diffed and its image stored,
and the cache records it. Everything the build makes is held by one lease, deleted at the
end, so what no image or cache record keeps (work snapshots, a failed step's layer) goes with
it; build containers are removed as each RUN ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any, Protocol

from containerd.client import (
    ContainerdError,
    Descriptor,
    Image,
    InvalidArgument,
    NotFound,
    Platform,
    create_or_update_image,
    familiar_name,
    get_image,
    host_platform,
    list_images,
    normalize_name,
    unpack,
)
from dockerd.builder import gotext, metadata
from dockerd.builder import image as images
from dockerd.builder import instructions as ins
from dockerd.builder.cache import BuildCache, cache_key
from dockerd.builder.cachefrom import CacheSources
from dockerd.builder.context import BuildContext, open_context
from dockerd.builder.contexts import ContextCache
from dockerd.builder.copier import CopyOptions, Inline, SourceRoot, checksum, copy_into, expand_sources
from dockerd.builder.errors import BuildFailed, BuildRequestError
from dockerd.builder.layers import Layers, new_key
from dockerd.builder.options import PROXY_ARGS, SOURCE_DATE_EPOCH, BuildOptions, BuildResult, Progress
from dockerd.builder.parse import heredoc_script, parse_dockerfile, parse_line
from dockerd.builder.recovery import LABEL_LEASE
from dockerd.builder.runner import Prepared, Runner, RunRequest, RunSettings, _user_ids
from dockerd.builder.shell import process_word

if TYPE_CHECKING:
    from containerd.client import Client

BUILD_LEASE_TTL = timedelta(hours=24)
_RED, _RESET = "\x1b[91m", "\x1b[0m"


class ImageSource(Protocol):
    """Where FROM and COPY --from=<image> find images: the target descriptor of REF (a
    reference or an image ID), pulled first if `pull` or if it is missing, when the source
    can pull (pydockerd's distribution code). Raises BuildFailed with the reason."""

    def resolve(self, ref: str, *, pull: bool, platform: Platform, progress: Progress) -> Descriptor: ...


class LocalImages:
    """Images already in pycontainerd, by reference or by (short) image ID; no pulling."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def resolve(self, ref: str, *, pull: bool, platform: Platform, progress: Progress) -> Descriptor:
        try:
            return get_image(self.client, normalize_name(ref)).target
        except (NotFound, InvalidArgument):
            pass
        short = ref.removeprefix("sha256:")
        if len(short) >= 6 and all(c in "0123456789abcdef" for c in short):
            for image in list_images(self.client):
                with contextlib.suppress(ContainerdError):
                    if (
                        images.load_image(self.client, image.target, platform)
                        .id.removeprefix("sha256:")
                        .startswith(short)
                    ):
                        return image.target
        raise BuildFailed(
            f"pull access denied for {ref}, repository does not exist or may require 'docker login'"
        )


@dataclass
class BuilderConfig:
    snapshotter: str = "overlayfs"
    tmp_dir: str | None = None  # contexts, mounts, RUN's files (pydockerd's <data-root>/tmp)
    docker_version: str = ""  # recorded in image configs
    dangling_prefix: str = "moby-dangling"  # the record name of an untagged image: <prefix>@<manifest digest>
    run: RunSettings = field(default_factory=RunSettings)
    image_source: ImageSource | None = None  # default: LocalImages
    contexts: ContextCache | None = None  # unpacked contexts kept for the next build of the same bytes


class Builder:
    def __init__(self, client: Client, config: BuilderConfig | None = None) -> None:
        self.client = client
        self.config = config or BuilderConfig()
        self.cache = BuildCache(client, self.config.snapshotter)
        self.images: ImageSource = self.config.image_source or LocalImages(client)

    def prepare(self, body: IO[bytes], options: BuildOptions) -> BuildJob:
        """Check the request, unpack the context and parse the Dockerfile (BuildRequestError)."""
        names = [_tag_name(tag) for tag in options.tags]
        platform = host_platform()
        if options.platform and not platform.matches(_platform(options.platform)):
            raise BuildRequestError(
                f"platform {options.platform} is not supported: this builder builds for {platform}"
            )
        epoch = _epoch(options.build_args.get(SOURCE_DATE_EPOCH))
        contexts = self.config.contexts
        opener = contexts.open if contexts is not None else open_context
        context = opener(body, options.dockerfile, self.config.tmp_dir)
        try:
            dockerfile = parse_dockerfile(context.dockerfile, options.dockerfile)
            last = len(dockerfile.stages) - 1
            if options.target:
                found = dockerfile.stage_index(options.target)
                if found is None or not dockerfile.stages[found].name:
                    raise BuildRequestError(f"failed to reach build target {options.target} in Dockerfile")
                last = found
        except BaseException:
            context.close()
            raise
        return BuildJob(self, context, dockerfile, options, names, last, platform, epoch)

    def build(self, body: IO[bytes], options: BuildOptions, progress: Progress) -> BuildResult:
        job = self.prepare(body, options)
        try:
            return job.run(progress)
        finally:
            job.close()


def _tag_name(tag: str) -> str:
    try:
        name = normalize_name(tag)
    except InvalidArgument as exc:
        text = str(exc)
        raise BuildRequestError(
            "invalid reference format"
            + (": repository name must be lowercase" if "lowercase" in text else "")
        ) from None
    if "@" in name:
        raise BuildRequestError("invalid reference format")
    return name


def _platform(text: str) -> Platform:
    parts = text.split("/")
    return Platform(parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else "")


def _epoch(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        epoch = int(value)
    except ValueError:
        raise BuildRequestError(f"invalid SOURCE_DATE_EPOCH: {value}") from None
    if epoch < 0:
        raise BuildRequestError(f"invalid SOURCE_DATE_EPOCH: {value}")
    return epoch


@dataclass
class _Stage:
    image: images.ImageState
    args: dict[str, str | None] = field(default_factory=dict)  # declared in the stage
    cmd_set: bool = False


class BuildJob:
    def __init__(
        self,
        builder: Builder,
        context: BuildContext,
        dockerfile: ins.Dockerfile,
        options: BuildOptions,
        names: list[str],
        last_stage: int,
        platform: Platform,
        epoch: int | None,
    ) -> None:
        self.builder = builder
        self.client = builder.client
        self.context = context
        self.dockerfile = dockerfile
        self.options = options
        self.names = names
        self.last = last_stage
        self.platform = platform
        self.epoch = epoch
        self.layers = Layers(self.client, builder.config.snapshotter, builder.config.tmp_dir)
        settings = builder.config.run
        self.runner = Runner(
            self.client,
            self.layers,
            RunSettings(
                runtime=settings.runtime,
                cgroup_parent=settings.cgroup_parent,
                network_mode=options.network_mode,
                extra_hosts=tuple(options.extra_hosts),
                host_config=options.host_config(),
                security=settings.security,
                network_hook=settings.network_hook,
            ),  # fmt: skip
            builder.config.tmp_dir or "/tmp",
        )
        self.used_args: set[str] = set()
        self.stage_results: list[images.ImageState] = []
        self.progress: Progress = lambda message: None
        stages = dockerfile.stages[: last_stage + 1]
        self.total = (
            len(dockerfile.meta_args)
            + sum(1 + len(s.commands) for s in stages)
            + (1 if options.labels else 0)
        )
        self.step = 0
        self.cache_sources = CacheSources(self.client, options.cache_from, self.layers.snapshotter, platform)
        self.cancelled = threading.Event()  # the client went away: stop at the next step

    def close(self) -> None:
        self.context.close()

    # --- output ---

    def say(self, text: str) -> None:
        self.progress({"stream": text})

    def _step(self, instruction: ins.Instruction) -> None:
        if self.cancelled.is_set():
            raise BuildFailed("context canceled")
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {instruction.original}")
        self.say("\n")

    # --- the build ---

    def run(self, progress: Progress) -> BuildResult:
        """Build; BuildFailed (its stream_message() is the stream's last message) on failure."""
        self.progress = progress
        with self.client.lease(ttl=BUILD_LEASE_TTL, labels={LABEL_LEASE: "build"}):
            try:
                meta = self._meta_args()
                for stage in self.dockerfile.stages[: self.last + 1]:
                    self.stage_results.append(self._stage(stage, meta))
                    progress({"aux": {"ID": self.stage_results[-1].id}})
            except ContainerdError as exc:
                raise BuildFailed(str(exc)) from None
            final = self.stage_results[-1]
            if final.manifest is None:
                final = images.write_image(self.client, final, self.layers.snapshotter)
            names = self._name(final)
        unused = sorted(
            k
            for k in self.options.build_args
            if k not in self.used_args and k not in PROXY_ARGS and k != SOURCE_DATE_EPOCH
        )
        if unused:
            self.say(f"[Warning] One or more build-args {gotext.value_list(unused)} were not consumed\n")
        self.say(f"Successfully built {final.short_id}\n")
        for name in self.names:
            self.say(f"Successfully tagged {familiar_name(name)}\n")
        assert final.manifest is not None
        return BuildResult(final.id, final.manifest, names, [s.id for s in self.stage_results])

    def _name(self, final: images.ImageState) -> list[str]:
        assert final.manifest is not None
        names = self.names or [f"{self.builder.config.dangling_prefix}@{final.manifest.digest}"]
        for name in names:
            create_or_update_image(self.client, Image(name, final.manifest))
        return names

    def _meta_args(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arg in self.dockerfile.meta_args:
            self._step(arg)
            for name, default in arg.args:
                given = self.options.build_args.get(name)
                if name in self.options.build_args and given is not None:
                    values[name] = given
                    self.used_args.add(name)
                elif default is not None:
                    values[name] = process_word(default, values, self.dockerfile.escape)
        return values

    def _stage(self, stage: ins.Stage, meta: dict[str, str]) -> images.ImageState:
        self._step(stage.source)
        base = process_word(stage.source.base, meta, self.dockerfile.escape)
        state = _Stage(self._base_image(base, stage.index))
        self.say(f" ---> {state.image.short_id}\n")
        self._meta = meta
        triggers = list(state.image.run_config.get("OnBuild") or [])
        if triggers:
            state.image = state.image.child()
            state.image.run_config["OnBuild"] = None
            state.image.id, state.image.manifest = "", None
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in triggers:
                self._dispatch(parse_line(trigger, stage.source.line), state, stage.index)
        for instruction in stage.commands:
            self._step(instruction)
            self._dispatch(instruction, state, stage.index)
            self.say(f" ---> {state.image.short_id}\n")
        if stage.index == self.last and self.options.labels:
            label = ins.Label(0, "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.options.labels.items())),
                              tuple((_literal(k), _literal(v)) for k, v in sorted(self.options.labels.items())))  # fmt: skip
            self._step(label)
            self._dispatch(label, state, stage.index)
            self.say(f" ---> {state.image.short_id}\n")
        if state.image.manifest is None:
            state.image = images.write_image(self.client, state.image, self.layers.snapshotter)
        return state.image

    def _base_image(self, base: str, index: int) -> images.ImageState:
        found = self.dockerfile.stage_index(base) if base else None
        if found is not None and found < index and self.dockerfile.stages[found].name == base.lower():
            return self.stage_results[found]
        if base == "scratch":
            return images.scratch(self.platform)
        return self._image(base)

    def _image(self, ref: str) -> images.ImageState:
        target = self.builder.images.resolve(
            ref, pull=self.options.pull, platform=self.platform, progress=self.progress
        )
        state = images.load_image(self.client, target, self.platform)
        unpack(self.client, target, self.layers.snapshotter, platform=self.platform)
        return state

    # --- one instruction ---

    def _env(self, state: _Stage) -> dict[str, str]:
        """What $VAR sees: the image's environment, and the stage's ARGs it does not override."""
        env = metadata.env_map(state.image.run_config)
        for name, value in state.args.items():
            if value is not None and name not in env:
                env[name] = value
        return env

    def _dispatch(self, instruction: ins.Instruction, state: _Stage, stage_index: int) -> None:
        if isinstance(instruction, ins.Arg):
            self._arg(instruction, state)
        elif isinstance(instruction, ins.Run):
            self._run(instruction, state)
        elif isinstance(instruction, ins.Copy):
            self._copy(instruction, state, stage_index)
        elif isinstance(instruction, ins.Workdir):
            self._workdir(instruction, state)
        else:
            child = state.image.child()
            text = metadata.apply(
                instruction, child.config, self._env(state), self.dockerfile.escape, state.cmd_set
            )
            if isinstance(instruction, ins.Command) and not instruction.entrypoint:
                state.cmd_set = True
            self._commit(state, child, "#(nop)  " + text, text)

    def _arg(self, arg: ins.Arg, state: _Stage) -> None:
        parts = []
        for name, default in arg.args:
            self.used_args.add(name)
            given = self.options.build_args.get(name)
            if name in self.options.build_args and given is not None:
                value: str | None = given
            elif default is not None:
                value = process_word(default, self._env(state), self.dockerfile.escape)
            else:
                value = self._meta.get(name)
            state.args[name] = value
            parts.append(f"{name}={default}" if default is not None else name)
        text = "ARG " + " ".join(parts)
        self._commit(state, state.image.child(), "#(nop)  " + text, text)

    def _created(self) -> str:
        return images.rfc3339(epoch=self.epoch)

    def _commit(
        self,
        state: _Stage,
        child: images.ImageState,
        nop: str | None,
        cache_text: str,
        *,
        command: list[str] | None = None,
        layer: Callable[[images.ImageState], tuple[Descriptor, str] | None] | None = None,
        container: list[str] | None = None,
        config_container: bool = True,
    ) -> None:
        """Store the step's image (cached if the cache has it): CHILD's config changes, the
        history entry, and, if LAYER is given, the layer it makes (run only on a cache miss).
        CONTAINER: RUN's (it announces its own); otherwise, unless CONFIG_CONTAINER is false
        (COPY, ADD), the step is announced as dockerd's, which commits a step that only changes
        the config (or makes WORKDIR's directory) from a container it creates and removes."""
        parent = state.image
        # dockerd records a config-only step with the shell as the step leaves it (SHELL's own
        # entry already names the new shell).
        shell = metadata.shell_of(child.run_config)
        cmd = command if command is not None else [*shell, nop or ""]
        created_by = " ".join(cmd)
        key = cache_key(parent.id, json.dumps([created_by, cache_text, self.epoch, str(self.platform)]))
        if not self.options.no_cache:
            record = self.builder.cache.get(key)
            if record is not None:
                self.say(" ---> Using cache\n")
                state.image = images.load_image(self.client, record.manifest, self.platform)
                return
            restored = self.cache_sources.restore(self.builder.images, parent, child, created_by)
            if restored is not None:
                self.say(" ---> Using cache\n")
                if restored.manifest is None and self.builder.config.docker_version:
                    restored.config["docker_version"] = self.builder.config.docker_version
                stored = (
                    restored
                    if restored.manifest is not None
                    else images.write_image(self.client, restored, self.layers.snapshotter)
                )
                assert stored.manifest is not None
                made_layer = len(stored.diff_ids) > len(parent.diff_ids)
                self.builder.cache.put(
                    key, stored.id, stored.manifest, parent.id, created_by, stored.chain if made_layer else ""
                )
                state.image = stored
                return
        container_id = ""
        if container is not None:
            made = layer(child) if layer is not None else None
            container_id = container[0] if container else ""
        elif config_container:
            container_id = secrets.token_hex(32)
            made = self._in_container(container_id, lambda: layer(child) if layer is not None else None)
        else:
            made = layer(child) if layer is not None else None
        if made is not None:
            images.add_layer(child, made[0], made[0].digest)
        created = self._created()
        child.config["created"] = created
        if self.builder.config.docker_version:
            child.config["docker_version"] = self.builder.config.docker_version
        child.run_config["Image"] = parent.id
        container_config = dict(child.run_config)
        container_config["Cmd"] = cmd
        container_config["Hostname"] = container_id[:12] if self.epoch is None else ""
        child.config["container_config"] = container_config
        child.config.pop("container", None)
        if container_id and self.epoch is None:
            child.config["container"] = container_id
        images.add_history(child, {"created": created, "created_by": created_by, "empty_layer": made is None})
        stored = images.write_image(self.client, child, self.layers.snapshotter)
        assert stored.manifest is not None
        chain = stored.chain if made is not None else ""
        self.builder.cache.put(key, stored.id, stored.manifest, parent.id, created_by, chain)
        state.image = stored

    def _in_container(
        self, container_id: str, work: Callable[[], tuple[Descriptor, str] | None]
    ) -> tuple[Descriptor, str] | None:
        """WORK, then the container lines dockerd prints for a step it commits from a container
        of its own (kept with rm=0). pydockerd needs no container for it: the ID only names
        the step. A failure comes first, as dockerd's (WORKDIR makes its directory before)."""
        made = work()
        self.say(f" ---> Running in {container_id[:12]}\n")
        if self.options.remove:
            self.say(f"Removing intermediate container {container_id[:12]}\n")
        return made

    # --- RUN ---

    def _run(self, run: ins.Run, state: _Stage) -> None:
        config = state.image.run_config
        shell = metadata.shell_of(config)
        if run.exec_form:
            argv = list(run.command)
        elif run.heredocs:
            argv = [*shell, heredoc_script(run)]
        else:
            argv = [*shell, run.command[0] if run.command else ""]
        env = metadata.env_map(config)
        declared = sorted(f"{k}={v}" for k, v in state.args.items() if v is not None and k not in env)
        prefix = [f"|{len(declared)}", *declared] if declared else []
        proxies = [
            f"{k}={v}"
            for k, v in self.options.build_args.items()
            if k in PROXY_ARGS and v is not None and k not in state.args
        ]
        request = RunRequest(
            argv=argv,
            env=[*(config.get("Env") or []), *declared, *proxies],
            workdir=config.get("WorkingDir") or "/",
            user=config.get("User") or "",
            network_mode=run.network,
        )
        container: list[str] = []

        def make_layer(child: images.ImageState) -> tuple[Descriptor, str] | None:
            with self.runner.container_root(state.image.chain, request) as prepared:
                self._execute(prepared, request, container)
                desc = self.layers.diff(prepared.init, prepared.mounts, self.epoch)
            if desc is None:
                return None
            self.layers.materialize(state.image.diff_ids, desc)
            return desc, desc.digest

        self._commit(
            state,
            state.image.child(),
            None,
            "RUN " + run.network,
            command=[*prefix, *argv],
            layer=make_layer,
            container=container,
        )

    def _execute(self, prepared: Prepared, request: RunRequest, container: list[str]) -> None:
        def output(stream: str, data: bytes) -> None:
            text = data.decode(errors="replace")
            self.say(f"{_RED}{text}{_RESET}" if stream == "stderr" else text)

        def announce(cid: str) -> None:
            container.append(cid)
            self.say(f" ---> Running in {cid[:12]}\n")

        # Build containers are pycontainerd's, never Docker containers, so they always go; the
        # line is printed when dockerd would remove its container: rm after success, forcerm
        # whatever happened (with rm=0, or a failure without forcerm, dockerd keeps it).
        removed = f"Removing intermediate container {prepared.container_id[:12]}\n"
        try:
            self.runner.run(prepared, request, output, announce)
        except BuildFailed:
            if self.options.force_remove and container:
                self.say(removed)
            raise
        if self.options.remove:
            self.say(removed)

    # --- WORKDIR ---

    def _workdir(self, instruction: ins.Workdir, state: _Stage) -> None:
        path = metadata.workdir(
            state.image.run_config.get("WorkingDir") or "",
            process_word(instruction.path, self._env(state), self.dockerfile.escape),
        )
        child = state.image.child()
        child.run_config["WorkingDir"] = path

        def make_layer(child: images.ImageState) -> tuple[Descriptor, str] | None:
            return self._on_snapshot(state.image, lambda root: _mkdir(root, path))

        self._commit(state, child, f"#(nop) WORKDIR {path}", f"WORKDIR {path}", layer=make_layer)

    def _on_snapshot(
        self, parent: images.ImageState, change: Callable[[str], None]
    ) -> tuple[Descriptor, str] | None:
        """Make a layer by changing a snapshot of PARENT (mounted here) with CHANGE."""
        key = new_key("work")
        try:
            mounts = self.layers.snapshots.prepare(key, parent.chain)
            with self.layers.mounted(mounts) as root:
                change(root)
            desc = self.layers.diff(parent.chain, mounts, self.epoch)
            if desc is None:
                return None
            if self.epoch is None:
                self.layers.commit_as_chain(parent.diff_ids, desc, key)
            else:
                # the layer's times are clamped: the snapshot must hold what the layer says
                self.layers.materialize(parent.diff_ids, desc)
            return desc, desc.digest
        finally:
            self.layers.remove_quietly(key)

    # --- COPY and ADD ---

    def _copy(self, instruction: ins.Copy, state: _Stage, stage_index: int) -> None:
        keyword = "ADD" if instruction.add else "COPY"
        env = self._env(state)
        escape = self.dockerfile.escape
        heredocs = {h.name: h for h in instruction.heredocs}
        inline = [
            Inline(h.name, h.content.encode())
            for s in instruction.sources
            if (h := heredocs.get(s.lstrip("<-").strip("'\"")))
        ]
        sources = [
            process_word(s, env, escape)
            for s in instruction.sources
            if s.lstrip("<-").strip("'\"") not in heredocs
        ]
        for source in sources:
            if source.startswith(("http://", "https://")):
                if not instruction.add:
                    raise BuildFailed("source can't be a URL for COPY")
                raise BuildFailed(
                    f"ADD failed: cannot download {source}: this builder reaches no network for ADD"
                )
        dest = process_word(instruction.dest, env, escape)
        workdir = state.image.run_config.get("WorkingDir") or "/"
        full_dest = dest if dest.startswith("/") else posixpath.join(workdir, dest)
        if dest.endswith("/") or dest in (".", "") or dest.endswith("/."):
            full_dest = full_dest.rstrip("/") + "/"
        chown = process_word(instruction.chown, env, escape) if instruction.chown else ""
        mode = int(instruction.chmod, 8) if instruction.chmod else None
        with self._source_root(instruction, env, stage_index) as root:
            paths = expand_sources(root, sources, keyword) if sources else []
            if len(paths) + len(inline) > 1 and not full_dest.endswith("/"):
                raise BuildFailed(
                    f"When using {keyword} with more than one source file, the destination must be a directory and end with a /"
                )
            described = checksum(root, paths, inline)

            def make_layer(child: images.ImageState) -> tuple[Descriptor, str] | None:
                def change(dst_root: str) -> None:
                    # dockerd: COPY --from without --chown keeps the files' owners
                    owner = (
                        _user_ids(dst_root, chown)
                        if chown
                        else (None if instruction.source_stage else (0, 0))
                    )
                    copy_into(
                        dst_root,
                        root,
                        paths,
                        full_dest,
                        CopyOptions(owner, mode, instruction.add and root.is_context),
                        inline,
                    )

                return self._on_snapshot(state.image, change)

            text = f"{keyword} {described} in {dest} "
            self._commit(
                state,
                state.image.child(),
                "#(nop) " + text,
                f"{text}|{chown}|{instruction.chmod}",
                layer=make_layer,
                config_container=False,
            )

    @contextlib.contextmanager
    def _source_root(self, instruction: ins.Copy, env: dict[str, str], stage_index: int) -> Any:
        if not instruction.source_stage:
            yield SourceRoot(self.context.root, True, self.context.sums)
            return
        name = process_word(instruction.source_stage, env, self.dockerfile.escape)
        found = self.dockerfile.stage_index(name)
        if found is not None:
            if found >= stage_index:
                raise BuildFailed(
                    f"invalid from flag value {name}: refers to current build stage or a later one"
                )
            source = self.stage_results[found]
        else:
            try:
                source = self._image(name)
            except BuildFailed as exc:
                raise BuildFailed(f"invalid from flag value {name}: {exc.message}") from None
        with self.layers.view(source.chain) as mounts, self.layers.mounted(mounts, readonly=True) as path:
            yield SourceRoot(path, False)


def _literal(text: str) -> str:
    """TEXT as a Dockerfile word that expands to itself."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _mkdir(root: str, path: str) -> None:
    import os

    from dockerd.engine import scoped

    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with scoped.resolve(fd, path, mkdirs=True):
            pass
    except OSError as exc:
        # Go's words for the errno, as dockerd's lstat of the path in its mounted root
        text = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise BuildFailed(f"lstat {root.rstrip('/')}{path}: {text}") from None
    finally:
        os.close(fd)
