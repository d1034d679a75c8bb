"""What the volume service asks of a driver (moby's volume.Driver), and what a driver answers.

Two kinds exist: the built-in `local` driver (local.py) and volume plugins reached over
Docker's plugin protocol (plugin.py). Drivers raise the engine's error kinds with the cause
alone ("disk full"); the service puts moby's "<op> <name>: " in front.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class DriverVolume:
    """A volume as its driver reports it."""

    name: str
    mountpoint: str  # where the data is (or will be) on the host; "" when a plugin does not say
    created_at: float | None = None  # seconds since the epoch; None: the driver does not know
    status: dict[str, Any] | None = None  # driver-specific details shown by `volume inspect`


class Driver(Protocol):
    @property
    def name(self) -> str: ...

    def scope(self) -> str:
        """ "local" (the volume exists on this host only) or "global"."""
        ...

    def create(self, name: str, opts: Mapping[str, str]) -> DriverVolume:
        """Create NAME, or return it unchanged if it exists (options are not compared, as in moby)."""
        ...

    def remove(self, name: str) -> None: ...

    def get(self, name: str) -> DriverVolume | None:
        """NAME, or None if the driver does not have it; errors only for failures to ask."""
        ...

    def list_volumes(self) -> list[DriverVolume]: ...

    def mount(self, name: str, mount_id: str) -> str:
        """Make the volume's data available on the host for one user (MOUNT_ID); the host path."""
        ...

    def unmount(self, name: str, mount_id: str) -> None:
        """Release MOUNT_ID's use; the driver unmounts when its last user is gone."""
        ...
