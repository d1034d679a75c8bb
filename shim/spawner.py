"""A warm template of pycontainerd-shim: pycontainerd asks it for shims instead of starting interpreters.

`pycontainerd-shim start` costs two interpreter start-ups (the `start` command, then the fresh
`python -IS` it execs to serve) and every import of the shim, for every container. pycontainerd
instead runs this program once (`python -IS`, like a shim) and keeps it as its child: it has
imported everything a shim runs, holds the source of the rest (shim/frozen.py), and has frozen
its objects out of the collector's reach, so that a fork of it shares all of that copy-on-write.

The protocol, one request at a time on stdin and stdout:

    request   one line: the shim's flags and the action `start`, as a JSON array of strings
    answer    one line: `ok ADDRESS`, or `error MESSAGE`

For each request a child runs `start` exactly as the command does (shim/main.py), except that
the shim it forks serves in that forked process instead of exec'ing a new interpreter. The
child exits as soon as the shim has answered, so the shim is orphaned at once, in a session of
its own, as a started one is: it outlives this process and pycontainerd. It keeps nothing of
either: every descriptor but its own is closed before it serves (shim/main.py).

Its arguments are ignored: pycontainerd names itself there (its socket and state), so that its
shims, which share the template's command line, can be told apart in `ps`.

The template exits when pycontainerd closes its stdin (or dies): it never outlives the daemon
that started it, and a restarted daemon starts a template of its own checkout.
"""

from __future__ import annotations

import gc
import os
import sys

from common import fastjson

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_everything() -> None:
    """What a serving shim loads, now, so that each fork shares it instead of loading it again."""
    # What a shim runs, and the subreaper call (ctypes) each fork makes before it serves; the
    # statistics and OOM watch every shim loads at Create, and the rootfs mount helper every
    # Create and Delete runs in a forked child: loaded late, each would be compiled from the held
    # source in every shim (15 ms of CPU at each Create), and be private to it.
    import shim.main
    import shim.mounts
    import shim.server
    import shim.stats  # noqa: F401
    from common import libc, mountopts  # noqa: F401
    from shim.frozen import hold_code
    from shim.options import Options

    # pyrunc's verbs, which the shims whose runtime is this checkout's pyrunc fork instead of
    # exec'ing (shim/runtimefork.py), unless pycontainerd's environment turned that off.
    if not Options().no_fork_runtime:
        from shim import runtimefork

        runtimefork.preload()
    # Then a shim forked from us holds the source of the rest of its late imports (the CRI log...)
    # from this moment on, as a shim started by the command holds it from its own start.
    hold_code(REPO)


def _answer(line: bytes) -> bytes:
    from shim.main import ShimError, start
    from shim.options import UsageError, parse

    try:
        argv = fastjson.loads(line)
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise UsageError("a request is a JSON array of strings")
        opts = parse(argv)
        if opts.action != "start":
            raise UsageError(f"the template only starts shims, not {opts.action!r}")
        return f"ok {start(opts, in_process=True)}".encode()
    except (ValueError, UsageError, ShimError, OSError) as exc:
        return f"error {exc}".replace("\n", " ").encode()


def _spawn(line: bytes) -> bytes:
    """The answer of a child that runs `start`: the shim it forks is orphaned when it exits."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child leaves through os._exit
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, _answer(line))
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    return b"".join(chunks) or b"error the shim's starter died"


def main() -> int:
    # No collection while loading: one would free the imports' garbage, leaving holes in pages that
    # the forks' own allocations would then fill, copying them (the gc module's advice for fork
    # servers). What is loaded lives as long as we do: frozen out of the collector's sight, its
    # pages stay shared with every fork (a collection writes to each object it visits). It stays
    # off here: a collection of what the template makes later would copy pages its shims share
    # (each of them then charged a larger part of the rest); its loop makes no cycles. A shim turns
    # it back on for its own objects (shim/main.py).
    gc.disable()
    _load_everything()
    gc.freeze()
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    for line in requests:
        answers.write(_spawn(line.strip()) + b"\n")
        answers.flush()
    return 0
