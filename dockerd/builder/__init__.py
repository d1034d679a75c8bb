"""pydockerd's image builder: dockerd's classic builder (POST /build, the Docker CLI's
DOCKER_BUILDKIT=0 path) and `docker commit`, on pycontainerd through containerd.client.

The interface the Engine API routes use:

    from dockerd.builder import Builder, BuilderConfig, BuildOptions, BuildFailed, BuildRequestError

    builder = Builder(client, BuilderConfig(tmp_dir=..., docker_version=..., image_source=...))
    job = builder.prepare(body, BuildOptions(tags=[...], build_args={...}, ...))  # may raise BuildRequestError
    try:
        result = job.run(progress)   # progress(dict) gets {"stream": ...} / {"aux": {"ID": ...}} messages
    except BuildFailed as exc:
        progress(exc.stream_message())
    finally:
        job.close()

    builder.cache.records() / builder.cache.prune(...)        # docker builder prune, system df
    commit_container(client, ...)                              # POST /commit (dockerd.builder.commit)

docs/ARCHITECTURE.md ("The builder") describes the modules.
"""

from dockerd.builder.builder import Builder, BuilderConfig, BuildJob, ImageSource, LocalImages
from dockerd.builder.cache import BuildCache, CacheRecord, PruneResult
from dockerd.builder.errors import BuildError, BuildFailed, BuildRequestError
from dockerd.builder.options import BuildOptions, BuildResult, Progress
from dockerd.builder.runner import NetworkHook, RunSettings

__all__ = [
    "BuildCache",
    "BuildError",
    "BuildFailed",
    "BuildJob",
    "BuildOptions",
    "BuildRequestError",
    "BuildResult",
    "Builder",
    "BuilderConfig",
    "CacheRecord",
    "ImageSource",
    "LocalImages",
    "NetworkHook",
    "Progress",
    "PruneResult",
    "RunSettings",
]
