"""Loading and checking an OCI bundle's config.json.

The spec stays a plain dict (it is passed on verbatim to hooks and saved in the state),
but every field the runtime acts on is type-checked here first, so a wrong type is a
clear message at `create` instead of a failure deep inside the container's init.
"""

from __future__ import annotations

import os

from common import fastjson
from runtime.errors import PyruncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_FLAGS = {
    "pid": 0x20000000,
    "network": 0x40000000,
    "mount": 0x00020000,
    "ipc": 0x08000000,
    "uts": 0x04000000,
    "user": 0x10000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}
# Directory names under /proc/PID/ns/ for each spec namespace type.
NAMESPACE_PROC_NAMES = {
    "pid": "pid",
    "network": "net",
    "mount": "mnt",
    "ipc": "ipc",
    "uts": "uts",
    "user": "user",
    "cgroup": "cgroup",
    "time": "time",
}

_STR, _INT, _BOOL, _LIST, _DICT, _NUM = str, int, bool, list, dict, (int, float)


def _fail(path: str, want: str) -> PyruncError:
    return PyruncError(f"invalid config.json: {path} must be {want}")


def _expect(value: Any, kind: Any, path: str, want: str) -> None:
    # bool is an int subclass; a JSON true where a number belongs is still wrong.
    if kind is int and isinstance(value, bool):
        raise _fail(path, want)
    if not isinstance(value, kind):
        raise _fail(path, want)


def _opt(obj: dict[str, Any], key: str, kind: Any, path: str, want: str) -> Any:
    if key in obj and obj[key] is not None:
        _expect(obj[key], kind, f"{path}.{key}", want)
        return obj[key]
    return None


def _str_list(obj: dict[str, Any], key: str, path: str) -> None:
    value = _opt(obj, key, _LIST, path, "an array of strings")
    if value is not None and not all(isinstance(v, str) for v in value):
        raise _fail(f"{path}.{key}", "an array of strings")


def _check_process(proc: Any, path: str = "process") -> None:
    _expect(proc, _DICT, path, "an object")
    _opt(proc, "terminal", _BOOL, path, "a boolean")
    _str_list(proc, "args", path)
    _str_list(proc, "env", path)
    cwd = _opt(proc, "cwd", _STR, path, "a string")
    if cwd is not None and not cwd.startswith("/"):
        raise PyruncError(f"invalid config.json: {path}.cwd {cwd!r} is not an absolute path")
    _opt(proc, "noNewPrivileges", _BOOL, path, "a boolean")
    _opt(proc, "oomScoreAdj", _INT, path, "an integer")
    _opt(proc, "apparmorProfile", _STR, path, "a string")
    _opt(proc, "selinuxLabel", _STR, path, "a string")
    user = _opt(proc, "user", _DICT, path, "an object")
    if user is not None:
        _opt(user, "uid", _INT, f"{path}.user", "an integer")
        _opt(user, "gid", _INT, f"{path}.user", "an integer")
        _opt(user, "umask", _INT, f"{path}.user", "an integer")
        gids = _opt(user, "additionalGids", _LIST, f"{path}.user", "an array of integers")
        if gids is not None and not all(isinstance(g, int) and not isinstance(g, bool) for g in gids):
            raise _fail(f"{path}.user.additionalGids", "an array of integers")
    caps = _opt(proc, "capabilities", _DICT, path, "an object")
    if caps is not None:
        for key in ("bounding", "effective", "inheritable", "permitted", "ambient"):
            _str_list(caps, key, f"{path}.capabilities")
    rlimits = _opt(proc, "rlimits", _LIST, path, "an array")
    for i, rl in enumerate(rlimits or []):
        p = f"{path}.rlimits[{i}]"
        _expect(rl, _DICT, p, "an object")
        _expect(rl.get("type"), _STR, f"{p}.type", "a string")
        _expect(rl.get("hard", 0), _INT, f"{p}.hard", "an integer")
        _expect(rl.get("soft", 0), _INT, f"{p}.soft", "an integer")
    size = _opt(proc, "consoleSize", _DICT, path, "an object")
    if size is not None:
        _opt(size, "height", _INT, f"{path}.consoleSize", "an integer")
        _opt(size, "width", _INT, f"{path}.consoleSize", "an integer")


def check_process(proc: Any, path: str = "process") -> None:
    """Validate a process object on its own (used by `exec --process`)."""
    _check_process(proc, path)
    if not proc.get("args"):
        raise PyruncError(f"invalid {path}: args must not be empty")


def _check_hooks(hooks: Any) -> None:
    _expect(hooks, _DICT, "hooks", "an object")
    for stage, entries in hooks.items():
        _expect(entries, _LIST, f"hooks.{stage}", "an array")
        for i, hook in enumerate(entries):
            p = f"hooks.{stage}[{i}]"
            _expect(hook, _DICT, p, "an object")
            _expect(hook.get("path"), _STR, f"{p}.path", "a string")
            _str_list(hook, "args", p)
            _str_list(hook, "env", p)
            _opt(hook, "timeout", _INT, p, "an integer")


def _check_linux(linux: Any) -> None:
    _expect(linux, _DICT, "linux", "an object")
    namespaces = _opt(linux, "namespaces", _LIST, "linux", "an array")
    seen = set()
    for i, ns in enumerate(namespaces or []):
        p = f"linux.namespaces[{i}]"
        _expect(ns, _DICT, p, "an object")
        kind = ns.get("type")
        if kind not in NAMESPACE_FLAGS:
            raise PyruncError(f"invalid config.json: {p}.type {kind!r} is not a known namespace type")
        if kind in seen:
            raise PyruncError(f"invalid config.json: namespace {kind!r} is listed twice")
        seen.add(kind)
        _opt(ns, "path", _STR, p, "a string")
    for key in ("uidMappings", "gidMappings"):
        maps = _opt(linux, key, _LIST, "linux", "an array")
        for i, m in enumerate(maps or []):
            p = f"linux.{key}[{i}]"
            _expect(m, _DICT, p, "an object")
            for field in ("containerID", "hostID", "size"):
                _expect(m.get(field), _INT, f"{p}.{field}", "an integer")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        raise PyruncError("invalid config.json: uid/gid mappings need a user namespace")
    _opt(linux, "resources", _DICT, "linux", "an object")
    _opt(linux, "cgroupsPath", _STR, "linux", "a string")
    sysctl = _opt(linux, "sysctl", _DICT, "linux", "an object")
    if sysctl and not all(isinstance(v, str) for v in sysctl.values()):
        raise _fail("linux.sysctl", "an object of strings")
    _str_list(linux, "maskedPaths", "linux")
    _str_list(linux, "readonlyPaths", "linux")
    prop = _opt(linux, "rootfsPropagation", _STR, "linux", "a string")
    if prop and prop not in (
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
    ):
        raise PyruncError(f"invalid config.json: linux.rootfsPropagation {prop!r} is not a propagation mode")
    _opt(linux, "seccomp", _DICT, "linux", "an object")
    devices = _opt(linux, "devices", _LIST, "linux", "an array")
    for i, dev in enumerate(devices or []):
        p = f"linux.devices[{i}]"
        _expect(dev, _DICT, p, "an object")
        _expect(dev.get("path"), _STR, f"{p}.path", "a string")
        if dev.get("type") not in ("c", "b", "u", "p"):
            raise PyruncError(f"invalid config.json: {p}.type must be one of c, b, u, p")
        if dev.get("type") != "p":
            _expect(dev.get("major"), _INT, f"{p}.major", "an integer")
            _expect(dev.get("minor"), _INT, f"{p}.minor", "an integer")
        _opt(dev, "fileMode", _INT, p, "an integer")
        _opt(dev, "uid", _INT, p, "an integer")
        _opt(dev, "gid", _INT, p, "an integer")


def validate(spec: Any) -> None:
    _expect(spec, _DICT, "the top level", "an object")
    if not isinstance(spec.get("ociVersion"), str):
        raise _fail("ociVersion", "a string")
    root = spec.get("root")
    _expect(root, _DICT, "root", "an object")
    _expect(root.get("path"), _STR, "root.path", "a string")
    _opt(root, "readonly", _BOOL, "root", "a boolean")
    if "process" in spec:
        _check_process(spec["process"])
    _opt(spec, "hostname", _STR, "", "a string")
    _opt(spec, "domainname", _STR, "", "a string")
    mounts = _opt(spec, "mounts", _LIST, "", "an array")
    for i, m in enumerate(mounts or []):
        p = f"mounts[{i}]"
        _expect(m, _DICT, p, "an object")
        _expect(m.get("destination"), _STR, f"{p}.destination", "a string")
        _opt(m, "type", _STR, p, "a string")
        _opt(m, "source", _STR, p, "a string")
        _str_list(m, "options", p)
    if spec.get("hooks") is not None:
        _check_hooks(spec["hooks"])
    annotations = _opt(spec, "annotations", _DICT, "", "an object")
    if annotations and not all(isinstance(v, str) for v in annotations.values()):
        raise _fail("annotations", "an object of strings")
    if spec.get("linux") is not None:
        _check_linux(spec["linux"])


def load_bundle(bundle: str) -> tuple[dict[str, Any], str]:
    """Read and validate BUNDLE/config.json; return the spec and the absolute rootfs path."""
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        raise PyruncError(f"bundle {bundle} does not exist or is not a directory")
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            spec = fastjson.loads(f.read())
    except FileNotFoundError:
        raise PyruncError(f"bundle {bundle} has no config.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PyruncError(f"invalid config.json in {bundle}: {exc}") from None
    except OSError as exc:
        raise PyruncError(f"cannot read {path}: {exc.strerror}") from None
    validate(spec)
    if "process" not in spec:
        raise PyruncError("invalid config.json: process is required to create a container")
    if not spec["process"].get("args"):
        raise PyruncError("invalid config.json: process.args must not be empty")
    if not spec["process"].get("cwd"):
        raise PyruncError("invalid config.json: process.cwd is required")
    rootfs = spec["root"]["path"]
    if not os.path.isabs(rootfs):
        rootfs = os.path.join(bundle, rootfs)
    rootfs = os.path.realpath(rootfs)
    if not os.path.isdir(rootfs):
        raise PyruncError(f"rootfs {rootfs} does not exist")
    return spec, rootfs


def namespaces(spec: dict[str, Any]) -> list[dict[str, str]]:
    return list((spec.get("linux") or {}).get("namespaces") or [])


def has_namespace(spec: dict[str, Any], kind: str) -> bool:
    return any(ns.get("type") == kind for ns in namespaces(spec))
