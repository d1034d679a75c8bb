"""State an upgrade (or a crash) can leave that this build must not use as it is (issue 19, "Bad
input"): a container record of a newer release, a half-written one, a corrupt metadata database.
Each is refused with a message naming the file, nothing is deleted, and every container that can
be adopted is; once the file is put back, its container is adopted too."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.pydockerd_harness import PyDockerd, inspect, pydockerd_engine, start_pydockerd, until, wait_ready


def _stop_daemons(d: PyDockerd) -> None:
    """SIGTERM pydockerd (our child) and the pycontainerd it left running."""
    containerd = d.containerd_pid
    assert containerd
    for pid in (d.pid, containerd):
        os.kill(pid, signal.SIGTERM)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        proc = Path(f"/proc/{pid}")
        until(f"pid {pid} to go", lambda: not proc.exists(), timeout=40)  # noqa: B023 - called at once


def _record(d: PyDockerd, name: str) -> Path:
    return d.data_root / "containers" / str(inspect(d, name)["Id"]) / "config.v2.json"


def test_newer_and_half_written_records_are_skipped_and_kept() -> None:
    with pydockerd_engine() as d:
        for name in ("good", "newer", "half"):
            d.docker_ok("run", "-d", "--name", name, "busybox", "sleep", "600")
        pids = {name: inspect(d, name)["State"]["Pid"] for name in ("good", "newer", "half")}
        records = {name: _record(d, name) for name in ("newer", "half")}
        originals = {name: path.read_bytes() for name, path in records.items()}
        _stop_daemons(d)
        newer = dict(json.loads(originals["newer"]), Version=2, FieldOfTheFuture=True)
        records["newer"].write_text(json.dumps(newer))
        records["half"].write_bytes(originals["half"][: len(originals["half"]) // 2])  # a crash mid-write
        damaged = {name: path.read_bytes() for name, path in records.items()}

        wait_ready(d, start_pydockerd(d))
        state = inspect(d, "good")["State"]
        assert state["Running"] and state["Pid"] == pids["good"]  # adopted
        assert d.docker_ok("ps", "-a", "--format", "{{.Names}}").split() == ["good"]
        log = d.log_path.read_text()
        assert f"{records['newer']}: layout version 2 is newer than this build reads (up to 1)" in log, (
            d.log_tail()
        )
        assert f"{records['half']}: not a complete JSON document" in log, d.log_tail()
        assert {name: path.read_bytes() for name, path in records.items()} == damaged  # nothing rewritten
        assert all(os.path.exists(f"/proc/{pids[name]}") for name in ("newer", "half"))  # nor killed

        # Put back, the records are read again and their containers adopted.
        _stop_daemons(d)
        for name, path in records.items():
            path.write_bytes(originals[name])
        wait_ready(d, start_pydockerd(d))
        for name, pid in pids.items():
            state = inspect(d, name)["State"]
            assert state["Running"] and state["Pid"] == pid, (name, state)


def test_corrupt_metadata_database_is_refused_and_kept() -> None:
    with pydockerd_engine() as d:
        d.docker_ok("run", "-d", "--name", "kept", "busybox", "sleep", "600")
        pid = inspect(d, "kept")["State"]["Pid"]
        _stop_daemons(d)
        database = d.data_root / "containerd" / "metadata.db"
        original = database.read_bytes()
        corrupt = b"\xde\xad\xbe\xef" * 32 + original[128:]  # the header overwritten
        database.write_bytes(corrupt)

        proc = start_pydockerd(d)
        assert proc.wait(timeout=60) != 0
        log = d.log_path.read_text()
        assert f"pycontainerd did not start: pycontainerd: {database}: not a usable SQLite database" in log, (
            d.log_tail()
        )
        assert database.read_bytes() == corrupt and os.path.exists(f"/proc/{pid}")

        database.write_bytes(original)
        wait_ready(d, start_pydockerd(d))
        state = inspect(d, "kept")["State"]
        assert state["Running"] and state["Pid"] == pid


def test_volume_of_a_newer_release_is_refused_and_kept() -> None:
    """A volume whose opts.json a newer release wrote: every request for it is refused naming the
    file (409, the daemon up), the file is kept as it is, other volumes work; put back, it works."""
    with pydockerd_engine() as d:
        for name in ("newer", "fine"):
            d.docker_ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", name)
        opts = d.data_root / "volumes" / "newer" / "opts.json"
        original = opts.read_bytes()
        _stop_daemons(d)
        opts.write_text(json.dumps(dict(json.loads(original), Version=2, OptionOfTheFuture="x")))
        written = opts.read_bytes()

        wait_ready(d, start_pydockerd(d))
        why = f"volume newer is not usable by this build: {opts}: layout version 2 is newer than this build reads"
        for args in (
            ("volume", "inspect", "newer"),
            ("volume", "rm", "-f", "newer"),
            ("run", "--rm", "-v", "newer:/d", "busybox", "true"),
        ):
            res = d.docker(*args)
            assert res.returncode != 0 and why in res.stderr, (args, res.stderr)
        assert d.docker_ok("volume", "ls", "-q").split() == ["fine"]
        assert (
            d.docker_ok("run", "--rm", "-v", "fine:/d", "busybox", "grep", "-c", " /d tmpfs", "/proc/mounts")
            == "1\n"
        )
        assert f"volume newer is refused: {opts}: layout version 2" in d.log_path.read_text(), d.log_tail()
        assert opts.read_bytes() == written

        _stop_daemons(d)
        opts.write_bytes(original)
        wait_ready(d, start_pydockerd(d))
        d.docker_ok("run", "--rm", "-v", "newer:/d", "busybox", "true")
        d.docker_ok("volume", "rm", "newer", "fine")
