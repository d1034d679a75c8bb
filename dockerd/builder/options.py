"""What a build request asks for (POST /build's query, typed), and what it gives back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from containerd.client import Descriptor

# The build's progress, one message at a time, in the shape of dockerd's JSON stream:
# {"stream": text}, {"aux": {"ID": image ID}}; the router writes each as a JSON line.
Progress = Callable[[dict[str, Any]], None]

# Build arguments every Dockerfile may use without declaring them (moby's builtin args); they
# reach RUN's environment but not the history or the cache key unless declared.
PROXY_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
     "ALL_PROXY", "all_proxy"}
)  # fmt: skip
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"  # path inside the context
    tags: list[str] = field(default_factory=list)  # t (each a reference)
    build_args: dict[str, str | None] = field(default_factory=dict)  # buildargs
    target: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False  # nocache
    pull: bool = False  # always ask the image source for a fresh base image
    remove: bool = True  # rm: build containers are always removed (pycontainerd containers, not Docker's)
    force_remove: bool = False  # forcerm: likewise
    cache_from: list[str] = field(default_factory=list)  # images whose history may stand in for steps
    extra_hosts: list[str] = field(default_factory=list)  # "name:address" for RUN's /etc/hosts
    network_mode: str = "default"  # default, none, host (or what the network hook knows)
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    platform: str = ""  # "" or the host's ("linux/amd64")
    quiet: bool = False  # q: only the image ID on success

    def host_config(self) -> dict[str, Any]:
        """The resources of RUN containers, as a container's HostConfig names them."""
        host: dict[str, Any] = {"NetworkMode": self.network_mode}
        for key, value in (
            ("ShmSize", self.shm_size), ("Memory", self.memory), ("MemorySwap", self.memory_swap),
            ("CpuShares", self.cpu_shares), ("CpuPeriod", self.cpu_period), ("CpuQuota", self.cpu_quota),
            ("CpusetCpus", self.cpuset_cpus), ("CpusetMems", self.cpuset_mems),
        ):  # fmt: skip
            if value:
                host[key] = value
        return host


@dataclass(frozen=True)
class BuildResult:
    image_id: str  # sha256:<config digest>
    manifest: Descriptor
    names: list[str]  # the image records made (normalised tags, or the dangling name)
    stage_ids: list[str]  # each stage's final image, in order
