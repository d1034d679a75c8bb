"""The volume service: what the engine and the `/volumes` routes call (moby's volume/service).

It joins the drivers (local and plugins), the metadata store (driver, labels and options per
volume; which containers reference which volume) and Docker's rules: create is idempotent for
the same name and driver, a volume referenced by a container cannot be removed (409 naming the
containers), prune takes only unused local volumes without mount options (anonymous ones
unless `all`), filters as moby's. Every error is an engine error kind with moby's wording.

Operations on one volume name are serialised (a lock per name); different volumes, and reads,
proceed in parallel, so a slow or dead plugin holds up only requests for its own volumes.
The methods block (file system, plugins): the API layer runs them in worker threads.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dockerd.volumes import errors
from dockerd.volumes.discovery import PluginDirs
from dockerd.volumes.driver import Driver, DriverVolume
from dockerd.volumes.drivers import DriverStore
from dockerd.volumes.errors import Conflict, DriverError, EngineError, InvalidParameter, NotFound
from dockerd.volumes.filters import Filters
from dockerd.volumes.local import LocalDriver, RefusedVolume
from dockerd.volumes.model import Volume
from dockerd.volumes.names import ANONYMOUS_LABEL, new_anonymous_name
from dockerd.volumes.pluginclient import PluginUnreachable, Timeouts
from dockerd.volumes.store import MetadataStore, VolumeMeta
from dockerd.volumes.usage import directory_size

log = logging.getLogger(__name__)

LOCAL = "local"
LIST_FILTERS = ("dangling", "name", "driver", "label")
PRUNE_FILTERS = ("label", "label!", "all")

# publish(type, action, actor id, attributes): the engine's event bus
Publish = Callable[[str, str, str, dict[str, str]], None]


def _no_events(kind: str, action: str, actor: str, attrs: dict[str, str]) -> None:
    pass


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0

    def to_api(self) -> dict[str, Any]:
        return {"VolumesDeleted": self.deleted, "SpaceReclaimed": self.reclaimed}


class VolumeService:
    def __init__(
        self,
        data_root: str,
        plugin_dirs: PluginDirs | None = None,
        timeouts: Timeouts | None = None,
        publish: Publish | None = None,
        root_owner: tuple[int, int] | None = None,
    ) -> None:
        self.root = os.path.join(data_root, "volumes")
        # userns-remap: the host's ids of containers' root, which owns what is made for them.
        self.root_owner = root_owner
        self.local = LocalDriver(self.root, root_owner)
        self.drivers = DriverStore(self.local, plugin_dirs or PluginDirs(), timeouts or Timeouts())
        self.meta = MetadataStore(os.path.join(self.root, "metadata.db"))
        self.publish = publish or _no_events
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._prune_running = threading.Lock()
        self._restore()

    def close(self) -> None:
        self.meta.close()

    # --- start-up -------------------------------------------------------------------------

    def _restore(self) -> None:
        """Forget local volumes whose directory is gone (a remove cut short after the driver's part).

        Plugin volumes are checked when first used: their plugin may not be running yet. A
        volume the local driver refused (a newer release's) keeps its metadata untouched.
        """
        refused = self.local.refused()
        for meta in self.meta.all():
            if meta.driver == LOCAL and meta.name not in refused and self.local.get(meta.name) is None:
                log.info("volume %s: its directory is gone, forgetting it", meta.name)
                self.meta.delete(meta.name)

    @contextmanager
    def _name_lock(self, name: str) -> Iterator[None]:
        with self._locks_guard:
            lock = self._locks[name]
        with lock:
            yield

    # --- create / get -----------------------------------------------------------------------

    def create(
        self,
        name: str = "",
        driver: str = "",
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        ref: str | None = None,
    ) -> Volume:
        """`docker volume create` and the volumes a container's mounts need.

        An empty NAME makes an anonymous volume (64 hex digits, labelled com.docker.volume.anonymous).
        An existing volume of the same driver is returned as it is (its labels and options are not
        changed, as in Docker). REF (a container id) is recorded with the volume in one step.
        """
        return self.ensure(name, driver, options, labels, ref)[0]

    def ensure(
        self,
        name: str = "",
        driver: str = "",
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        ref: str | None = None,
    ) -> tuple[Volume, bool]:
        """create(), also telling whether the volume is new (so a failed container create can undo it)."""
        # None and {} differ as in Docker: a body's empty map is shown as {}, an absent one as null
        label_map = None if labels is None else dict(labels)
        if not name:
            name = new_anonymous_name()
            driver = driver or LOCAL
            label_map = {**(label_map or {}), ANONYMOUS_LABEL: ""}
        opts = None if options is None else dict(options)
        with self._name_lock(name):
            vol, created = self._create(name, driver, opts, label_map, ref)
        self.publish("volume", "create", vol.name, {"driver": vol.driver})
        return vol, created

    def _create(
        self,
        name: str,
        driver_name: str,
        opts: dict[str, str] | None,
        labels: dict[str, str] | None,
        ref: str | None,
    ) -> tuple[Volume, bool]:
        existing = self._check_conflict(name, driver_name)
        if existing is not None:
            if ref:
                self.meta.add_ref(name, ref)
            return existing, False
        if not driver_name:
            # no driver asked for: a volume of that name in any driver is the one meant
            found = self._probe(name)
            if found is not None:
                driver, dv = found
                self.meta.put(VolumeMeta(name, driver.name, None, None), ref)
                return self._volume(driver, dv, None, None), False
            driver_name = LOCAL
        driver = self._driver("create", name, driver_name)
        try:
            present = driver.get(name)  # moby asks first and ignores a failure to answer
        except EngineError:
            present = None
        try:
            made = present or driver.create(name, opts or {})
        except EngineError as exc:
            raise errors.wrap("create", name, exc) from exc
        meta = VolumeMeta(name, driver.name, labels, opts)
        self.meta.put(meta, ref)
        return self._volume(driver, made, meta.labels, meta.options), present is None

    def _check_conflict(self, name: str, driver_name: str) -> Volume | None:
        """The volume NAME if it exists in DRIVER_NAME's driver; a Conflict if another driver holds it."""
        meta = self.meta.get(name)
        if meta is None:
            return None
        conflict = False
        if driver_name:
            conflict = self._driver("create", name, driver_name).name != meta.driver
        try:
            driver = self.drivers.get(meta.driver)
            dv = driver.get(name)
        except EngineError as exc:
            raise errors.name_conflict(
                name,
                f"found reference to volume '{name}' in driver '{meta.driver}', "
                f"but got an error while checking the driver: {exc}",
            ) from exc
        if dv is not None:
            if conflict:
                raise errors.name_conflict(name, f"driver '{meta.driver}' already has volume '{name}'")
            return self._volume(driver, dv, meta.labels, meta.options)
        if self.meta.refs(name):
            raise errors.name_conflict(
                name,
                f"found references to volume '{name}' in driver '{meta.driver}' but the volume was not "
                "found in the driver -- you may need to remove containers referencing this volume or "
                "force remove the volume to re-create it",
            )
        self.meta.delete(name)  # stale: the driver no longer has it
        return None

    def get(self, name: str, driver: str = "", ref: str | None = None) -> Volume:
        """The volume NAME (404 "get NAME: no such volume"); REF, if given, now references it."""
        with self._name_lock(name):
            vol = self._get(name, driver)
            if ref:
                self.meta.add_ref(name, ref)
            return vol

    def _get(self, name: str, driver_name: str) -> Volume:
        meta = self.meta.get(name)
        if meta is not None:
            if driver_name and driver_name != meta.driver:
                raise errors.op_error(
                    Conflict, "get", name, "provided volume driver does not match stored driver"
                )
            driver = self._driver("get", name, meta.driver)
            try:
                dv = driver.get(name)
            except RefusedVolume as exc:
                raise errors.wrap("get", name, exc) from exc
            except PluginUnreachable as exc:
                raise errors.op_error(
                    DriverError, "get", name,
                    f'error while checking if volume "{name}" exists in driver "{meta.driver}": {exc}',
                ) from exc  # fmt: skip
            if dv is None:
                self.meta.delete(name)
                raise errors.no_such_volume("get", name)
            return self._volume(driver, dv, meta.labels, meta.options)
        if driver_name:
            driver = self._driver("get", name, driver_name)
            got = driver.get(name)
            found = (driver, got) if got is not None else None
        else:
            found = self._probe(name)
        if found is None:
            raise errors.no_such_volume("get", name)
        driver, dv = found
        self.meta.put(VolumeMeta(name, driver.name, None, None))
        return self._volume(driver, dv, None, None)

    def _probe(self, name: str) -> tuple[Driver, DriverVolume] | None:
        """Ask every driver for NAME (local first); the first that has it."""
        for driver in self.drivers.all():
            try:
                dv = driver.get(name)
            except RefusedVolume as exc:
                raise errors.wrap("get", name, exc) from exc
            except EngineError:
                continue
            if dv is not None:
                return driver, dv
        return None

    def _driver(self, op: str, name: str, driver_name: str) -> Driver:
        try:
            return self.drivers.get(driver_name)
        except EngineError as exc:
            raise errors.wrap(op, name, exc) from exc

    def _volume(
        self, driver: Driver, dv: DriverVolume, labels: dict[str, str] | None, options: dict[str, str] | None
    ) -> Volume:
        try:
            scope = driver.scope()
        except EngineError:
            scope = "local"
        return Volume(dv.name, driver.name, dv.mountpoint, scope, labels, options, dv.created_at, dv.status)

    def inspect(self, name: str) -> dict[str, Any]:
        """`GET /volumes/{name}`: Docker's JSON, with the driver's Status."""
        return self.get(name).to_api(status=True)

    # --- list -------------------------------------------------------------------------------

    def list_volumes(self, filters: Filters | None = None) -> tuple[list[Volume], list[str]]:
        """`GET /volumes`: (volumes, warnings). Filters: dangling, name, driver, label."""
        f = filters or Filters()
        f.validate(LIST_FILTERS)
        dangling = f.bool_value("dangling")
        vols, warnings = self._all(f.get("driver"))
        counts = self.meta.ref_counts()
        out = []
        for v in vols:
            if dangling is not None and (counts.get(v.name, 0) == 0) != dangling:
                continue
            if f.contains("name") and not f.match("name", v.name):
                continue
            if not f.match_kv_list("label", v.labels):
                continue
            out.append(v)
        return out, warnings

    def list_api(self, filters: Filters | None = None) -> dict[str, Any]:
        vols, warnings = self.list_volumes(filters)
        return {"Volumes": [v.to_api() for v in vols], "Warnings": warnings or None}

    def _all(self, driver_names: Iterable[str] = ()) -> tuple[list[Volume], list[str]]:
        """Every volume of every driver (or of DRIVER_NAMES), with the metadata's labels and options.

        A driver that cannot list is reported in the warnings ("list NAME: cause") and its
        volumes known to the metadata are listed from there; a name another driver already
        holds in the metadata is left out, as in moby.
        """
        wanted = set(driver_names)
        metas: dict[str, VolumeMeta] = {m.name: m for m in self.meta.all()}
        volumes: dict[str, Volume] = {}
        warnings: list[str] = []
        for driver in self.drivers.all():
            if wanted and driver.name not in wanted:
                continue
            try:
                listed = driver.list_volumes()
            except EngineError as exc:
                warnings.append(f"list {driver.name}: {exc}")
                for meta in metas.values():
                    if meta.driver == driver.name:
                        volumes[meta.name] = Volume(
                            meta.name, meta.driver, "", "local", meta.labels, meta.options
                        )
                continue
            if driver is self.local:
                warnings += [f"list {driver.name}: {why}" for why in self.local.refused().values()]
            for dv in listed:
                known = metas.get(dv.name)
                if known is not None and known.driver != driver.name:
                    continue
                if dv.name in volumes:
                    continue
                labels = known.labels if known else None
                options = known.options if known else None
                volumes[dv.name] = self._volume(driver, dv, labels, options)
        return [volumes[n] for n in sorted(volumes)], warnings

    # --- references -------------------------------------------------------------------------

    def references(self, name: str) -> list[str]:
        return self.meta.refs(name)

    def release(self, name: str, ref: str) -> None:
        """REF no longer uses NAME (a mount point replaced or dropped)."""
        with self._name_lock(name):
            self.meta.remove_ref(name, ref)

    def release_all(self, ref: str) -> list[str]:
        """REF (a removed container) uses no volume any more; the volumes it used."""
        return self.meta.remove_refs_of(ref)

    def reconcile_references(self, live: Mapping[str, Iterable[str]]) -> None:
        """At daemon start: the references become exactly LIVE (container id -> volume names).

        The container records are the truth; a reference left by a container whose record is
        gone (a crash between removing the record and releasing) disappears here, and one a
        record holds but the table lost is restored.
        """
        pairs = {(name, ref) for ref, names in live.items() for name in names}
        self.meta.replace_refs(sorted(pairs))

    # --- remove / prune ---------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> None:
        """`docker volume rm [-f]`. In use: 409 "remove NAME: volume is in use - [ids]", even forced.

        force: a missing volume is not an error, and the metadata is dropped even if the driver
        fails (the driver's error is still answered), as moby's PurgeOnError.
        """
        with self._name_lock(name):
            try:
                vol = self._get(name, "")
            except NotFound:
                if force:
                    self.meta.delete(name)
                    return
                raise
            refs = self.meta.refs(name)
            if refs:
                raise errors.in_use(name, refs)
            driver = self._driver("remove", name, vol.driver)
            try:
                driver.remove(name)
            except NotFound:
                pass  # already gone from the driver: forget it
            except EngineError as exc:
                if force:
                    self.meta.delete(name)
                raise errors.wrap("remove", name, exc) from exc
            self.meta.delete(name)
        self.publish("volume", "destroy", name, {"driver": vol.driver})

    def remove_container_volumes(self, ref: str, anonymous: Iterable[str]) -> list[str]:
        """`docker rm -v` / `--rm`: release every volume of REF, then remove ANONYMOUS (the
        container's volumes it did not name) unless another container uses them. Named volumes
        are never removed. Returns the errors, as moby logs and reports them together."""
        self.release_all(ref)
        problems = []
        for name in anonymous:
            try:
                self.remove(name)
            except Conflict:
                continue  # another container uses it: not an error
            except NotFound:
                continue
            except EngineError as exc:
                problems.append(str(exc))
        return problems

    def prune(self, filters: Filters | None = None) -> PruneReport:
        """`POST /volumes/prune`: unused local volumes without mount options; only anonymous ones
        unless the filter `all` is true (API >= 1.42; the router adds all=true for older clients,
        as dockerd does). Filters: label, label!, all."""
        f = filters or Filters()
        if not self._prune_running.acquire(blocking=False):
            raise Conflict("a prune operation is already running")
        try:
            f.validate(PRUNE_FILTERS)
            everything = _prune_all(f)
            vols, _ = self._all([LOCAL])
            counts = self.meta.ref_counts()
            report = PruneReport()
            for v in vols:
                if counts.get(v.name, 0) or v.options or self.local.options(v.name) is not None:
                    continue
                if not everything and not (v.labels and ANONYMOUS_LABEL in v.labels):
                    continue
                if not f.match_kv_list("label", v.labels):
                    continue
                if f.contains("label!") and f.match_kv_list("label!", v.labels):
                    continue
                size = directory_size(v.mountpoint)
                try:
                    self.remove(v.name)
                except EngineError as exc:
                    log.warning("prune: volume %s: %s", v.name, exc)
                    continue
                report.deleted.append(v.name)
                report.reclaimed += size
        finally:
            self._prune_running.release()
        self.publish("volume", "prune", "", {"reclaimed": str(report.reclaimed)})
        return report

    # --- usage ------------------------------------------------------------------------------

    def usage(self) -> list[dict[str, Any]]:
        """`system df -v`'s Volumes: local volumes without mount options, with UsageData."""
        vols, _ = self._all([LOCAL])
        counts = self.meta.ref_counts()
        out = []
        for v in vols:
            if v.options or self.local.options(v.name) is not None:
                continue
            out.append(v.to_api(usage=(directory_size(v.mountpoint), counts.get(v.name, 0))))
        return out

    # --- mounts -----------------------------------------------------------------------------

    def mount(self, name: str, mount_id: str, driver: str = "", source: str = "") -> str:
        """Make NAME's data available for MOUNT_ID (one per container mount, kept by the engine as
        the mount point's ID); the host path to bind. SOURCE is what the mount point shows
        (moby words a failure "error while mounting volume 'SOURCE': cause")."""
        with self._name_lock(name):
            vol = self._get(name, driver)
            drv = self._driver("mount", name, vol.driver)
            try:
                path = drv.mount(name, mount_id)
            except EngineError as exc:
                raise DriverError(f"error while mounting volume '{source}': {exc}") from exc
        return path

    def unmount(self, name: str, mount_id: str, driver: str = "") -> None:
        """Release MOUNT_ID's use of NAME (the driver unmounts with its last user)."""
        with self._name_lock(name):
            meta = self.meta.get(name)
            drv = self._driver("unmount", name, driver or (meta.driver if meta else LOCAL))
            try:
                drv.unmount(name, mount_id)
            except NotFound:
                return
            except EngineError as exc:
                raise errors.wrap("unmount", name, exc) from exc

    def unmount_idle(self) -> list[str]:
        """After live restore: unmount local volumes nobody uses (mounted for containers gone meanwhile)."""
        return self.local.unmount_idle()

    def driver_names(self) -> list[str]:
        return self.drivers.names()


def _prune_all(f: Filters) -> bool:
    values = f.get("all")
    if len(values) > 1:
        raise InvalidParameter(f"invalid filter 'all=[{' '.join(values)}]': only one value is expected")
    if not values:
        return False
    value = values[0]
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidParameter(f"invalid filter 'all': strconv.ParseBool: parsing \"{value}\": invalid syntax")
