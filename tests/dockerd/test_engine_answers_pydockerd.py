"""pydockerd's side of issue 10's "answers that differ from Docker" where the reference
dockerd cannot be asked the same question: it would reach outside this machine (`docker
search` asks index.docker.io), change the host (`docker swarm init`), or it ignores what it
did not create (interfaces added to a container's namespace). Also pydockerd's access log,
which dockerd only has as its debug "Calling" lines.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.pydockerd_harness import PyDockerd, pydockerd_engine, until


@pytest.fixture(scope="module")
def engine() -> Iterator[PyDockerd]:
    with pydockerd_engine() as daemon:
        yield daemon


def api(engine: PyDockerd, method: str, path: str) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(engine.socket))
    with httpx.Client(transport=transport, base_url="http://docker/v1.41", timeout=60) as client:
        return client.request(method, path)


def test_search_is_a_clear_refusal(engine: PyDockerd) -> None:
    res = engine.docker("search", "busybox")
    assert (res.returncode, res.stdout) == (1, "")
    assert res.stderr == (
        'Error response from daemon: search is not supported: pydockerd reaches no index server to search docker.io for "busybox"\n'
    )
    res = engine.docker("search", "127.0.0.1:5000/team/app")
    assert 'search 127.0.0.1:5000 for "team/app"' in res.stderr
    # dockerd's checks of the request come first, with its wording.
    assert (
        engine.docker("search", "--limit", "101", "x").stderr
        == "Error response from daemon: Limit 101 is outside the range of [1, 100]\n"
    )
    assert (
        engine.docker("search", "-f", "is-official=maybe", "x").stderr
        == "Error response from daemon: Invalid filter 'is-official=[maybe]'\n"
    )
    assert (
        engine.docker("search", "-f", "stars=many", "x").stderr
        == "Error response from daemon: Invalid filter 'stars=many'\n"
    )
    assert (
        engine.docker("search", "-f", "bogus=1", "x").stderr
        == "Error response from daemon: Invalid filter 'bogus'\n"
    )
    answer = api(engine, "GET", "/images/search?term=busybox")
    assert answer.status_code == 501 and answer.json()["message"].startswith("search is not supported")


def test_swarm_init_and_plugin_install_are_refused(engine: PyDockerd) -> None:
    for args in (("swarm", "init"), ("swarm", "join", "--token", "x", "127.0.0.1:2377")):
        res = engine.docker(*args)
        assert (res.returncode, res.stderr) == (
            1, "Error response from daemon: swarm mode is not supported: pydockerd cannot create or join a swarm\n"
        ), args  # fmt: skip
    res = engine.docker("plugin", "install", "--grant-all-permissions", "vieux/sshfs")
    assert (res.returncode, res.stderr) == (
        1,
        "Error response from daemon: plugins are not supported: pydockerd cannot install a plugin\n",
    )
    # Still outside any swarm afterwards.
    assert (
        engine.docker("swarm", "leave").stderr
        == "Error response from daemon: This node is not part of a swarm\n"
    )


NETWORK_STATS = {
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
}


def test_stats_count_the_container_interfaces(engine: PyDockerd) -> None:
    engine.docker_ok("run", "-d", "--name", "netstats", "--network", "none", "busybox", "sleep", "600")
    try:
        pid = engine.docker_ok("inspect", "-f", "{{.State.Pid}}", "netstats").strip()
        frame = api(engine, "GET", "/containers/netstats/stats?stream=0&one-shot=1").json()
        assert "networks" not in frame  # loopback only, as dockerd for --network none
        # A veth pair with both ends in the container's namespace (the host's interfaces untouched;
        # it goes with the namespace), and packets sent over it.
        inside = ["nsenter", "-t", pid, "-n", "ip"]
        for args in (
            ("link", "add", "pd0", "type", "veth", "peer", "name", "pd1"),
            ("addr", "add", "10.231.7.1/24", "dev", "pd0"),
            ("link", "set", "pd0", "up"),
            ("link", "set", "pd1", "up"),
        ):
            subprocess.run([*inside, *args], check=True, capture_output=True, timeout=30)
        engine.docker("exec", "netstats", "ping", "-c", "2", "-W", "1", "10.231.7.2")
        frame = api(engine, "GET", "/containers/netstats/stats?stream=0&one-shot=1").json()
        assert list(frame)[-3:] == ["name", "id", "networks"]  # dockerd's place for it
        assert sorted(frame["networks"]) == ["pd0", "pd1"]
        for counters in frame["networks"].values():
            assert set(counters) == NETWORK_STATS and all(isinstance(v, int) for v in counters.values())
        assert frame["networks"]["pd0"]["tx_packets"] > 0
        assert frame["networks"]["pd0"]["tx_bytes"] == frame["networks"]["pd1"]["rx_bytes"]
        net_io = engine.docker_ok("stats", "--no-stream", "--format", "{{.NetIO}}", "netstats").strip()
        assert net_io != "0B / 0B" and re.fullmatch(r"[\d.]+k?B / [\d.]+k?B", net_io), net_io
    finally:
        engine.docker("rm", "-f", "netstats")


def _access_lines(log: Path, since: int) -> list[str]:
    return [
        line for line in log.read_text(errors="replace").splitlines()[since:] if 'msg="API request"' in line
    ]


def test_every_request_is_in_the_log(engine: PyDockerd) -> None:
    start = len(engine.log_path.read_text(errors="replace").splitlines())
    engine.docker_ok("run", "--rm", "--name", "logged", "busybox", "echo", "hi")  # attach: a hijacked request
    api(engine, "GET", "/containers/nope/json")
    api(engine, "GET", "/containers/json?all=1&filters=" + json.dumps({"name": ["x"]}))
    # Each line is written when its response is done, so wait for the last request's line too.
    until(
        "the access lines",
        lambda: all(
            any(part in line for line in _access_lines(engine.log_path, start))
            for part in ("/containers/nope/json", "/containers/json?all=1")
        ),
    )
    lines = _access_lines(engine.log_path, start)
    fields = re.compile(
        r'^time="[^"]+" level=info msg="API request" method=(\S+) path=(\S+|"[^"]*") status=(\d+) duration=[\d.]+ms$'
    )
    parsed = []
    for line in lines:
        m = fields.match(line)
        assert m, line
        parsed.append((m.group(1), m.group(2).strip('"'), int(m.group(3))))
    assert ("GET", "/v1.41/containers/nope/json", 404) in parsed
    assert any(
        method == "POST" and path.startswith("/v1.41/containers/create") and status == 201
        for method, path, status in parsed
    )
    assert any(
        method == "POST" and re.match(r"/v1\.41/containers/[0-9a-f]{64}/attach\?", path) and status == 101
        for method, path, status in parsed
    )
    assert any(
        path.startswith("/v1.41/containers/json?all=1&filters=") and status == 200
        for _, path, status in parsed
    )
    assert not any(
        "Calling" in line for line in engine.log_path.read_text().splitlines()[start:]
    )  # info level


def test_the_log_level_decides(tmp_path: Path) -> None:
    """--log-level warn: no access lines; -D, or daemon.json's "debug": also dockerd's "Calling"."""
    (tmp_path / "daemon.json").write_text(json.dumps({"debug": True}))
    for extra, debug in (
        (["--log-level", "warn"], False),
        (["-D"], True),
        (["--config-file", str(tmp_path / "daemon.json")], True),
    ):
        with pydockerd_engine(images=(), extra_args=extra) as daemon:
            start = len(daemon.log_path.read_text(errors="replace").splitlines())
            assert api(daemon, "GET", "/info").json()["Debug"] is debug
            api(daemon, "GET", "/containers/json")
            time.sleep(0.5)  # the line is written when the response is done
            text = "\n".join(daemon.log_path.read_text(errors="replace").splitlines()[start:])
        if debug:
            assert 'level=debug msg="Calling GET /v1.41/containers/json"' in text, extra
            assert re.search(
                r'level=info msg="API request" method=GET path=/v1.41/containers/json status=200 ', text
            ), text
        else:
            assert "API request" not in text and "Calling" not in text, text
