"""The `local` volume driver: a directory per volume under `<data-root>/volumes/`.

Layout (moby's): `volumes/<name>/_data` holds the data; `volumes/<name>/opts.json` the driver
options when any were given. A volume with options (`type`, `device`, `o`) is a mount: its
`_data` is mounted on first use and unmounted when the last user is gone (`type=tmpfs`, a
block device, nfs...; `o=bind` with `device` a host path is a bind mount).

Crash safety: a volume directory appears complete or not at all (built under a hidden name,
synced, renamed into place) and disappears at once (renamed to a hidden name, then deleted);
hidden leftovers of an interrupted create or remove are deleted at start. Volume names never
start with ".", so hidden names cannot collide with volumes.

Versioned (common/schema.py): an `opts.json` of a newer release, or one that is not a complete
JSON object, is refused at start, naming the file: that volume is left as it is (never mounted,
rewritten nor removed, its name not reused) and every request for it is a 409 saying why, while
the other volumes work. moby's files carry no version, which is version 1, the same fields.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from common import atomicfile, libc, schema
from common.mount import mount_points, unmount
from common.mountopts import PROPAGATION, parse_options
from dockerd.engine.errors import Conflict, InvalidParameter
from dockerd.volumes.driver import DriverVolume
from dockerd.volumes.errors import DriverError, NotFound
from dockerd.volumes.names import validate_local_name
from dockerd.volumes.units import ram_in_bytes

log = logging.getLogger(__name__)

DATA_DIR = "_data"
OPTS_FILE = "opts.json"
OPTS_VERSION = 1  # opts.json's "Version"; a file without one is moby's (the same fields)
_VALID_OPTS = ("type", "o", "device", "size")
# an option given needs these others too; checked in this order (moby's map, in a fixed order)
_MANDATORY = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))


@dataclass(frozen=True)
class LocalOptions:
    """A volume's mount: `mount -t TYPE -o O DEVICE <_data>`."""

    type: str = ""
    o: str = ""
    device: str = ""

    @classmethod
    def from_opts(cls, opts: Mapping[str, str]) -> LocalOptions | None:
        validate_options(opts)
        if not opts:
            return None
        return cls(type=opts.get("type", ""), o=opts.get("o", ""), device=opts.get("device", ""))

    def needs_mount(self) -> bool:
        return bool(self.device or self.type)

    def to_json(self) -> bytes:
        # moby's opts.json field names, so a data root can be read by either daemon, and the
        # format's version (moby ignores unknown fields; issue 19 migrates by it)
        return json.dumps(
            {"Version": OPTS_VERSION, "MountType": self.type, "MountOpts": self.o, "MountDevice": self.device}
        ).encode()

    @classmethod
    def load(cls, path: str) -> LocalOptions:
        """The options in PATH (an opts.json); schema.LayoutError for a newer or damaged one."""
        raw, _ = schema.load(path, json.loads, OPTS_VERSION)
        return cls(
            type=str(raw.get("MountType") or ""),
            o=str(raw.get("MountOpts") or ""),
            device=str(raw.get("MountDevice") or ""),
        )


def validate_options(opts: Mapping[str, str]) -> None:
    """The local driver's checks of `docker volume create -o`, with moby's messages."""
    for key in opts:
        if key not in _VALID_OPTS:
            raise InvalidParameter(f'invalid option: "{key}"')
    if "size" in opts:
        # moby limits a volume's size with XFS project quotas; a data root without them refuses
        if ram_in_bytes(opts["size"]) > 0:
            raise InvalidParameter("quota size requested but no quota support")
    for key, needed in _MANDATORY:
        if key in opts:
            for other in needed:
                if other not in opts:
                    raise InvalidParameter(f'missing required option: "{other}"')


@dataclass
class _LocalVolume:
    name: str
    root: str  # <volumes>/<name>
    opts: LocalOptions | None
    users: set[str] = field(default_factory=set)  # mount ids
    mounted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def path(self) -> str:
        return os.path.join(self.root, DATA_DIR)

    def describe(self) -> DriverVolume:
        try:
            created: float | None = os.stat(self.root).st_ctime
        except OSError:
            created = None
        return DriverVolume(self.name, self.path, created)


class RefusedVolume(Conflict):
    """A volume whose opts.json this build cannot use (a newer release's, or damaged)."""


class LocalDriver:
    """moby's local driver. ROOT is `<data-root>/volumes` (it also holds the service's metadata.db)."""

    def __init__(self, root: str, root_owner: tuple[int, int] | None = None) -> None:
        self.root = root
        # With userns-remap, the container's root on the host: it owns each new volume's _data.
        self.root_owner = root_owner
        os.makedirs(root, mode=0o701, exist_ok=True)
        self._lock = threading.Lock()
        self._volumes: dict[str, _LocalVolume] = {}
        self._refused: dict[str, str] = {}  # name -> why (the LayoutError's text, naming the file)
        self._load()

    @property
    def name(self) -> str:
        return "local"

    def scope(self) -> str:
        return "local"

    # --- start-up -------------------------------------------------------------------------

    def _load(self) -> None:
        mounted = set(mount_points(self.root))
        for entry in os.scandir(self.root):
            if entry.name.startswith("."):
                self._remove_leftover(entry.path)
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue  # metadata.db and its journal
            opts = None
            try:
                opts = LocalOptions.load(os.path.join(entry.path, OPTS_FILE))
            except FileNotFoundError:
                pass
            except schema.LayoutError as exc:
                log.error("volume %s is refused: %s", entry.name, exc)
                self._refused[entry.name] = str(exc)
                continue
            vol = _LocalVolume(entry.name, entry.path, opts)
            # a volume still mounted from before a restart (live restore) counts as mounted
            vol.mounted = vol.path in mounted
            self._volumes[entry.name] = vol

    def _remove_leftover(self, path: str) -> None:
        if any(p for p in mount_points(path)):
            return  # never delete through a mount; it stays for a person to look at
        with contextlib.suppress(OSError):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    # --- driver interface -----------------------------------------------------------------

    def create(self, name: str, opts: Mapping[str, str]) -> DriverVolume:
        validate_local_name(name)
        with self._lock:
            self._check_refused(name)
            existing = self._volumes.get(name)
            if existing is not None:
                return existing.describe()
            options = LocalOptions.from_opts(opts)
            final = os.path.join(self.root, name)
            staging = os.path.join(self.root, f".creating-{name}-{secrets.token_hex(4)}")
            os.mkdir(staging, 0o755)
            try:
                os.mkdir(os.path.join(staging, DATA_DIR), 0o755)
                if self.root_owner is not None:
                    os.chown(os.path.join(staging, DATA_DIR), *self.root_owner)
                if options is not None:
                    atomicfile.write_atomic(os.path.join(staging, OPTS_FILE), options.to_json())
                atomicfile.fsync_dir(staging)
                os.rename(staging, final)
            except OSError as exc:
                shutil.rmtree(staging, ignore_errors=True)
                if os.path.exists(final):
                    raise DriverError(f"volume already exists under {final}") from exc
                raise DriverError(
                    f"error while creating volume root path '{final}': {_go_error(exc)}"
                ) from exc
            atomicfile.fsync_dir(self.root)
            vol = _LocalVolume(name, final, options)
            self._volumes[name] = vol
            return vol.describe()

    def remove(self, name: str) -> None:
        with self._lock:
            self._check_refused(name)
            vol = self._volumes.get(name)
            if vol is None:
                raise NotFound("no such volume")
            with vol.lock:
                if vol.users:
                    raise DriverError("volume has active mounts")
                self._unmount(vol)
                if mount_points(vol.root):
                    raise DriverError(f"volume {name} still has mounts under {vol.root}")
                trash = os.path.join(self.root, f".removing-{name}-{secrets.token_hex(4)}")
                try:
                    os.rename(vol.root, trash)
                except FileNotFoundError:
                    trash = ""
                except OSError as exc:
                    raise DriverError(f"error removing volume path '{vol.root}': {_go_error(exc)}") from exc
                atomicfile.fsync_dir(self.root)
                del self._volumes[name]
            if trash:
                shutil.rmtree(trash, ignore_errors=True)

    def get(self, name: str) -> DriverVolume | None:
        with self._lock:
            self._check_refused(name)
            vol = self._volumes.get(name)
        return None if vol is None else vol.describe()

    def list_volumes(self) -> list[DriverVolume]:
        with self._lock:
            vols = list(self._volumes.values())
        return [v.describe() for v in vols]

    def options(self, name: str) -> LocalOptions | None:
        with self._lock:
            vol = self._volumes.get(name)
        return None if vol is None else vol.opts

    def mount(self, name: str, mount_id: str) -> str:
        vol = self._get(name)
        with vol.lock:
            if vol.opts is not None and vol.opts.needs_mount() and not vol.mounted:
                _mount(vol.opts, vol.path)
                vol.mounted = True
            vol.users.add(mount_id)
        return vol.path

    def unmount(self, name: str, mount_id: str) -> None:
        vol = self._get(name)
        with vol.lock:
            vol.users.discard(mount_id)
            if not vol.users:
                self._unmount(vol)

    # --- beyond the driver interface --------------------------------------------------------

    def restore_mount(self, name: str, mount_id: str) -> str:
        """Count MOUNT_ID as a user again after a daemon restart (the mount, if any, survived)."""
        return self.mount(name, mount_id)

    def unmount_idle(self) -> list[str]:
        """Unmount volumes nobody uses (mounted before a restart by containers that are gone)."""
        done = []
        with self._lock:
            vols = list(self._volumes.values())
        for vol in vols:
            with vol.lock:
                if vol.mounted and not vol.users:
                    self._unmount(vol)
                    done.append(vol.name)
        return done

    def users(self, name: str) -> set[str]:
        return set(self._get(name).users)

    def refused(self) -> dict[str, str]:
        """The volumes refused at start (name -> why), which list_volumes leaves out."""
        with self._lock:
            return dict(self._refused)

    def _check_refused(self, name: str) -> None:
        why = self._refused.get(name)
        if why is not None:
            raise RefusedVolume(f"volume {name} is not usable by this build: {why}")

    def _get(self, name: str) -> _LocalVolume:
        with self._lock:
            self._check_refused(name)
            vol = self._volumes.get(name)
        if vol is None:
            raise NotFound("no such volume")
        return vol

    def _unmount(self, vol: _LocalVolume) -> None:
        if vol.opts is None or not vol.opts.needs_mount():
            return
        if vol.path in mount_points(vol.path):
            try:
                unmount(vol.path)
            except OSError as exc:
                if vol.path in mount_points(vol.path):
                    raise DriverError(f"unmount {vol.path}: {_go_error(exc)}") from exc
        vol.mounted = False


def _mount(opts: LocalOptions, target: str) -> None:
    """mount -t TYPE -o O DEVICE TARGET, as moby's mount.Mount: flags out of O, the rest as data."""
    if not opts.device:
        raise DriverError("missing device in volume options")
    o = _resolve_addr(opts.type, opts.o)
    parsed = parse_options([x for x in o.split(",") if x]) if o else parse_options([])
    flags = parsed.flags
    try:
        libc.mount(opts.device, target, opts.type or None, flags & ~libc.MS_REMOUNT, parsed.data or None)
        try:
            for prop in parsed.propagation:
                libc.mount(None, target, None, prop, None)
            if flags & libc.MS_BIND and flags & libc.MS_RDONLY:
                # a bind mount ignores MS_RDONLY until it is remounted
                libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY, None)
        except OSError:
            unmount(target)
            raise
    except OSError as exc:
        text = f"mount {opts.device}:{target}"
        if flags:
            text += f", flags: 0x{flags:x}"
        if parsed.data:
            text += f", data: {parsed.data}"
        text = f"failed to mount local volume: {text}: {_go_error(exc)}"
        raise DriverError(_hide_password(text, opts.o)) from exc


def _resolve_addr(fstype: str, o: str) -> str:
    """nfs/cifs want an IP in `addr=`; a host name there is resolved first, as moby does."""
    if fstype not in ("nfs", "cifs"):
        return o
    match = re.search(r"(?:^|,)addr=([^,]+)", o)
    if not match:
        return o
    addr = match.group(1)
    try:
        socket.inet_pton(socket.AF_INET, addr)
        return o
    except OSError:
        pass
    try:
        ip = socket.getaddrinfo(addr, None)[0][4][0]
    except OSError as exc:
        raise DriverError(f"error resolving passed in network volume address: {exc}") from exc
    return o.replace("addr=" + addr, "addr=" + str(ip), 1)


def _hide_password(text: str, o: str) -> str:
    match = re.search(r"(?:^|,)password=([^,]*)", o)
    if match and match.group(1):
        return text.replace("password=" + match.group(1), "password=********")
    return text


def _go_error(exc: OSError) -> str:
    """An errno as Go prints it ("no such file or directory")."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


__all__ = ["DATA_DIR", "PROPAGATION", "LocalDriver", "LocalOptions", "RefusedVolume", "validate_options"]
