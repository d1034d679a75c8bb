"""Container logs on pydockerd: the json-file driver with max-size/max-file rotation (and
daemon.json defaults), `docker logs` (tail, since, follow) across rotated files and across
daemon restarts, the `none` driver, refused drivers and options, and a removed container.

Statuses and wording are the reference dockerd's (20.10), checked side by side: an unknown
driver is 400 `error looking up logging plugin foo: plugin "foo" not found`, a bad option 400
`unknown log opt 'x' for json-file log driver`, reading a `none` log 501 `configured logging
driver does not support reading`, a removed container 404 `No such container: x`. Files and
sizes are dockerd's too: <id>-json.log, then .1, .2 ...; max-size counts in decimal units
(1k = 1000 bytes) and a file is rotated once it has reached max-size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockerd.engine.logs import JSONLog, LogFiles, LogSettings, read_log
from tests.dockerd_ref import DOCKER_CLI
from tests.pydockerd_harness import PyDockerd, inspect, pydockerd_engine, start_pydockerd, until, wait_ready


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


def api(d: PyDockerd, method: str, path: str, body: object = None) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(d.socket))
    with httpx.Client(transport=transport, base_url="http://pydockerd", timeout=30) as client:
        content = json.dumps(body).encode() if body is not None else None
        return client.request(method, path, content=content, headers={"Content-Type": "application/json"})


def _files(d: PyDockerd, name: str) -> list[Path]:
    """The container's log files, oldest first."""
    log = Path(inspect(d, name)["LogPath"])
    rotated = sorted(log.parent.glob(log.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, log]


def _entries(paths: list[Path]) -> list[str]:
    return [json.loads(line)["log"] for p in paths for line in p.read_text().splitlines()]


def _lines(first: int, last: int) -> str:
    return "".join(f"line {i}\n" for i in range(first, last + 1))


def _exited(d: PyDockerd, name: str) -> bool:
    status: str = inspect(d, name)["State"]["Status"]
    return status == "exited"


def test_rotation_and_reading_across_files(engine: PyDockerd) -> None:
    engine.docker_ok("run", "-d", "--name", "rot", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
                     "busybox", "sh", "-c", "for i in $(seq 1 100); do echo line $i; done")  # fmt: skip
    until("rot to exit", lambda: _exited(engine, "rot"), 30.0)
    assert inspect(engine, "rot")["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "1k"},
    }
    files = _files(engine, "rot")
    cid = inspect(engine, "rot")["Id"]
    assert [p.name for p in files] == [f"{cid}-json.log.2", f"{cid}-json.log.1", f"{cid}-json.log"]
    for rotated in files[:-1]:  # rotated once they reached 1000 bytes, so never much more
        assert 1000 <= rotated.stat().st_size < 1100, (rotated, rotated.stat().st_size)
    kept = _entries(files)
    first = int(kept[0].split()[1])
    assert (
        kept == [f"line {i}\n" for i in range(first, 101)] and first > 1
    )  # the oldest went with the 4th file
    # `docker logs` reads the files in order; --tail spans them
    assert engine.docker_ok("logs", "rot") == _lines(first, 100)
    assert engine.docker_ok("logs", "--tail", "3", "rot") == _lines(98, 100)
    in_current = len(_entries(files[-1:]))
    assert engine.docker_ok("logs", "--tail", str(in_current + 5), "rot") == _lines(100 - in_current - 4, 100)
    # --since an entry in the oldest file: that entry and everything after it, across the files
    stamped = [line.split(" ", 1) for line in engine.docker_ok("logs", "-t", "rot").splitlines()]
    since = next(stamp for stamp, text in stamped if text == f"line {first + 1}")
    expected = "".join(text + "\n" for stamp, text in stamped if stamp >= since)
    assert f"line {first + 1}\n" in expected and expected.endswith("line 100\n")
    assert engine.docker_ok("logs", "--since", since, "rot") == expected


def test_follow_across_rotations(engine: PyDockerd) -> None:
    engine.docker_ok("run", "-d", "--name", "chatty", "--log-opt", "max-size=1k", "--log-opt", "max-file=2",
                     "busybox", "sh", "-c", "for i in $(seq 1 150); do echo line $i; sleep 0.02; done")  # fmt: skip
    follower = subprocess.run(
        [DOCKER_CLI, "-H", f"unix://{engine.socket}", "logs", "-f", "chatty"],
        capture_output=True, text=True, timeout=120, env=engine._cli_env,
    )  # fmt: skip
    assert follower.returncode == 0, follower.stderr
    assert follower.stdout == _lines(1, 150)  # every line once, in order, though files rotated ~10 times
    assert len(_files(engine, "chatty")) == 2


def test_logs_of_removed_container_is_404(engine: PyDockerd) -> None:
    engine.docker_ok("run", "--name", "gone", "busybox", "echo", "bye")
    assert engine.docker_ok("logs", "gone") == "bye\n"
    log_dir = Path(inspect(engine, "gone")["LogPath"]).parent
    engine.docker_ok("rm", "gone")
    res = engine.docker("logs", "gone")
    assert res.returncode == 1 and res.stderr == "Error response from daemon: No such container: gone\n"
    answer = api(engine, "GET", "/containers/gone/logs?stdout=1")
    assert answer.status_code == 404 and answer.json() == {"message": "No such container: gone"}
    assert not log_dir.exists()


def test_none_driver(engine: PyDockerd) -> None:
    # attached output still reaches the client; nothing is written; reading is refused as dockerd does
    assert (
        engine.docker_ok("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi") == "hi\n"
    )
    info = inspect(engine, "quiet")
    assert info["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    assert info["LogPath"] == ""  # as dockerd: no json-file log, no log path
    res = engine.docker("logs", "quiet")
    assert (
        res.returncode == 1
        and res.stderr == "Error response from daemon: configured logging driver does not support reading\n"
    )
    answer = api(engine, "GET", "/containers/quiet/logs?stdout=1")
    assert answer.status_code == 501 and answer.json() == {
        "message": "configured logging driver does not support reading"
    }


@pytest.mark.parametrize(
    ("log_config", "message"),
    [
        ({"Type": "foo"}, 'error looking up logging plugin foo: plugin "foo" not found'),
        ({"Type": "syslog"}, "logging driver 'syslog' is not supported by pydockerd: use json-file or none"),
        ({"Type": "json-file", "Config": {"foo": "bar"}}, "unknown log opt 'foo' for json-file log driver"),
        ({"Type": "json-file", "Config": {"max-size": "abc"}}, "invalid size: 'abc'"),
        (
            {"Type": "json-file", "Config": {"max-file": "0", "max-size": "1k"}},
            "max-file cannot be less than 1",
        ),
        ({"Type": "json-file", "Config": {"max-file": "x"}}, 'strconv.Atoi: parsing "x": invalid syntax'),
        (
            {"Type": "json-file", "Config": {"compress": "true"}},
            "log opt 'compress' of the json-file log driver is not supported yet",
        ),
        ({"Type": "json-file", "Config": {"max-size": 5}}, "invalid HostConfig.LogConfig"),
    ],
)
def test_refused_log_configs(engine: PyDockerd, log_config: dict[str, object], message: str) -> None:
    answer = api(
        engine, "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"LogConfig": log_config}}
    )
    assert answer.status_code == 400 and answer.json()["message"].startswith(message), answer.text


def test_daemon_json_defaults_and_restart(tmp_path: Path) -> None:
    """daemon.json log-driver/log-opts apply to containers that set no LogConfig, merge under
    a container's own options for the same driver; rotated logs are kept across a restart and
    rotation goes on after it."""
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps({"log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "2"}})
    )
    with pydockerd_engine(extra_args=["--config-file", str(config)]) as d:
        d.docker_ok("create", "--name", "plain", "busybox", "true")
        assert inspect(d, "plain")["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "2", "max-size": "1k"},
        }
        d.docker_ok("create", "--name", "own", "--log-opt", "max-file=4", "busybox", "true")
        assert inspect(d, "own")["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-file": "4", "max-size": "1k"},
        }
        d.docker_ok("create", "--name", "silent", "--log-driver", "none", "busybox", "true")
        assert inspect(d, "silent")["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}

        # a slow writer: lines before, during and after a kill -9 of the daemon
        d.docker_ok(
            "run",
            "-d",
            "--name",
            "slow",
            "busybox",
            "sh",
            "-c",
            "for i in $(seq 1 60); do echo line $i; sleep 0.1; done",
        )
        until("a rotation", lambda: len(_files(d, "slow")) == 2, 30.0)
        os.kill(d.pid, signal.SIGKILL)
        os.waitpid(d.pid, 0)
        time.sleep(1)
        proc = start_pydockerd(d, ["--config-file", str(config)])
        wait_ready(d, proc)
        until("slow to exit", lambda: _exited(d, "slow"), 30.0)
        files = _files(d, "slow")
        assert len(files) == 2  # max-file 2 still holds after the restart
        kept = _entries(files)
        first = int(kept[0].split()[1])
        assert kept == [f"line {i}\n" for i in range(first, 61)]
        assert d.docker_ok("logs", "slow") == _lines(first, 60)
        # and after a clean restart too
        os.kill(d.pid, signal.SIGTERM)
        os.waitpid(d.pid, 0)
        proc = start_pydockerd(d, ["--config-file", str(config)])
        wait_ready(d, proc)
        assert d.docker_ok("logs", "--tail", "2", "slow") == _lines(59, 60)


def test_daemon_refuses_a_bad_default_log_driver(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"log-driver": "json-file", "log-opts": {"foo": "1"}}))
    res = subprocess.run(
        [str(Path(__file__).resolve().parents[2] / ".venv/bin/pydockerd"), "--config-file", str(config),
         "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"), "-H", f"unix://{tmp_path}/d.sock"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 1
    assert "unknown log opt 'foo' for json-file log driver" in res.stderr
    assert not (tmp_path / "exec" / "containerd").exists(), (
        "nothing may start for a daemon that refuses its config"
    )


# --- the json-file writer and reader on their own (no daemon) ---------------------------------


def test_reader_follows_through_rotations_it_falls_behind_on(tmp_path: Path) -> None:
    """A follower that is slower than the writer picks the files up in order, even when several
    rotations happened between two of its reads (as long as the files are still there)."""
    files = LogFiles()
    path = str(tmp_path / "c-json.log")
    writer = files.open(path, LogSettings("json-file", {"max-size": "200", "max-file": "1000"}))
    assert isinstance(writer, JSONLog)
    done = threading.Event()
    got: list[bytes] = []

    def follow() -> None:
        for _stream, data, _stamp in read_log(path, files, follow=True, alive=lambda: not done.is_set()):
            got.append(data)
            time.sleep(0.005)  # slower than the writer

    reader = threading.Thread(target=follow)
    writer.write("stdout", [b"line 0\n"])
    reader.start()
    for i in range(1, 300):
        writer.write("stdout", [f"line {i}\n".encode()])
    done.set()
    reader.join(30)
    assert not reader.is_alive()
    assert got == [f"line {i}\n".encode() for i in range(300)]
    assert len(list(tmp_path.iterdir())) > 20
    files.close_all()
