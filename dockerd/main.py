"""pydockerd: the Docker Engine API, served by FastAPI on uvicorn, over pycontainerd.

Start-up order: flags and daemon.json (dockerd/config.py), the -H plan (refused hosts and
bad certificates fail before anything starts), the pid file, pycontainerd, live restore of
the containers, and only then the API sockets (dockerd/listeners.py), so that the first
request already sees every container as it is.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from common import atomicfile, malloc
from dockerd.config import ConfigError, Options, parse

if TYPE_CHECKING:
    from dockerd.engine.security import SecurityDefaults


class _Formatter(logging.Formatter):
    """dockerd's logrus text format: time="RFC 3339" level=info msg="..." (UTC)."""

    LEVELS = {"WARNING": "warning", "CRITICAL": "fatal"}

    def format(self, record: logging.LogRecord) -> str:
        stamp = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs * 1000):06d}Z"
        )
        level = self.LEVELS.get(record.levelname, record.levelname.lower())
        text = f'time="{stamp}" level={level} msg={_quoted(record.getMessage())}'
        # Structured fields (logging's `extra={"fields": {...}}`) follow as key=value, as logrus's.
        for key, value in (getattr(record, "fields", None) or {}).items():
            text += f" {key}={_value(value)}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(value: object) -> str:
    """A field value as logrus's text formatter writes it: bare when it has no space, quote or '='."""
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    return _quoted(text)


def _setup_logging(opts: Options) -> None:
    name = "debug" if opts["debug"] else opts["log-level"]
    level = {"warn": "WARNING", "fatal": "CRITICAL", "panic": "CRITICAL"}.get(name, name.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logging.basicConfig(level=level, handlers=[handler])


def _write_pidfile(path: str) -> None:
    """As dockerd's pidfile.New: refuse to start over a live daemon's pid file."""
    try:
        with open(path) as f:
            pid = int(f.read().strip() or "0")
    except (OSError, ValueError):
        pid = 0
    if pid and pid != os.getpid() and _running(pid):
        raise ConfigError(f"pid file found, ensure docker is not running or delete {path}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    # names this process, which a power loss ends: replaced whole, not synced
    atomicfile.write_text(path, str(os.getpid()), 0o644, durable=False)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running
    except (OSError, IndexError):
        return False


def _remove_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return  # not ours any more
        os.unlink(path)
    except OSError:
        pass


def _sd_notify(address: str | None, state: str) -> None:
    """systemd's sd_notify (Type=notify units): a datagram to $NOTIFY_SOCKET."""
    if not address:
        return
    import socket

    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(address)
            s.sendall(state.encode())
    except OSError as exc:
        logging.getLogger("pydockerd").warning("sd_notify: %s", exc)


def _forked_child_signals() -> None:
    """In a child forked without exec (pyroute2 forks to reach a network namespace): the loop's
    signal wakeup fd is shared with us, so a SIGTERM its parent sends it would wake our loop as if
    we had been told to stop. The child gets its own default handling back."""
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    except (ValueError, OSError):
        pass


def _hijack_router(backends: Any) -> Any:
    """The routes served on the raw connection (attach, exec start), each registered by its router."""
    from dockerd.hijack import HijackRouter
    from dockerd.routers import containers, exec

    router = HijackRouter()
    for module in (containers, exec):
        module.register_hijacked(router, backends)
    return router


THREADS = 1024  # at most this many API calls block in threads at once


def main(argv: list[str] | None = None) -> int:
    import faulthandler

    faulthandler.register(
        signal.SIGUSR1, all_threads=True
    )  # as dockerd: SIGUSR1 dumps every stack to the log
    os.register_at_fork(after_in_child=_forked_child_signals)
    try:
        opts = parse(argv)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if opts.version:
        from dockerd.buildinfo import read_build_info
        from dockerd.daemon import VERSION

        build = read_build_info()
        print(f"pydockerd version {VERSION}, build {build.commit} (pydocker {build.release})")
        return 0
    _setup_logging(opts)
    malloc.Scavenger().start()  # freed heap returned after bursts of work (common/malloc.py)
    # For our own READY=1 only: pycontainerd, started by us, must not report to our unit.
    notify = os.environ.pop("NOTIFY_SOCKET", None)
    from dockerd import listeners, metrics

    values = opts.values
    try:
        from dockerd.engine.errors import EngineError
        from dockerd.engine.logs import validate_log_config

        validate_log_config(values["log-driver"], values["log-opts"])
    except EngineError as exc:
        print(f"pydockerd: failed to start daemon: failed to set log opts: {exc}", file=sys.stderr)
        return 1
    try:
        from dockerd.engine import userns
        from dockerd.engine.security import SecurityDefaults

        mapping = userns.load(values["userns-remap"])
        security = SecurityDefaults.from_settings(
            values["seccomp-profile"], values["no-new-privileges"], values["default-ulimits"], mapping
        )
        if mapping is not None:  # the daemon's state moves to <data-root>/<uid>.<gid>, as dockerd's
            values["data-root"] = userns.setup_data_root(values["data-root"], mapping)
    except EngineError as exc:
        print(f"pydockerd: failed to start daemon: {exc}", file=sys.stderr)
        return 1
    try:
        planned = listeners.plan(values)
        metrics_sock = metrics.bind(values["metrics-addr"]) if values["metrics-addr"] else None
        _write_pidfile(values["pidfile"])
    except (ConfigError, ValueError, OSError) as exc:
        print(f"pydockerd: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(opts, planned, metrics_sock, security, notify)
    finally:
        _remove_pidfile(values["pidfile"])


def network_options(values: dict[str, Any]) -> Any:
    """The network backend's settings from dockerd's flags. Every kernel name it makes is unique
    to this daemon: the defaults (pydocker0, PYDOCKER...) for the default exec root, names built
    from a hash of the exec root for any other, so daemons (tests') on one kernel never share one."""
    import hashlib

    from dockerd.network.options import NetworkOptions

    exec_root = os.path.abspath(values["exec-root"])
    tag = "" if exec_root == "/run/pydocker" else hashlib.sha256(exec_root.encode()).hexdigest()[:6]
    from pathlib import Path

    opts = NetworkOptions(Path(values["data-root"]).absolute() / "network", Path(exec_root) / "netns")
    if tag:
        opts.bridge_name, opts.bridge_prefix, opts.veth_prefix = f"pyd{tag}0", f"pyb{tag}-", f"pyv{tag}"
        opts.chain_prefix = f"PYD{tag.upper()}"
    opts.bridge_name = values["bridge"] or opts.bridge_name
    opts.bip = values["bip"] or None
    opts.fixed_cidr = values["fixed-cidr"] or None
    if values["default-address-pools"]:
        opts.default_pools = [
            (str(p.get("base")), int(p.get("size") or 24)) for p in values["default-address-pools"]
        ]
    opts.iptables, opts.ip_forward = bool(values["iptables"]), bool(values["ip-forward"])
    opts.icc, opts.userland_proxy = bool(values["icc"]), bool(values["userland-proxy"])
    opts.mtu = int(values["mtu"] or 1500)
    return opts


def dns_defaults(values: dict[str, Any]) -> Any:
    from dockerd.network.model import DNSConfig

    return DNSConfig(list(values["dns"]), list(values["dns-search"]), list(values["dns-opts"]))


def _run(
    opts: Options,
    planned: list[Any],
    metrics_sock: Any,
    security: SecurityDefaults,
    notify: str | None = None,
) -> int:
    from dockerd import listeners
    from dockerd.daemon import Daemon, DaemonError
    from dockerd.engine.distribution.registry_client import RegistryConfig
    from dockerd.engine.runtimes import from_settings

    values = opts.values
    registry = RegistryConfig(
        list(values["insecure-registries"]),
        list(values["registry-mirrors"]),
        values["default-registry"] or "docker.io",
    )
    try:
        runtimes = from_settings(
            values["runtimes"],
            values["add-runtime"],
            values["default-runtime"],
            os.path.join(values["exec-root"], "runtimes"),
        )
        daemon = Daemon(
            values["data-root"], values["exec-root"], values["containerd"] or None, cgroup_parent=values["cgroup-parent"],
            log_driver=values["log-driver"], log_opts=values["log-opts"], debug=bool(values["debug"]),
            security=security, runtimes=runtimes, cpu_rt=(values["cpu-rt-period"], values["cpu-rt-runtime"]),
            registry=registry, network=network_options(values), dns=dns_defaults(values), volume_plugin_dirs=values["volume-plugin-dirs"],
        )  # fmt: skip
    except DaemonError as exc:
        print(f"pydockerd: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. a bad log-driver in daemon.json: say it, exit 1
        from dockerd.engine.errors import EngineError

        if not isinstance(exc, EngineError):
            raise
        print(f"pydockerd: failed to start daemon: {exc}", file=sys.stderr)
        return 1
    from dockerd.app import create_app
    from dockerd.hijack import make_protocol_class

    app = create_app(daemon.backends, daemon.metrics)
    protocol = make_protocol_class(_hijack_router(daemon.backends))
    try:
        daemon.start()
        listeners.bind(planned, values["group"])
    except ConfigError as exc:
        daemon.stop()
        print(f"pydockerd: {exc}", file=sys.stderr)
        return 1
    tls = listeners.tls_context(values) if any(lst.tls for lst in planned) else None
    try:
        # Not asyncio.run: it joins the default executor's threads, which may be blocked (see below).
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(_serve(app, protocol, planned, tls, daemon, metrics_sock, notify))
        finally:
            loop.close()
    finally:
        daemon.stop()
        listeners.remove_unix_sockets(planned)
        _remove_pidfile(values["pidfile"])
    # Worker threads may still sit in blocking reads for clients that never hung up (a FIFO
    # open, a follow); the interpreter would join them at exit and never stop. State is on
    # disk and containers belong to their shims, so nothing is lost by not waiting.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _serve(
    app: Any, protocol: Any, planned: list[Any], tls: Any, daemon: Any, metrics_sock: Any, notify: str | None
) -> None:
    import contextlib
    from concurrent.futures import ThreadPoolExecutor

    import anyio.to_thread
    import uvicorn

    from dockerd import metrics

    # Blocking work runs in threads, and some of it blocks for as long as a client follows
    # (logs -f, events, stats): anyio's default of 40 threads, or asyncio's default executor
    # (cpus + 4), would let 40 followers stall every other request. Threads start on demand.
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(THREADS, thread_name_prefix="api"))

    servers = []
    for lst in planned:
        config = uvicorn.Config(
            app, http=protocol, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=300,
            timeout_graceful_shutdown=5,
        )  # fmt: skip
        config.load()
        if lst.tls:
            config.ssl = (
                tls  # uvicorn builds contexts from file names only; ours requires client certificates
            )
        server = uvicorn.Server(config)
        # One signal handler for all servers (below); uvicorn's own would stop only one of them.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        servers.append((server, lst.sock))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in servers]
    if metrics_sock is not None:
        tasks.append(asyncio.create_task(metrics.serve(metrics_sock, daemon.render_metrics)))
    logging.getLogger("pydockerd").info("API listening on %s", ", ".join(lst.address for lst in planned))
    _sd_notify(notify, f"READY=1\nMAINPID={os.getpid()}")
    await stop.wait()
    _sd_notify(notify, "STOPPING=1")
    logging.getLogger("pydockerd").info("Processing signal 'terminated'")
    for s, _ in servers:
        s.should_exit = True
    await asyncio.gather(*tasks[: len(servers)], return_exceptions=True)
    for task in tasks[len(servers) :]:
        task.cancel()


if __name__ == "__main__":
    sys.exit(main())
