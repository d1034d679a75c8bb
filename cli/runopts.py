"""`run`/`create` options and their translation into the Engine API's create body
(Config + HostConfig), with Docker's value syntaxes (sizes, env files, volumes, restart
policies, ulimits)."""

from __future__ import annotations

import os
import re

from cli import mountopts, netopts
from cli.flags import Command, Opt, UsageError, Values
from cli.healthopts import HEALTH_OPTIONS, healthcheck

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CREATE_OPTIONS: tuple[Opt, ...] = (
    Opt("attach", "a", "list", "Attach to STDIN, STDOUT or STDERR"),
    Opt("cap-add", "", "list", "Add Linux capabilities"),
    Opt("cap-drop", "", "list", "Drop Linux capabilities"),
    Opt("cpu-shares", "c", "int", "CPU shares (relative weight)"),
    Opt("cpus", "", "str", "Number of CPUs", metavar="decimal"),
    Opt("cpu-rt-period", "", "int", "Limit CPU real-time period in microseconds"),
    Opt("cpu-rt-runtime", "", "int", "Limit CPU real-time runtime in microseconds"),
    Opt("cpuset-cpus", "", "str", "CPUs in which to allow execution (0-3, 0,1)"),
    Opt("device", "", "list", "Add a host device to the container"),
    Opt("device-cgroup-rule", "", "list", "Add a rule to the cgroup allowed devices list"),
    Opt("domainname", "", "str", "Container NIS domain name"),
    Opt("entrypoint", "", "str", "Overwrite the default ENTRYPOINT of the image"),
    Opt("env", "e", "list", "Set environment variables"),
    Opt("env-file", "", "list", "Read in a file of environment variables"),
    Opt("group-add", "", "list", "Add additional groups to join"),
    Opt("hostname", "h", "str", "Container host name"),
    Opt("init", "", "bool", "Run an init inside the container that forwards signals and reaps processes"),
    Opt("interactive", "i", "bool", "Keep STDIN open even if not attached"),
    Opt("ipc", "", "str", "IPC mode to use"),
    Opt("label", "l", "list", "Set meta data on a container"),
    Opt("label-file", "", "list", "Read in a line delimited file of labels"),
    Opt("log-driver", "", "str", "Logging driver for the container"),
    Opt("log-opt", "", "list", "Log driver options"),
    Opt("memory", "m", "str", "Memory limit", metavar="bytes"),
    Opt("memory-reservation", "", "str", "Memory soft limit", metavar="bytes"),
    Opt(
        "memory-swap",
        "",
        "str",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
        metavar="bytes",
    ),
    Opt("name", "", "str", "Assign a name to the container"),
    Opt("oom-kill-disable", "", "bool", "Disable OOM Killer"),
    Opt("pid", "", "str", "PID namespace to use"),
    Opt("pids-limit", "", "int", "Tune container pids limit (set -1 for unlimited)"),
    Opt("privileged", "", "bool", "Give extended privileges to this container"),
    Opt("pull", "", "str", 'Pull image before running ("always", "missing", "never")', default="missing"),
    Opt("read-only", "", "bool", "Mount the container's root filesystem as read only"),
    Opt("restart", "", "str", "Restart policy to apply when a container exits", default="no"),
    Opt(
        "rm",
        "",
        "bool",
        "Automatically remove the container and its associated anonymous volumes when it exits",
    ),
    Opt("runtime", "", "str", "Runtime to use for this container"),
    Opt("security-opt", "", "list", "Security Options"),
    Opt("shm-size", "", "str", "Size of /dev/shm", metavar="bytes"),
    Opt("stop-signal", "", "str", "Signal to stop the container"),
    Opt("stop-timeout", "", "int", "Timeout (in seconds) to stop a container"),
    Opt("sysctl", "", "list", "Sysctl options", metavar="map"),
    Opt("tmpfs", "", "list", "Mount a tmpfs directory"),
    Opt("tty", "t", "bool", "Allocate a pseudo-TTY"),
    Opt("ulimit", "", "list", "Ulimit options", metavar="ulimit"),
    Opt("user", "u", "str", "Username or UID (format: <name|uid>[:<group|gid>])"),
    Opt("userns", "", "str", "User namespace to use"),
    Opt("uts", "", "str", "UTS namespace to use"),
    Opt("workdir", "w", "str", "Working directory inside the container"),
    *netopts.NETWORK_OPTIONS,
    *mountopts.MOUNT_OPTIONS,
    *HEALTH_OPTIONS,
)

RUN_ONLY: tuple[Opt, ...] = (
    Opt("detach", "d", "bool", "Run container in background and print container ID"),
    Opt("detach-keys", "", "str", "Override the key sequence for detaching a container"),
    Opt("sig-proxy", "", "bool", "Proxy received signals to the process", default=True),
)

RUN_SPEC = Command(
    "run",
    "[OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create and run a new container from an image",
    tuple(sorted(CREATE_OPTIONS + RUN_ONLY, key=lambda o: o.long)),
    min_args=1,
    interspersed=False,
    aliases=("container run",),
)
CREATE_SPEC = Command(
    "create",
    "[OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Create a new container",
    tuple(sorted(CREATE_OPTIONS, key=lambda o: o.long)),
    min_args=1,
    interspersed=False,
    aliases=("container create",),
)

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """Docker's binary size syntax: "64m" -> 67108864, "1.5g", "512" (bytes)."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _flag_error(spec: Command, flag: str, value: str, why: str) -> UsageError:
    return UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}', spec)


def read_kv_file(path: str, what: str) -> list[str]:
    """An env or label file: KEY=VALUE lines, '#' comments; a bare KEY of an env file takes
    its value from our environment (and is dropped when unset)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise UsageError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from None
    out = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            if not key.strip():
                raise UsageError(f"invalid {what} file {path}: variable without name")
            out.append(f"{key.strip()}={value}")
        elif what == "env":
            if line.strip() in os.environ:
                out.append(f"{line.strip()}={os.environ[line.strip()]}")
        else:
            out.append(line.strip())
    return out


def expand_env(items: list[str]) -> list[str]:
    """`-e KEY` copies KEY from our environment; `-e KEY=V` is literal."""
    out = []
    for item in items:
        if "=" in item:
            if item.startswith("="):
                raise UsageError(f"invalid environment variable: {item}")
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def parse_restart(spec: Command, text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped", ""):
        raise _flag_error(spec, "--restart", text, f"invalid restart policy {name!r}")
    if count and name != "on-failure":
        raise _flag_error(
            spec, "--restart", text, f"maximum retry count cannot be used with restart policy '{name}'"
        )
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise _flag_error(
            spec, "--restart", text, f"maximum retry count must be an integer: {count}"
        ) from None
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": retries}


def parse_ulimit(spec: Command, text: str) -> dict[str, Any]:
    name, eq, limits = text.partition("=")
    soft, _, hard = limits.partition(":")
    try:
        if not eq or not name:
            raise ValueError
        soft_n = int(soft)
        hard_n = int(hard) if hard else soft_n
    except ValueError:
        raise _flag_error(spec, "--ulimit", text, "invalid ulimit argument") from None
    return {"Name": name, "Soft": soft_n, "Hard": hard_n}


_DEVICE_RULE = re.compile(r"^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$")


def _device_mode(text: str) -> bool:
    return 0 < len(text) <= 3 and all(c in "rwm" for c in text) and len(set(text)) == len(text)


def parse_device(spec: Command, text: str) -> dict[str, str]:
    """--device HOST[:CONTAINER][:PERMISSIONS], checked as the Docker CLI does."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise UsageError(f"bad format for path: {text}", spec)
    host, container, permissions = parts[0], parts[0], "rwm"
    if len(parts) == 2:
        if _device_mode(parts[1]):
            permissions = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, permissions = parts[1], parts[2]
        if not _device_mode(permissions):
            raise UsageError(f"bad mode specified: {permissions}", spec)
    if not container.startswith("/"):
        raise UsageError(f"{container} is not an absolute path", spec)
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": permissions}


def _namespace_modes(spec: Command, opts: Values, host: dict[str, Any]) -> None:
    """--pid, --ipc, --uts, --userns: the CLI refuses what it knows is wrong (the daemon checks --ipc)."""
    pid = opts.pid or ""
    if pid and pid != "host" and not (pid.startswith("container:") and len(pid) > len("container:")):
        raise UsageError("--pid: invalid PID mode", spec)
    for flag, what in (("uts", "UTS"), ("userns", "USER")):
        if (opts.get(flag) or "") not in ("", "host"):
            raise UsageError(f"--{flag}: invalid {what} mode", spec)
    for flag, key in (("pid", "PidMode"), ("ipc", "IpcMode"), ("uts", "UTSMode"), ("userns", "UsernsMode")):
        if opts.get(flag):
            host[key] = opts.get(flag)


def build_create_body(spec: Command, opts: Values, args: list[str]) -> dict[str, Any]:
    """The POST /containers/create body for `run`/`create` options and IMAGE [CMD...]."""
    image, cmd = args[0], args[1:]
    changed = opts.changed
    config: dict[str, Any] = {"Image": image}
    host: dict[str, Any] = {}
    detach = bool(getattr(opts, "detach", False)) if "detach" in changed else False
    attach = [a.lower() for a in opts.attach]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise _flag_error(spec, "-a, --attach", a, "valid streams are STDIN, STDOUT and STDERR")
    # Docker's rule: without -a, attach stdout and stderr, and stdin with -i; StdinOnce
    # closes the container's stdin when the attached client's stdin ends. A detached run
    # attaches nothing.
    if not detach:
        config["AttachStdin"] = "stdin" in attach if attach else bool(opts.interactive)
        config["AttachStdout"] = not attach or "stdout" in attach
        config["AttachStderr"] = not attach or "stderr" in attach
    if opts.interactive:
        config["OpenStdin"] = True
        if config.get("AttachStdin"):
            config["StdinOnce"] = True
    if opts.tty:
        config["Tty"] = True
    if cmd:
        config["Cmd"] = cmd
    if "entrypoint" in changed:
        config["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    env: list[str] = []
    for path in opts.env_file:
        env.extend(read_kv_file(path, "env"))
    env.extend(expand_env(opts.env))
    if env:
        config["Env"] = env
    labels: dict[str, str] = {}
    for path in opts.label_file:
        for line in read_kv_file(path, "label"):
            key, _, value = line.partition("=")
            labels[key] = value
    for item in opts.label:
        key, _, value = item.partition("=")
        labels[key] = value
    if labels:
        config["Labels"] = labels
    for flag, key in (("workdir", "WorkingDir"), ("user", "User"), ("hostname", "Hostname"),
                      ("domainname", "Domainname"), ("stop_signal", "StopSignal")):  # fmt: skip
        if opts.get(flag):
            config[key] = opts.get(flag)
    if "workdir" in changed and opts.workdir and not opts.workdir.startswith("/"):
        raise UsageError(
            f"the working directory '{opts.workdir}' is invalid, it needs to be an absolute path", spec
        )
    if "stop_timeout" in changed:
        config["StopTimeout"] = opts.stop_timeout

    # HostConfig
    for flag, key in (("memory", "Memory"), ("memory_swap", "MemorySwap"),
                      ("memory_reservation", "MemoryReservation"), ("shm_size", "ShmSize")):  # fmt: skip
        raw = opts.get(flag)
        if not raw:
            continue
        if flag == "memory_swap" and raw.strip() == "-1":
            host[key] = -1
            continue
        try:
            host[key] = ram_in_bytes(raw)
        except ValueError as exc:
            label = "-m, --memory" if flag == "memory" else "--" + flag.replace("_", "-")
            raise _flag_error(spec, label, raw, str(exc)) from None
    if opts.cpus:
        try:
            cpus = float(opts.cpus)
            if cpus < 0:
                raise ValueError
        except ValueError:
            raise _flag_error(spec, "--cpus", opts.cpus, "failed to parse as a positive decimal") from None
        host["NanoCpus"] = int(round(cpus * 1e9))
    if opts.cpu_shares:
        host["CpuShares"] = opts.cpu_shares
    if opts.cpuset_cpus:
        host["CpusetCpus"] = opts.cpuset_cpus
    if opts.cpu_rt_period:
        host["CpuRealtimePeriod"] = opts.cpu_rt_period
    if opts.cpu_rt_runtime:
        host["CpuRealtimeRuntime"] = opts.cpu_rt_runtime
    if opts.device:
        host["Devices"] = [parse_device(spec, d) for d in opts.device]
    for rule in opts.device_cgroup_rule:
        if not _DEVICE_RULE.match(rule):
            raise _flag_error(spec, "--device-cgroup-rule", rule, f"invalid device cgroup format '{rule}'")
    if opts.device_cgroup_rule:
        host["DeviceCgroupRules"] = list(opts.device_cgroup_rule)
    if opts.group_add:
        host["GroupAdd"] = list(opts.group_add)
    _namespace_modes(spec, opts, host)
    if "pids_limit" in changed:
        host["PidsLimit"] = opts.pids_limit
    restart = opts.restart
    if "restart" in changed:
        host["RestartPolicy"] = parse_restart(spec, restart)
    if opts.rm:
        if "restart" in changed and host["RestartPolicy"]["Name"]:
            raise UsageError("Conflicting options: --restart and --rm", spec)
        host["AutoRemove"] = True
    mountopts.apply(spec, opts, config, host)
    endpoints = netopts.apply(spec, opts, config, host)
    health = healthcheck(spec, opts)
    if health is not None:
        config["Healthcheck"] = health
    if opts.tmpfs:
        tmpfs: dict[str, str] = {}
        for item in opts.tmpfs:
            dest, _, mount_opts = item.partition(":")
            if not dest.startswith("/"):
                raise _flag_error(spec, "--tmpfs", item, "invalid mount destination")
            tmpfs[dest] = mount_opts
        host["Tmpfs"] = tmpfs
    if opts.read_only:
        host["ReadonlyRootfs"] = True
    if opts.cap_add:
        host["CapAdd"] = opts.cap_add
    if opts.cap_drop:
        host["CapDrop"] = opts.cap_drop
    if opts.privileged:
        host["Privileged"] = True
    if opts.init:
        host["Init"] = True
    if opts.oom_kill_disable:
        host["OomKillDisable"] = True
    if opts.security_opt:
        from cli.secopts import parse_security_opts

        security, unconfined_paths = parse_security_opts(spec, opts.security_opt)
        if security:
            host["SecurityOpt"] = security
        if unconfined_paths:
            host["MaskedPaths"], host["ReadonlyPaths"] = [], []
    if opts.ulimit:
        host["Ulimits"] = [parse_ulimit(spec, u) for u in opts.ulimit]
    if opts.sysctl:
        sysctls: dict[str, str] = {}
        for item in opts.sysctl:
            key, eq, value = item.partition("=")
            if not eq:
                raise _flag_error(spec, "--sysctl", item, "must be KEY=VALUE")
            sysctls[key] = value
        host["Sysctls"] = sysctls
    if opts.runtime:
        host["Runtime"] = opts.runtime
    if opts.log_driver or opts.log_opt:
        log_opts: dict[str, str] = {}
        for item in opts.log_opt:
            key, eq, value = item.partition("=")
            if not eq:
                raise _flag_error(spec, "--log-opt", item, "must be KEY=VALUE")
            log_opts[key] = value
        host["LogConfig"] = {"Type": opts.log_driver, "Config": log_opts}
    config["HostConfig"] = host
    if endpoints:
        config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return config
