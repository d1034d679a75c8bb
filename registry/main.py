"""pyregistry: an OCI distribution registry.

    pyregistry serve [--addr HOST:PORT] [--root DIR] [--htpasswd FILE] [--tls-cert FILE --tls-key FILE]
                     [--config FILE] [--read-only] [--token]
    pyregistry gc [--dry-run] [--delete-untagged] (--root DIR | --config FILE)

`--addr 127.0.0.1:0` binds a free port; the bound address is always printed on stderr as
`pyregistry: listening on http://HOST:PORT` once the server accepts connections.
Bad flags or configuration exit 2 with one line on stderr; a failure to start exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import signal
import socket
import ssl
import sys
from pathlib import Path

from registry.config import ConfigError, Settings, load_file, parse_addr, validate
from registry.storage import Storage

log = logging.getLogger("pyregistry")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyregistry", description="An OCI distribution (Docker Registry V2) server."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve the registry API")
    serve.add_argument(
        "--addr", help="HOST:PORT to listen on (default 127.0.0.1:5000; port 0: any free port)"
    )
    serve.add_argument("--root", type=Path, help="storage directory (default /var/lib/pyregistry)")
    serve.add_argument(
        "--htpasswd", type=Path, help="htpasswd file (bcrypt): Basic auth, or the token endpoint's users"
    )
    serve.add_argument(
        "--token", action="store_true", help="bearer-token auth with pyregistry's own /token endpoint"
    )
    serve.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM, with its chain)")
    serve.add_argument("--tls-key", type=Path, help="TLS private key (PEM)")
    serve.add_argument("--config", type=Path, help="configuration file (TOML, see registry/config.py)")
    serve.add_argument("--read-only", action="store_true", help="refuse every write with 405 UNSUPPORTED")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info")
    gc = sub.add_parser("gc", help="remove blobs that no manifest references")
    gc.add_argument("--root", type=Path, help="storage directory (default /var/lib/pyregistry)")
    gc.add_argument("--config", type=Path, help="configuration file, for its storage.rootdirectory")
    gc.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    gc.add_argument("--delete-untagged", action="store_true", help="also remove manifests no tag reaches")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings()
    if args.config is not None:
        load_file(args.config, s)
    if args.root is not None:
        s.root = args.root
    if args.command == "serve":
        if args.addr is not None:
            s.host, s.port = parse_addr(args.addr)
        if args.htpasswd is not None:
            s.htpasswd = args.htpasswd
        if args.token:
            s.token = True
        if args.tls_cert is not None:
            s.tls_cert = args.tls_cert
        if args.tls_key is not None:
            s.tls_key = args.tls_key
        if args.read_only:
            s.read_only = True
        if args.log_level:
            s.log_level = args.log_level
        validate(s)
    return s


def _open_storage(s: Settings) -> Storage:
    try:
        return Storage(s.root.resolve(), fsync=s.fsync)
    except OSError as e:
        raise StartError(f"cannot use storage root {s.root}: {e.strerror}") from None


class StartError(Exception):
    pass


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it. Without it every request after the first on a kept-alive
    # connection waited about 40 ms: uvicorn writes a response's head and body separately, and
    # Nagle held the body back for the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StartError(f"listen tcp {host}:{port}: {e.strerror}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def serve(s: Settings) -> int:
    import uvicorn

    from registry.app import create_app
    from registry.auth import Htpasswd, Tokens, load_secret

    logging.basicConfig(level=s.log_level.upper(), format="pyregistry: %(levelname)s: %(message)s")
    if s.htpasswd is not None:
        try:
            for user in Htpasswd(s.htpasswd).not_bcrypt():
                log.warning(
                    "htpasswd entry for %s is not bcrypt (use htpasswd -B): that user cannot log in", user
                )
        except OSError as e:
            raise StartError(f"cannot read htpasswd file {s.htpasswd}: {e.strerror}") from None
        except ValueError as e:
            raise StartError(f"bad htpasswd file: {e}") from None
    if s.tls_cert is not None and s.tls_key is not None:
        for path in (s.tls_cert, s.tls_key):
            if not path.is_file():
                raise StartError(f"TLS: {path}: no such file")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ctx.load_cert_chain(s.tls_cert, s.tls_key)
        except (ssl.SSLError, OSError) as e:
            raise StartError(f"TLS: cannot load certificate {s.tls_cert} with key {s.tls_key}: {e}") from None
    # Bind before touching the root: a busy port fails with nothing created.
    sock = _bind(s.host, s.port)
    storage = _open_storage(s)
    tokens = None
    if s.token:
        try:
            secret = load_secret(s.token_secretfile or storage.root / "token.key")
        except OSError as e:
            raise StartError(f"token signing key: {e}") from None
        tokens = Tokens(secret, s.token_service, s.token_issuer, s.token_expiration)
    app = create_app(s, storage, tokens)
    config = uvicorn.Config(
        app,
        # httptools (C) parses request bodies with a third of h11's copying: blob pushes are
        # bound by it. h11 if it is missing.
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        loop="asyncio",
        lifespan="off",
        # uvicorn's own warnings are mostly TLS hellos sent to a plain-HTTP port (skopeo probes https
        # first): noise at the default level.
        log_level="debug" if s.log_level == "debug" else "error",
        access_log=s.log_level == "debug",
        timeout_keep_alive=75,
        server_header=False,
        ssl_certfile=str(s.tls_cert) if s.tls_cert else None,
        ssl_keyfile=str(s.tls_key) if s.tls_key else None,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises a captured SIGTERM once it has shut down, which would make a clean stop
    # look like a death by signal: stop on SIGTERM/SIGINT ourselves and exit 0.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    host, port = sock.getsockname()[:2]
    scheme = "https" if s.tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host

    def stop() -> None:
        if server.should_exit:
            server.force_exit = True  # a second signal: do not wait for open connections
        server.should_exit = True

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            print(f"pyregistry: listening on {scheme}://{shown}:{port}", file=sys.stderr, flush=True)
        await task

    asyncio.run(run())
    return 0


def gc(args: argparse.Namespace, s: Settings) -> int:
    from registry.gc import collect

    if args.root is None and args.config is None:
        raise ConfigError("gc needs --root DIR (or --config FILE)")
    if not s.root.is_dir():
        raise StartError(f"storage root {s.root} does not exist")
    storage = _open_storage(s)
    result = collect(storage, dry_run=args.dry_run, delete_untagged=args.delete_untagged)
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{result.marked} blobs marked, {verb} {len(result.blobs)} blobs ({result.freed} bytes)"
        f" and {len(result.manifests)} manifests"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("pyregistry: a command is required (serve or gc)", file=sys.stderr)
        return 2
    try:
        s = _settings(args)
        if args.command == "gc":
            return gc(args, s)
        return serve(s)
    except ConfigError as e:
        print(f"pyregistry: {e}", file=sys.stderr)
        return 2
    except StartError as e:
        print(f"pyregistry: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
