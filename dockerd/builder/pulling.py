"""Where FROM (and COPY --from=<image>) find images inside pydockerd: the local images first,
and a missing one pulled through pydockerd's distribution backend, as `docker run` pulls it
(with `pull=1`, pulled every time, as dockerd's PullParent). The pull's progress messages join
the build's stream unchanged, so the Docker CLI prints them as dockerd's build shows a pull."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from containerd.client import Descriptor, InvalidArgument, NotFound, Platform, get_image, normalize_name
from containerd.client.names import parse_reference
from dockerd.builder.builder import LocalImages
from dockerd.builder.errors import BuildFailed
from dockerd.builder.options import Progress
from dockerd.engine.distribution.registry_client import AuthConfig
from dockerd.engine.errors import EngineError

if TYPE_CHECKING:
    from containerd.client import Client
    from dockerd.engine.distribution.backend import Distribution


class RegistryImages:
    def __init__(self, client: Client, distribution: Distribution, auth: Mapping[str, AuthConfig]) -> None:
        self.client = client
        self.local = LocalImages(client)
        self.distribution = distribution
        self.auth = auth  # the request's X-Registry-Config: registry host -> credentials

    def resolve(self, ref: str, *, pull: bool, platform: Platform, progress: Progress) -> Descriptor:
        if not pull:
            try:
                return self.local.resolve(ref, pull=False, platform=platform, progress=progress)
            except BuildFailed:
                pass
        try:
            parsed = parse_reference(ref)
        except InvalidArgument:
            # Not a reference (an image ID that is not here): nothing to pull.
            return self.local.resolve(ref, pull=False, platform=platform, progress=progress)
        self._pull(parsed.repository, parsed.digest or parsed.tag, progress)
        try:
            return get_image(self.client, normalize_name(ref)).target
        except NotFound:
            raise BuildFailed(f"No such image: {ref}") from None

    def _pull(self, repository: str, tag: str, progress: Progress) -> None:
        try:
            job = self.distribution.pull(repository, tag, self._credentials(repository))
        except EngineError as exc:
            raise BuildFailed(str(exc)) from None
        failed = ""
        for chunk in job.stream():
            message = json.loads(chunk)
            if "error" in message:
                failed = str(message.get("error") or "pull failed")
                continue
            progress(message)
        if failed:
            raise BuildFailed(failed)
        self.distribution.announce(job, "pull")

    def _credentials(self, repository: str) -> AuthConfig:
        """The request's credentials for the repository's registry (as dockerd's build picks
        them from X-Registry-Config by the registry's index name)."""
        domain = repository.split("/", 1)[0]
        keys = [domain]
        if domain == "docker.io":
            keys += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
        for key in keys:
            if key in self.auth:
                return self.auth[key]
        for key, auth in self.auth.items():
            if key.split("://", 1)[-1].split("/", 1)[0] == domain:
                return auth
        return AuthConfig()
