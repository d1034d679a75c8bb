"""pycontainerd-shim's entry point: `start` (detach a shim and print its address) and `delete`.

The start protocol (what pycontainerd runs for every task):

1. `pycontainerd-shim --id ID --bundle DIR --state-dir DIR --runtime PATH ... start`
   creates the state directory; if a shim already serves it, prints that address and
   exits 0 (so a daemon that retries never gets two shims).
2. Otherwise it forks; the child calls setsid() (its own session: signals for the daemon's
   process group never reach it), marks itself child subreaper (the flag survives
   execve), points stdin/stdout at /dev/null and stderr at STATE_DIR/shim.log, and
   execs `python -IS` on shim.server -- a fresh, small interpreter with none of this
   process's imports.
3. The server listens on STATE_DIR/shim.sock and writes "ok" to an inherited pipe; `start`
   prints `unix://STATE_DIR/shim.sock` and exits 0. The server, whose parent has now
   exited, is re-parented to init: the daemon can die without taking it along.

`delete` is for a shim that is gone (crashed or killed): it force-deletes the container
with the runtime, unmounts bundle/rootfs, removes the shim's files and prints an encoded
containerd.task.v2.DeleteResponse (the recorded exit status, else 137) on stdout.
"""

from __future__ import annotations

import os
import sys

from shim.options import Options, UsageError, parse

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the long-lived shim runs: the repository first on sys.path, nothing from site.
BOOTSTRAP = (
    f"import sys;sys.path.insert(0,{REPO!r});from shim.server import main;sys.exit(main(sys.argv[1:]))"
)


class ShimError(Exception):
    """A one-line failure of start or delete."""


def _serving(socket_path: str) -> bool:
    from common.unixsock import accepting

    return accepting(socket_path)


def _which(name: str) -> str | None:
    """shutil.which without importing shutil (which pulls in re, fnmatch, bz2, lzma)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _resolve_runtime(runtime: str) -> str:
    found = runtime if "/" in runtime else _which(runtime)
    if not found or not os.access(found, os.X_OK):
        raise ShimError(f"runtime {runtime!r} is not an executable (pass --runtime PATH)")
    return os.path.abspath(found)


def start(opts: Options, in_process: bool = False) -> str:
    """Start (or find) the shim for OPTS; return its address.

    IN_PROCESS (the template, shim/spawner.py): the forked shim serves with the code this process
    has loaded instead of exec'ing a fresh interpreter."""
    address = "unix://" + opts.socket
    os.makedirs(opts.state_dir, mode=0o711, exist_ok=True)
    if _serving(opts.socket):
        return address
    opts.runtime = _resolve_runtime(opts.runtime)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - replaced by exec, or serves until the shim exits
        try:
            os.close(ready_r)
            os.setsid()
            from common import libc

            libc.set_child_subreaper()
            null = os.open(os.devnull, os.O_RDWR)
            log = os.open(opts.path("shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(log, 2)
            if in_process:
                os._exit(_serve_here(opts, ready_w, (null, log)))
            os.set_inheritable(ready_w, True)
            argv = [sys.executable, "-IS", "-c", BOOTSTRAP, *opts.argv(), "--ready-fd", str(ready_w), "serve"]
            os.execv(sys.executable, argv)
        except BaseException as exc:  # noqa: BLE001 - the forked child reports any failure to its parent
            os.write(ready_w, f"error {exc}\n".encode())
        os._exit(1)
    os.close(ready_w)
    chunks = []
    while True:
        data = os.read(ready_r, 4096)
        if not data:
            break
        chunks.append(data)
    os.close(ready_r)
    answer = b"".join(chunks).decode(errors="replace").strip()
    if answer == "ok":
        return address
    os.waitpid(pid, 0)
    detail = (
        answer[6:]
        if answer.startswith("error ")
        else f"it exited during start-up (see {opts.path('shim.log')})"
    )
    raise ShimError(f"cannot start the shim for {opts.id}: {detail}")


def _serve_here(opts: Options, ready_w: int, opened: tuple[int, ...]) -> int:
    """Serve in this forked process. Nothing of the process it was forked from may stay open (the
    template's pipes to pycontainerd, above all): every descriptor but stdio and READY_W is closed,
    as exec would have closed them."""
    import gc

    gc.enable()  # off in the template (shim/spawner.py)
    for fd in opened:
        os.close(fd)
    os.closerange(3, ready_w)
    os.closerange(ready_w + 1, os.sysconf("SC_OPEN_MAX"))
    opts.action = "serve"
    opts.ready_fd = ready_w
    from shim.server import run

    return run(opts)


def delete(opts: Options) -> bytes:
    """Clean up after a dead shim; return the encoded DeleteResponse."""
    import time

    from common.mountinfo import is_mount_point
    from shim import messages as m
    from shim.oci import Runtime, RuntimeFailed
    from ttrpc.wire import encode, timestamp

    if _serving(opts.socket):
        raise ShimError(f"the shim of {opts.id} is still running: shut it down through its API")
    from common import fastjson, schema
    from shim.options import LAYOUT_VERSION

    try:  # a newer shim's state directory is left as it is
        schema.dir_version(opts.state_dir, fastjson.loads, LAYOUT_VERSION)
    except schema.LayoutError as exc:
        raise ShimError(str(exc)) from None
    pid, status, exited_at = 0, 128 + 9, time.time_ns()
    try:
        with open(os.path.join(opts.exits_dir, "init")) as f:
            fields = f.read().split()
        pid, status, exited_at = int(fields[0]), int(fields[1]), int(fields[2])
    except (OSError, ValueError, IndexError):
        pass
    runtime = Runtime(_resolve_runtime(opts.runtime), opts.runtime_root, opts.log_json, opts.systemd_cgroup)
    try:
        runtime.call(["delete", "--force", opts.id])
    except RuntimeFailed as exc:
        if "not exist" not in str(exc) and "not found" not in str(exc):
            raise ShimError(f"cannot delete container {opts.id}: {exc}") from None
    rootfs = os.path.join(opts.bundle, "rootfs")
    if is_mount_point(rootfs):
        from shim.mounts import MountError, unmount_all

        try:
            unmount_all(rootfs)
        except MountError as exc:
            raise ShimError(str(exc)) from None
    _remove_shim_files(opts)
    return encode(m.DELETE_RESPONSE, {"pid": pid, "exit_status": status, "exited_at": timestamp(exited_at)})


def _remove_shim_files(opts: Options) -> None:
    import shutil

    from common import schema

    for directory in (opts.exits_dir, opts.events_dir, opts.io_dir):
        shutil.rmtree(directory, ignore_errors=True)
    names = ["shim.pid", "address", "shim.log", "init.pid", "init.json", schema.MARKER]
    try:
        names += [n for n in os.listdir(opts.state_dir) if n.startswith("exec-")]
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(opts.path(name))
        except FileNotFoundError:
            pass
    for path in (opts.socket, opts.log_json):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(opts.state_dir)
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        from shim.options import USAGE

        print(USAGE, end="")
        return 0
    try:
        opts = parse(args)
        if opts.action == "serve":
            from shim.server import serve

            return serve(opts)
        if opts.action == "start":
            print(start(opts), flush=True)
        else:
            sys.stdout.buffer.write(delete(opts))
            sys.stdout.flush()
        return 0
    except UsageError as exc:
        print(f"pycontainerd-shim: {exc}", file=sys.stderr)
        return 2
    except (ShimError, OSError) as exc:
        print(f"pycontainerd-shim: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
