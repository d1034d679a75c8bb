"""A container's mount point, as dockerd keeps it in `config.v2.json` and shows it in inspect."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

VOLUME = "volume"
BIND = "bind"
TMPFS = "tmpfs"
DEFAULT_PROPAGATION = "rprivate"


@dataclass
class MountPoint:
    """One entry of a container's mounts (moby's volume/mounts.MountPoint).

    `spec` is the Mounts API struct the point came from (Docker keeps it as `Spec`); a volume
    point whose spec names no source is the container's own (anonymous) volume, which
    `rm -v` removes. `mode` is the raw option string of a `-v` bind ("ro,rslave", "z",
    "nocopy"); Docker stores it under the key "Relabel". `mount_id` is the driver mount the
    running container holds (Docker's `ID`), so that it is released with the same id.
    """

    type: str
    destination: str
    source: str = ""
    name: str = ""
    driver: str = ""
    rw: bool = True
    mode: str = ""
    propagation: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    copy_data: bool = True
    skip_mountpoint_creation: bool = False
    mount_id: str = ""
    from_container: bool = False  # copied by --volumes-from (while the container is created; not kept)

    @property
    def anonymous(self) -> bool:
        """A volume the container made for itself (no name given): removed by `rm -v`."""
        return self.type == VOLUME and not self.spec.get("Source")

    def volume_options(self) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """(driver options, labels) the Mounts API asked for a volume this point creates."""
        vo = self.spec.get("VolumeOptions") or {}
        dc = vo.get("DriverConfig") or {}
        return dc.get("Options") or None, vo.get("Labels") or None

    def copy(self, **changes: Any) -> MountPoint:
        return replace(self, spec=dict(self.spec), **changes)

    def to_inspect(self, source: str | None = None) -> dict[str, Any]:
        """Docker's `Mounts` entry; SOURCE: the path a volume's driver reports now (moby asks it)."""
        out: dict[str, Any] = {"Type": self.type}
        if self.name:
            out["Name"] = self.name
        out["Source"] = self.source if source is None else source
        out["Destination"] = self.destination
        if self.driver:
            out["Driver"] = self.driver
        out.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return out

    def to_record(self) -> dict[str, Any]:
        """The `MountPoints` value in config.v2.json, with Docker's key names."""
        out: dict[str, Any] = {
            "Source": self.source,
            "Destination": self.destination,
            "RW": self.rw,
            "Name": self.name,
            "Driver": self.driver,
            "Type": self.type,
            "Relabel": self.mode,
            "Propagation": self.propagation,
            "Spec": self.spec,
            "SkipMountpointCreation": self.skip_mountpoint_creation,
        }
        if self.mount_id:
            out["ID"] = self.mount_id
        return out

    @classmethod
    def from_record(cls, raw: dict[str, Any]) -> MountPoint:
        return cls(
            type=str(raw.get("Type") or VOLUME),
            destination=str(raw.get("Destination") or ""),
            source=str(raw.get("Source") or ""),
            name=str(raw.get("Name") or ""),
            driver=str(raw.get("Driver") or ""),
            rw=bool(raw.get("RW", True)),
            mode=str(raw.get("Relabel") or ""),
            propagation=str(raw.get("Propagation") or ""),
            spec=dict(raw.get("Spec") or {}),
            copy_data=False,  # only ever used when the container is created
            skip_mountpoint_creation=bool(raw.get("SkipMountpointCreation")),
            mount_id=str(raw.get("ID") or ""),
        )
