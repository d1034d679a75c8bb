"""Records on disk under the state directory, one JSON file each, replaced atomically.

    <state>/networks/<id>.json     a Network
    <state>/sandboxes/<cid>.json   a Sandbox with its endpoints and published ports
    <state>/ipam/<network id>.json the addresses handed out on that network

A file is replaced whole (common/atomicfile.py: temporary file, fsync, rename, directory fsync),
so a daemon killed at any moment, or a power loss, leaves either the old record or the new one.
Each record carries `"Version": 1`, its schema's version, for the migrations of later schemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import atomicfile
from dockerd.network.model import Network, Sandbox, from_dict, to_dict

VERSION = 1  # the records' schema version, written into each one


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
        record = {**data, "Version": VERSION}  # every record says its schema (migrations: issue 19)
        atomicfile.write_text(self._path(kind, key), json.dumps(record, indent=1, sort_keys=True), 0o644)

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
