"""Records on disk under the state directory, one JSON file each, replaced atomically.

    <state>/networks/<id>.json     a Network
    <state>/sandboxes/<cid>.json   a Sandbox with its endpoints and published ports
    <state>/ipam/<network id>.json the addresses handed out on that network

A file is written whole to a temporary name, fsync'd and renamed over the old one, so a
daemon killed at any moment leaves either the old record or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dockerd.network.model import Network, Sandbox, from_dict, to_dict


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        for kind in ("networks", "sandboxes", "ipam"):
            (root / kind).mkdir(parents=True, exist_ok=True)

    def _path(self, kind: str, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad record key {key!r}")
        return self.root / kind / f"{key}.json"

    def write(self, kind: str, key: str, data: dict[str, Any]) -> None:
        path = self._path(kind, key)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def read(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            with open(self._path(kind, key)) as f:
                data: dict[str, Any] = json.load(f)
                return data
        except FileNotFoundError:
            return None

    def delete(self, kind: str, key: str) -> None:
        self._path(kind, key).unlink(missing_ok=True)

    def keys(self, kind: str) -> list[str]:
        return sorted(p.stem for p in (self.root / kind).glob("*.json"))

    # typed views -------------------------------------------------------------------------

    def save_network(self, net: Network) -> None:
        self.write("networks", net.id, to_dict(net))

    def networks(self) -> list[Network]:
        found = []
        for key in self.keys("networks"):
            data = self.read("networks", key)
            if data is not None:
                found.append(from_dict(Network, data))
        return found

    def save_sandbox(self, sandbox: Sandbox) -> None:
        self.write("sandboxes", sandbox.container_id, to_dict(sandbox))

    def sandboxes(self) -> list[Sandbox]:
        found = []
        for key in self.keys("sandboxes"):
            data = self.read("sandboxes", key)
            if data is not None:
                found.append(from_dict(Sandbox, data))
        return found
