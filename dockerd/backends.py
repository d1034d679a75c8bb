"""What the API's routers serve from: one backend object per resource (moby's router
backends). The daemon builds them (dockerd/daemon.py); create_app puts them in the app's
state, and each route gets the one it needs as a FastAPI dependency (dockerd/routers/deps.py).

A new backend (the networks', the builder's when they are wired) is a field
here, built in Daemon._backends, with a dependency in routers/deps.py; a backend that other
backends use (containers need networks and volumes at create, start and removal) is handed
to them by the daemon too, never imported as a global."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockerd.builder.backend import BuildBackend
    from dockerd.engine.container.backend import Containers
    from dockerd.engine.distribution.backend import Distribution
    from dockerd.engine.execs import ExecEngine
    from dockerd.engine.image.backend import Images
    from dockerd.engine.network import Networking
    from dockerd.engine.system import System
    from dockerd.volumes.service import VolumeService


@dataclass(frozen=True)
class Backends:
    system: System  # /_ping, /version, /info, /events, /system/df
    containers: Containers  # /containers/...
    execs: ExecEngine  # /containers/{id}/exec, /exec/...
    images: Images  # /images/...
    distribution: Distribution  # pull, push, /auth (and search's default registry)
    networks: Networking  # /networks/... (over dockerd/network/)
    builder: BuildBackend  # /build, /build/prune, /commit
    volumes: VolumeService  # /volumes/... (the containers backend holds the same service)
