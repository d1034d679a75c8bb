"""The backend of the /images routes (moby's daemon/images): the image store's view
(service.py) with what a route adds around it: the containers that use an image, the
events, uploads spooled under the daemon's tmp directory."""

from __future__ import annotations

import builtins
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from containerd.client import Client, familiar_name
from dockerd.engine.errors import EngineError, NotFound
from dockerd.engine.events import Publish
from dockerd.engine.filters import Filters
from dockerd.engine.image import events as image_events
from dockerd.engine.image import importer
from dockerd.engine.image.list import list_images
from dockerd.engine.image.prune import prune_images
from dockerd.engine.image.service import ImageService

if TYPE_CHECKING:
    from dockerd.engine.container.state import Container


class Images:
    def __init__(
        self,
        service: ImageService,
        client: Client,
        containers: Callable[[], Iterable[Container]],
        publish: Publish,
        tmp_dir: str,
        docker_version: str,
    ) -> None:
        self.service = service
        self.client = client
        self.containers = containers  # every container record, for the images in use
        self.publish = publish
        self.tmp_dir = tmp_dir
        self.docker_version = docker_version

    def list(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /images/json (list.py)."""
        return list_images(self.service, filters)

    def inspect(self, name: str) -> dict[str, Any]:
        try:
            image = self.service.resolve(name)
        except NotFound as exc:
            raise NotFound(f"no such image: {name}: {exc}") from None  # dockerd's LookupImage wraps it
        return self.service.inspect(image)

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        return self.service.history(self.service.resolve(name))

    def tag(self, name: str, repo: str, tag: str) -> None:
        tagged = self.service.tag(name, repo, tag)
        image = self.service.resolve(tagged)
        image_events.image_event(self.publish, "tag", image.id, image_events.labels_of(image.config), tagged)

    def remove(self, name: str, force: bool) -> builtins.list[dict[str, str]]:
        image = self.service.resolve(name)
        # Paused and restarting containers count as running, as dockerd's IsRunning.
        users = [
            (c.id, c.running() or bool(c.state.get("Paused") or c.state.get("Restarting")))
            for c in self.containers()
            if c.image_id == image.id
        ]
        result = self.service.remove(name, force, users)
        image_events.removal_events(self.publish, image.id, image_events.labels_of(image.config), result)
        return result

    def prune(self, filters: Filters) -> dict[str, Any]:
        """POST /images/prune (prune.py)."""
        return prune_images(self.service, {c.image_id for c in self.containers()}, filters, self.publish)

    def load(self, upload: IO[bytes]) -> Iterator[bytes]:
        """POST /images/load: the archive's images stored, as dockerd's JSON lines (an error
        as the stream's one message). Closes UPLOAD."""
        try:
            lines = self.service.load(upload)
        except EngineError as exc:
            yield json.dumps({"errorDetail": {"message": str(exc)}, "error": str(exc)}).encode() + b"\r\n"
            return
        finally:
            upload.close()
        self._load_events(lines)
        for line in lines:
            yield json.dumps({"stream": line + "\n"}).encode() + b"\r\n"

    def _load_events(self, lines: builtins.list[str]) -> None:
        """A load event per image loaded (its ID: dockerd logs the image, not the name)."""
        for line in lines:
            ref = line.removeprefix("Loaded image ID: ").removeprefix("Loaded image: ")
            try:
                image = self.service.resolve(ref)
            except EngineError:
                continue
            image_events.image_event(self.publish, "load", image.id, image_events.labels_of(image.config))

    def save(self, refs: builtins.list[str]) -> IO[bytes]:
        """GET /images/get: a docker-save archive of REFS, spooled and rewound."""
        out = tempfile.TemporaryFile(dir=self.tmp_dir)
        try:
            self.service.save(refs, out)
        except BaseException:
            out.close()
            raise
        out.seek(0)
        return out

    def import_target(self, repo: str, tag: str, changes: builtins.list[str]) -> str | None:
        """The checks of POST /images/create?fromSrc=- before its upload is read, as dockerd
        makes them: the name to give (none without a repo) and the changes."""
        name = importer.target_name(repo, tag)
        importer.apply_changes(changes)
        return name

    def import_image(
        self, upload: IO[bytes], name: str | None, message: str, changes: builtins.list[str]
    ) -> str:
        """`docker import` (importer.py): the upload as a one-layer image; returns its id."""
        image_id = importer.import_rootfs(
            self.client, upload, name=name, message=message, changes=changes,
            docker_version=self.docker_version, tmp_dir=self.tmp_dir,
        )  # fmt: skip
        labels = image_events.labels_of(self.service.resolve(image_id).config)
        if name:  # dockerd tags the new image, then logs its import
            image_events.image_event(self.publish, "tag", image_id, labels, familiar_name(name))
        image_events.image_event(self.publish, "import", image_id, labels)
        return image_id
