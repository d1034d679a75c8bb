"""A volume plugin as a driver: moby's VolumeDriver proxy over the plugin client.

Requests and answers are the protocol's: `VolumeDriver.Create {"Name", "Opts"}`,
`.Remove {"Name"}`, `.Mount {"Name", "ID"} -> {"Mountpoint"}`, `.Unmount {"Name", "ID"}`,
`.Path {"Name"} -> {"Mountpoint"}`, `.Get {"Name"} -> {"Volume": {"Name", "Mountpoint",
"CreatedAt", "Status"}}`, `.List -> {"Volumes": [...]}`, `.Capabilities -> {"Capabilities":
{"Scope"}}`; every answer may carry `Err`, which becomes the error's whole text (moby's words).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dockerd.volumes.driver import DriverVolume
from dockerd.volumes.errors import NotFound
from dockerd.volumes.pluginclient import PluginAnswerError, PluginClient


class PluginDriver:
    def __init__(self, name: str, client: PluginClient) -> None:
        self._name = name
        self.client = client
        self._scope: str | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def _call(self, method: str, args: dict[str, Any] | None, long: bool) -> dict[str, Any]:
        t = self.client.timeouts
        answer = self.client.call("VolumeDriver." + method, args, t.long if long else t.short)
        err = answer.get("Err")
        if err:
            raise PluginAnswerError(str(err))
        return answer

    def scope(self) -> str:
        with self._lock:
            if self._scope is None:
                try:
                    caps = self._call("Capabilities", {}, long=False).get("Capabilities") or {}
                    scope = str(caps.get("Scope") or "") if isinstance(caps, dict) else ""
                except PluginAnswerError:
                    scope = ""  # an old plugin without Capabilities: moby assumes local
                self._scope = scope if scope in ("local", "global") else "local"
            return self._scope

    def create(self, name: str, opts: Mapping[str, str]) -> DriverVolume:
        self._call("Create", {"Name": name, "Opts": dict(opts) if opts else None}, long=True)
        return DriverVolume(name, "")

    def remove(self, name: str) -> None:
        self._call("Remove", {"Name": name}, long=True)

    def get(self, name: str) -> DriverVolume | None:
        try:
            answer = self._call("Get", {"Name": name}, long=False)
        except PluginAnswerError:
            return None  # moby: any error the plugin answers means it does not have the volume
        vol = answer.get("Volume")
        if not isinstance(vol, dict):
            return None
        return _volume(vol, name)

    def list_volumes(self) -> list[DriverVolume]:
        answer = self._call("List", {}, long=False)
        vols = answer.get("Volumes") or []
        return [_volume(v, "") for v in vols if isinstance(v, dict) and v.get("Name")]

    def path(self, name: str) -> str:
        return str(self._call("Path", {"Name": name}, long=False).get("Mountpoint") or "")

    def mount(self, name: str, mount_id: str) -> str:
        answer = self._call("Mount", {"Name": name, "ID": mount_id}, long=True)
        mountpoint = str(answer.get("Mountpoint") or "")
        if not mountpoint:
            raise NotFound(f"the volume plugin {self._name} gave no mount point for {name}")
        return mountpoint

    def unmount(self, name: str, mount_id: str) -> None:
        self._call("Unmount", {"Name": name, "ID": mount_id}, long=True)


def _volume(raw: dict[str, Any], name: str) -> DriverVolume:
    status = raw.get("Status")
    return DriverVolume(
        name=str(raw.get("Name") or name),
        mountpoint=str(raw.get("Mountpoint") or ""),
        created_at=_parse_time(raw.get("CreatedAt")),
        status=status if isinstance(status, dict) and status else None,
    )


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
