"""A container's security settings as dockerd decides them.

`--security-opt` values (parsed and refused at create with dockerd's wording), `--privileged`
(every capability the daemon may grant, every host device, no seccomp, no masked or
read-only paths), and the daemon's defaults from daemon.json or flags: `seccomp-profile`,
`no-new-privileges`, `default-ulimits`. spec.py calls `apply` to write them into the OCI spec.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from dockerd.engine import seccomp_profile
from dockerd.engine.errors import InvalidParameter
from dockerd.engine.userns import IdentityMapping

# Go's strconv.ParseBool, which dockerd uses for no-new-privileges=VALUE.
_GO_BOOLS = {
    "1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
    "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False,
}  # fmt: skip
# /dev entries runc's device walk (which dockerd uses for --privileged) does not descend into.
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def _go_quote(text: str) -> str:
    """Go's %q, as dockerd's messages quote the option."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class SecurityOpts:
    """What a container's SecurityOpt list asks for."""

    seccomp: str | None = None  # None: the daemon's profile; "unconfined", "builtin" or a profile's JSON
    no_new_privileges: bool | None = None  # None: the daemon's default
    apparmor: str | None = None
    labels: tuple[str, ...] = ()


def parse_security_opts(opts: list[str]) -> SecurityOpts:
    """dockerd's parseSecurityOpt: KEY=VALUE (or the deprecated KEY:VALUE); the last one wins."""
    seccomp: str | None = None
    nnp: bool | None = None
    apparmor: str | None = None
    labels: list[str] = []
    for opt in opts:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            labels.append("disable")
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidParameter(f"invalid --security-opt 1: {_go_quote(opt)}")
        if key == "label":
            labels.append(value)
        elif key == "apparmor":
            apparmor = value
        elif key == "seccomp":
            seccomp = value or None
        elif key == "no-new-privileges" and value in _GO_BOOLS:
            nnp = _GO_BOOLS[value]
        else:
            raise InvalidParameter(f"invalid --security-opt 2: {_go_quote(opt)}")
    return SecurityOpts(seccomp=seccomp, no_new_privileges=nnp, apparmor=apparmor, labels=tuple(labels))


@dataclass(frozen=True)
class SecurityDefaults:
    """The daemon's settings that every container starts from."""

    seccomp_profile: str = ""  # daemon.json seccomp-profile as given: "", "builtin", "unconfined" or a path
    profile: dict[str, Any] | None = None  # that file, decoded, when it is a path
    no_new_privileges: bool = False
    default_ulimits: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    userns: IdentityMapping | None = None  # userns-remap's mapping, None without remapping

    @classmethod
    def from_settings(
        cls,
        profile_path: str,
        no_new_privileges: bool,
        ulimits: dict[str, Any],
        userns: IdentityMapping | None = None,
    ) -> SecurityDefaults:
        """Read the profile file now, as dockerd does at start-up; raises InvalidParameter."""
        profile = None
        if profile_path not in ("", "builtin", "unconfined"):
            try:
                with open(profile_path) as f:
                    text = f.read()
            except OSError as exc:
                reason = (exc.strerror or str(exc)).lower()
                raise InvalidParameter(
                    f"opening seccomp profile ({profile_path}) failed: open {profile_path}: {reason}"
                ) from None
            profile = seccomp_profile.decode(text)
        return cls(
            seccomp_profile=profile_path,
            profile=profile,
            no_new_privileges=no_new_privileges,
            default_ulimits=tuple(ulimits[name] for name in sorted(ulimits)),
            userns=userns,
        )

    def security_options(self) -> list[str]:
        """`docker info` SecurityOptions: what this daemon applies (no AppArmor, SELinux)."""
        options = [f"name=seccomp,profile={self.seccomp_profile or 'default'}"]
        return [*options, "name=userns"] if self.userns is not None else options

    def merged_ulimits(self, ulimits: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """A container's ulimits plus the daemon's for the names it does not set (dockerd's mergeUlimits)."""
        own = list(ulimits or [])
        named = {u.get("Name") for u in own}
        return own + [dict(u) for u in self.default_ulimits if u["Name"] not in named]


# --- the host ------------------------------------------------------------------------------


def bounding_set(status_path: str = "/proc/self/status") -> int:
    """The daemon's capability bounding set: what it (and so any container) can be given."""
    with open(status_path) as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return 0


def grantable(caps_by_number: list[str]) -> list[str]:
    """The capabilities in the daemon's bounding set, as Docker 23+ gives `--privileged` and
    `--cap-add ALL` (moby#42933): asking runc for one outside it fails the container with
    "unable to apply caps: operation not permitted" (Docker 20.10 does just that here)."""
    mask = bounding_set()
    return [name for bit, name in enumerate(caps_by_number) if mask >> bit & 1]


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every character and block device under /dev, as runc's device walk lists them for
    `--privileged` (not pts/, shm/, mqueue/..., not /dev/console, not symlinks)."""
    found: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            if entry.name not in _SKIPPED_DEV_DIRS:
                found += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
        if kind:
            found.append({
                "path": entry.path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            })  # fmt: skip
    return found


def apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y") and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


# --- create ---------------------------------------------------------------------------------


def check_at_create(host: dict[str, Any], bounding: list[str], defaults: SecurityDefaults) -> list[str]:
    """Validate a new container's security settings (InvalidParameter, 400) and fill in what
    dockerd records at create; returns the create warnings. `host` is updated in place."""
    opts = parse_security_opts(list(host.get("SecurityOpt") or []))
    warnings = [*_apparmor_warnings(opts), *_label_warnings(opts)]
    if remapped(host, defaults):
        _check_remapped(host)
    if not host.get("Privileged"):
        seccomp = container_seccomp(opts, bounding, defaults)
        if seccomp is not None:
            seccomp_profile.check_runtime_can_load(seccomp)
    security = list(host.get("SecurityOpt") or [])
    # dockerd's generateSecurityOpt: no SELinux labels for a container that shares the host's
    # IPC or PID namespace or is privileged, unless the caller chose labels itself.
    chose_label = any(opt.split("=", 1)[0] == "label" for opt in security)
    if not chose_label and (
        host.get("Privileged") or host.get("IpcMode") == "host" or host.get("PidMode") == "host"
    ):
        security.append("label=disable")
    if security:
        host["SecurityOpt"] = security
    return warnings


def remapped(host: dict[str, Any], defaults: SecurityDefaults) -> bool:
    """Whether the container gets a user namespace of the daemon's mapping (not `--userns=host`)."""
    return defaults.userns is not None and host.get("UsernsMode") != "host"


def _check_remapped(host: dict[str, Any]) -> None:
    """What dockerd refuses at create when the container would be remapped."""
    if host.get("Privileged"):
        raise InvalidParameter(
            "privileged mode is incompatible with user namespaces.  You must run the container in the "
            "host namespace when running privileged mode"
        )
    if host.get("NetworkMode") == "host":
        raise InvalidParameter("cannot share the host's network namespace when user namespaces are enabled")
    if host.get("PidMode") == "host":
        raise InvalidParameter("cannot share the host PID namespace when user namespaces are enabled")


def _apparmor_warnings(opts: SecurityOpts) -> list[str]:
    if opts.apparmor is None:
        return []
    if not apparmor_enabled():
        # dockerd ignores it silently on such a host; say so instead.
        return [
            f"AppArmor is not enabled on this host: security option apparmor={opts.apparmor} has no effect"
        ]
    if opts.apparmor != "unconfined":
        raise InvalidParameter(
            f"AppArmor profiles are not supported by pydockerd (apparmor={opts.apparmor}): only apparmor=unconfined"
        )
    return []


def _label_warnings(opts: SecurityOpts) -> list[str]:
    wanted = [label for label in opts.labels if label != "disable"]
    if not wanted:
        return []
    if not selinux_enabled():
        return [
            f"SELinux is not enabled on this host: security option label={label} has no effect"
            for label in wanted
        ]
    raise InvalidParameter(
        f"SELinux labels are not supported by pydockerd (label={wanted[0]}): only label=disable"
    )


# --- the spec -------------------------------------------------------------------------------


def container_seccomp(
    opts: SecurityOpts, bounding: list[str], defaults: SecurityDefaults
) -> dict[str, Any] | None:
    """The OCI linux.seccomp for a non-privileged container, None for none."""
    choice = opts.seccomp
    if choice == "unconfined":
        return None
    if choice is None:
        if defaults.seccomp_profile == "unconfined":
            return None
        profile = defaults.profile if defaults.profile is not None else seccomp_profile.load_default()
    elif choice == "builtin":  # Docker's default whatever the daemon's profile (Docker 25+)
        profile = seccomp_profile.load_default()
    else:
        profile = seccomp_profile.decode(choice)
    return seccomp_profile.to_oci(profile, bounding)


def apply(spec: dict[str, Any], host: dict[str, Any], defaults: SecurityDefaults) -> None:
    """Write a container's security settings into its OCI spec (capabilities already set)."""
    opts = parse_security_opts(list(host.get("SecurityOpt") or []))
    process, linux = spec["process"], spec["linux"]
    privileged = bool(host.get("Privileged"))
    nnp = defaults.no_new_privileges if opts.no_new_privileges is None else opts.no_new_privileges
    if nnp:
        process["noNewPrivileges"] = True
    if remapped(host, defaults):
        assert defaults.userns is not None
        _add_user_namespace(linux, defaults.userns)
    if defaults.userns is not None:
        # dockerd: a read-only cgroup mount cannot be remounted in a user namespace, so a
        # remapping daemon leaves every container's cgroup mount writable
        for mount in spec.get("mounts") or []:
            if mount.get("type") == "cgroup":
                mount["options"] = [o for o in mount.get("options") or [] if o != "ro"]
    if privileged:
        linux["devices"] = [*linux.get("devices", []), *host_devices()]
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        return
    seccomp = container_seccomp(opts, list(process["capabilities"]["bounding"]), defaults)
    if seccomp is not None:
        linux["seccomp"] = seccomp


def _add_user_namespace(linux: dict[str, Any], mapping: IdentityMapping) -> None:
    """A new user namespace with the daemon's mapping; joined instead when the container shares
    a namespace of another container's init (dockerd: to share one, they must share the user
    namespace too)."""
    namespaces = linux.setdefault("namespaces", [])
    donor = next((ns["path"] for ns in namespaces if str(ns.get("path", "")).startswith("/proc/")), None)
    user: dict[str, str] = {"type": "user"}
    if donor is not None:
        user["path"] = donor.rsplit("/", 1)[0] + "/user"
    namespaces.append(user)
    linux["uidMappings"], linux["gidMappings"] = mapping.oci()
