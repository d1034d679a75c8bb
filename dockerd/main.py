"""pydockerd: the Docker Engine API, served by FastAPI on uvicorn, over pycontainerd."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

DEFAULT_HOST = "unix:///run/pydocker.sock"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pydockerd", description="The Docker Engine API over pycontainerd.")
    p.add_argument("-H", "--host", action="append", default=[], help="unix:///path, tcp://HOST:PORT (with TLS), fd://")
    p.add_argument("--data-root", default="/var/lib/pydocker")
    p.add_argument("--exec-root", default="/run/pydocker")
    p.add_argument("-p", "--pidfile", default=None)
    p.add_argument("--config-file", default=None, help="daemon.json")
    p.add_argument("--cgroup-parent", default="/pydocker", help="parent cgroup of every container")
    p.add_argument("--containerd", default=None, help="pycontainerd socket; without it pydockerd starts its own")
    p.add_argument("-l", "--log-level", default="info", choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("--tlsverify", action="store_true")
    p.add_argument("--tlscacert", default=None)
    p.add_argument("--tlscert", default=None)
    p.add_argument("--tlskey", default=None)
    p.add_argument("--allow-insecure-tcp", action="store_true", help="serve plain TCP without TLS (dangerous)")
    p.add_argument("--metrics-addr", default=None, help="HOST:PORT for Prometheus metrics")
    p.add_argument("-v", "--version", action="store_true")
    return p.parse_args(argv)


def _apply_config_file(args: argparse.Namespace) -> None:
    if not args.config_file:
        return
    try:
        with open(args.config_file) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"pydockerd: cannot read {args.config_file}: {exc}") from None
    known = {"hosts", "data-root", "exec-root", "pidfile", "containerd", "log-level", "tlsverify", "tlscacert", "tlscert", "tlskey", "metrics-addr", "live-restore", "cgroup-parent"}
    unknown = set(cfg) - known
    if unknown:
        raise SystemExit(f"pydockerd: unknown settings in {args.config_file}: {', '.join(sorted(unknown))}")
    if cfg.get("hosts") and not args.host:
        args.host = list(cfg["hosts"])
    for key in ("data-root", "exec-root", "pidfile", "containerd", "cgroup-parent", "tlscacert", "tlscert", "tlskey", "metrics-addr"):
        attr = key.replace("-", "_")
        if cfg.get(key) and getattr(args, attr) in (None, _parse([]).__dict__.get(attr)):
            setattr(args, attr, cfg[key])
    if cfg.get("tlsverify"):
        args.tlsverify = True


def _server_configs(app: Any, hosts: list[str], args: argparse.Namespace, protocol: Any) -> list[Any]:
    import uvicorn

    configs = []
    for host in hosts:
        common: dict[str, Any] = {
            "http": protocol,
            "log_level": "warning", "access_log": False, "lifespan": "off", "timeout_keep_alive": 300,
            "timeout_graceful_shutdown": 5,
        }  # fmt: skip
        if host.startswith("unix://"):
            path = host[len("unix://") :]
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            if os.path.exists(path):
                os.unlink(path)
            configs.append(("unix", path, uvicorn.Config(app, uds=path, **common)))
        elif host.startswith("tcp://"):
            hostport = host[len("tcp://") :]
            h, _, port = hostport.rpartition(":")
            if not (args.tlsverify and args.tlscacert and args.tlscert and args.tlskey):
                if not args.allow_insecure_tcp:
                    raise SystemExit(
                        f"pydockerd: refusing to listen on {host} without TLS: pass --tlsverify --tlscacert --tlscert --tlskey"
                        " (or --allow-insecure-tcp to accept the risk)"
                    )
                configs.append(("tcp", host, uvicorn.Config(app, host=h or "127.0.0.1", port=int(port), **common)))
            else:
                import ssl

                configs.append(
                    (
                        "tcp",
                        host,
                        uvicorn.Config(
                            app, host=h or "127.0.0.1", port=int(port), ssl_certfile=args.tlscert, ssl_keyfile=args.tlskey,
                            ssl_ca_certs=args.tlscacert, ssl_cert_reqs=ssl.CERT_REQUIRED, **common,
                        ),
                    )
                )  # fmt: skip
        elif host.startswith("fd://"):
            fds = int(os.environ.get("LISTEN_FDS", "0"))
            if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())) or fds < 1:
                raise SystemExit("pydockerd: fd:// needs systemd socket activation (LISTEN_FDS)")
            for i in range(fds):
                configs.append(("fd", str(3 + i), uvicorn.Config(app, fd=3 + i, **common)))
        else:
            raise SystemExit(f"pydockerd: unsupported host {host!r}: use unix://, tcp:// or fd://")
    return configs


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.version:
        from dockerd.daemon import VERSION

        print(f"pydockerd version {VERSION}")
        return 0
    _apply_config_file(args)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(args.log_level, args.log_level.upper())
    logging.basicConfig(level=level, format='time="%(asctime)s" level=%(levelname)s msg="%(message)s"', stream=sys.stderr)
    from dockerd.daemon import Daemon, DaemonError

    try:
        daemon = Daemon(args.data_root, args.exec_root, args.containerd, cgroup_parent=args.cgroup_parent)
    except DaemonError as exc:
        print(f"pydockerd: {exc}", file=sys.stderr)
        return 1
    from dockerd.app import create_app

    app = create_app(daemon)
    from dockerd.attach import make_attach_handler
    from dockerd.hijack import HijackRouter, make_protocol_class

    router = HijackRouter()
    router.add("POST", r"/containers/(?P<name>[^/]+)/attach", make_attach_handler(daemon.containers))
    configs = _server_configs(app, args.host or [DEFAULT_HOST], args, make_protocol_class(router))
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    daemon.start()
    try:
        # Not asyncio.run: it joins the default executor's threads, which may be blocked (see below).
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(_serve(configs, daemon, args.metrics_addr))
        finally:
            loop.close()
    finally:
        daemon.stop()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    # Worker threads may still sit in blocking reads for clients that never hung up (a FIFO
    # open, a follow); the interpreter would join them at exit and never stop. State is on
    # disk and containers belong to their shims, so nothing is lost by not waiting.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _serve(configs: list[Any], daemon: Any, metrics_addr: str | None) -> None:
    import contextlib

    import uvicorn

    servers = [uvicorn.Server(cfg) for _, _, cfg in configs]
    for server in servers:
        # One signal handler for all servers (below); uvicorn's own would stop only one of them.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    if metrics_addr:
        tasks.append(asyncio.create_task(_serve_metrics(metrics_addr, daemon)))
    await asyncio.sleep(0.2)
    for kind, where, _ in configs:
        if kind == "unix":
            os.chmod(where, 0o660)
            _chgrp_docker(where)
    logging.getLogger("pydockerd").info("API listening on %s", ", ".join(w for _, w, _ in configs))
    await stop.wait()
    for s in servers:
        s.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def _chgrp_docker(path: str) -> None:
    import grp

    try:
        os.chown(path, -1, grp.getgrnam("docker").gr_gid)
    except (KeyError, OSError):
        pass


async def _serve_metrics(addr: str, daemon: Any) -> None:
    host, _, port = addr.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        states: dict[str, int] = {}
        for c in daemon.containers.all():
            states[c.status()] = states.get(c.status(), 0) + 1
        body = daemon.metrics.render(states).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host or "127.0.0.1", int(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
