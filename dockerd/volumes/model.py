"""A volume as the service describes it, and Docker's JSON for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Volume:
    name: str
    driver: str
    mountpoint: str
    scope: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    created_at: float | None = None
    status: dict[str, Any] | None = None

    def to_api(self, *, status: bool = False, usage: tuple[int, int] | None = None) -> dict[str, Any]:
        """Docker's `Volume` object. status: include the driver's Status (inspect does);
        usage: (size, refcount) for `system df -v`'s UsageData."""
        out: dict[str, Any] = {
            "CreatedAt": format_time(self.created_at),
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": self.options,
            "Scope": self.scope,
        }
        if status and self.status:
            out["Status"] = self.status
        if usage is not None:
            out["UsageData"] = {"RefCount": usage[1], "Size": usage[0]}
        return out


def format_time(stamp: float | None) -> str:
    """Go's time.Format(RFC3339) in the daemon's time zone; the zero time when unknown."""
    if stamp is None:
        return GO_ZERO_TIME
    local = datetime.fromtimestamp(int(stamp), UTC).astimezone()
    text = local.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text
