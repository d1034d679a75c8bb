"""pycontainerd: a daemon speaking containerd's v1 gRPC API over a unix socket."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from common import malloc
from containerd.config import ConfigError, load


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pycontainerd", description="containerd's v1 API, in Python.")
    p.add_argument(
        "--root", help="persistent state: content, snapshots, metadata (default /var/lib/pycontainerd)"
    )
    p.add_argument("--state", help="runtime state: shim sockets, bundles (default /run/pycontainerd)")
    p.add_argument("--address", "-a", help="gRPC unix socket (default /run/pycontainerd/pycontainerd.sock)")
    p.add_argument("--config", "-c", help="TOML config file")
    p.add_argument("--log-level", "-l", choices=["debug", "info", "warn", "warning", "error"], default=None)
    p.add_argument("--version", "-v", action="store_true")
    cri = p.add_argument_group("CRI plugin (kubelet's container runtime endpoint)")
    cri.add_argument(
        "--cri-address", help="serve the CRI on this unix socket too (default: only on --address)"
    )
    cri.add_argument("--cni-conf-dir", help="CNI network configurations (default /etc/cni/net.d)")
    cri.add_argument("--cni-bin-dir", help="CNI plugin binaries (default /usr/lib/cni)")
    cri.add_argument("--no-cri", action="store_true", help="disable the CRI plugin")
    return p.parse_args(argv)


def _dump_stacks_on_sigusr1() -> None:
    """As containerd: SIGUSR1 writes every thread's stack to the log (stderr), for hangs."""
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.version:
        from containerd.server import VERSION

        print(f"pycontainerd {VERSION}")
        return 0
    _dump_stacks_on_sigusr1()
    malloc.Scavenger().start()  # freed heap returned after bursts of work (common/malloc.py)
    try:
        cfg = load(
            args.config,
            {
                "root": args.root,
                "state": args.state,
                "address": args.address,
                "log_level": args.log_level,
                "cri_address": args.cri_address,
                "cri_cni_conf_dir": args.cni_conf_dir,
                "cri_cni_bin_dir": args.cni_bin_dir,
                "cri_enabled": False if args.no_cri else None,
            },  # fmt: skip
        )
    except ConfigError as exc:
        print(f"pycontainerd: {exc}", file=sys.stderr)
        return 1
    level = {"warn": "WARNING"}.get(cfg.log_level, cfg.log_level.upper())
    logging.basicConfig(
        level=level,
        format='time="%(asctime)s" level=%(levelname)s msg="%(message)s" logger=%(name)s',
        stream=sys.stderr,
    )
    from common.schema import LayoutError
    from containerd.server import Daemon, DaemonError

    try:
        daemon = Daemon(cfg)
        daemon.start()
    except (DaemonError, LayoutError) as exc:
        # LayoutError: a store of a newer release, or a damaged one; its message names the file,
        # which is left as it is (the shims and their containers run on).
        print(f"pycontainerd: {exc}", file=sys.stderr)
        return 1
    _release_startup_memory()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("pycontainerd").info("serving on %s (pid %d)", cfg.address, os.getpid())
    stop.wait()
    daemon.stop()
    return 0


def _release_startup_memory() -> None:
    """Start-up (imports, protobuf descriptors) leaves freed heap behind; give it back to the OS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
