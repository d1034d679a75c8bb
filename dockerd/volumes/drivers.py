"""Which driver a name means: `local`, or a legacy volume plugin found in the plugin directories.

A plugin is activated once (`Plugin.Activate`, which must list "VolumeDriver" in `Implements`)
and kept, as moby keeps v1 plugins; a failed activation is not kept, so the next request tries
again. Activation takes a lock per plugin name only: a plugin that hangs delays the requests
that need it, nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

from dockerd.volumes import discovery
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.driver import Driver
from dockerd.volumes.errors import DriverError, InvalidParameter, NotFound
from dockerd.volumes.local import LocalDriver
from dockerd.volumes.plugin import PluginDriver
from dockerd.volumes.pluginclient import PluginClient, Timeouts

log = logging.getLogger(__name__)

EXTENSION = "VolumeDriver"


class DriverStore:
    def __init__(self, local: LocalDriver, dirs: PluginDirs, timeouts: Timeouts) -> None:
        self.local = local
        self.dirs = dirs
        self.timeouts = timeouts
        self._plugins: dict[str, PluginDriver] = {}
        self._lock = threading.Lock()
        self._name_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def get(self, name: str, retry: bool = True) -> Driver:
        """The driver NAME; errors worded as moby's ("error looking up volume plugin X: ...")."""
        if not name:
            raise InvalidParameter("driver name cannot be empty")
        if name == self.local.name:
            return self.local
        with self._lock:
            found = self._plugins.get(name)
            name_lock = self._name_locks[name]
        if found is not None:
            return found
        with name_lock:
            with self._lock:
                found = self._plugins.get(name)
            if found is not None:
                return found
            driver = self._activate(name, retry)
            with self._lock:
                self._plugins[name] = driver
            return driver

    def _activate(self, name: str, retry: bool) -> PluginDriver:
        prefix = f"error looking up volume plugin {name}"
        try:
            spec = discovery.find(name, self.dirs)
        except DriverError as exc:
            raise DriverError(f"{prefix}: legacy plugin: {exc}") from exc
        if spec is None:
            raise NotFound(f'{prefix}: plugin "{name}" not found')
        try:
            client = PluginClient(spec.address, self.timeouts)
            manifest = client.call("Plugin.Activate", None, self.timeouts.long, retry=retry)
        except DriverError as exc:
            raise DriverError(f"{prefix}: legacy plugin: {exc}") from exc
        implements = manifest.get("Implements")
        if not isinstance(implements, list) or EXTENSION not in implements:
            raise DriverError(f"{prefix}: legacy plugin: Plugin does not implement the requested driver")
        return PluginDriver(name, client)

    def all(self) -> list[Driver]:
        """The local driver and every plugin in the directories that is a volume driver.

        Plugins that cannot be activated are left out (logged), as moby's GetAllDrivers does.
        """
        drivers: list[Driver] = [self.local]
        with self._lock:
            known = dict(self._plugins)
        for name in discovery.scan(self.dirs):
            if name == self.local.name:
                continue
            if name in known:
                drivers.append(known[name])
                continue
            try:
                drivers.append(self.get(name, retry=False))
            except DriverError as exc:
                log.warning("volume plugin %s: %s", name, exc)
            except NotFound:
                continue
        # activated plugins whose socket or spec is gone meanwhile still answer for their volumes
        listed = {d.name for d in drivers}
        drivers.extend(d for n, d in known.items() if n not in listed)
        return drivers

    def names(self) -> list[str]:
        """Drivers in use (for `docker info`'s Plugins.Volume): local and the activated plugins."""
        with self._lock:
            return [self.local.name, *sorted(self._plugins)]
