"""The backends as FastAPI dependencies: a route names the one it serves from by type
(`containers: ContainersBackend`), and gets it from the app's state (set by create_app).
The dependencies are coroutines so that FastAPI calls them inline, not in a thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from dockerd.backends import Backends
from dockerd.builder.backend import BuildBackend
from dockerd.engine.container.backend import Containers
from dockerd.engine.distribution.backend import Distribution
from dockerd.engine.execs import ExecEngine
from dockerd.engine.image.backend import Images
from dockerd.engine.network import Networking
from dockerd.engine.system import System
from dockerd.volumes.service import VolumeService


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


async def _system(request: Request) -> System:
    return backends(request).system


async def _containers(request: Request) -> Containers:
    return backends(request).containers


async def _execs(request: Request) -> ExecEngine:
    return backends(request).execs


async def _images(request: Request) -> Images:
    return backends(request).images


async def _distribution(request: Request) -> Distribution:
    return backends(request).distribution


async def _networks(request: Request) -> Networking:
    return backends(request).networks


async def _builder(request: Request) -> BuildBackend:
    return backends(request).builder


async def _volumes(request: Request) -> VolumeService:
    return backends(request).volumes


SystemBackend = Annotated[System, Depends(_system)]
ContainersBackend = Annotated[Containers, Depends(_containers)]
ExecsBackend = Annotated[ExecEngine, Depends(_execs)]
ImagesBackend = Annotated[Images, Depends(_images)]
DistributionBackend = Annotated[Distribution, Depends(_distribution)]
NetworksBackend = Annotated[Networking, Depends(_networks)]
BuilderBackend = Annotated[BuildBackend, Depends(_builder)]
VolumesBackend = Annotated[VolumeService, Depends(_volumes)]
