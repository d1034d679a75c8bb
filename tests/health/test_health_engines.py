"""Healthchecks through real clients (the Docker CLI 28 and docker-py), each test body run
against the reference dockerd and against pydockerd: `--health-*` and `--no-healthcheck`, the
image's HEALTHCHECK and its merge, dockerd's create-time refusals, State.Health in inspect
(statuses, streaks, the last five results, the timeout's text), "(healthy)" in `ps` and
`ps --filter health=`, the health_status and probe exec events, pause, stop and start; and on
pydockerd, probing that resumes after the daemon is killed and started again."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError

from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd
from tests.pydockerd_harness import PyDockerd, pydockerd_engine, start_pydockerd, wait_ready

MS = 1_000_000


@pytest.fixture(scope="module", params=["reference", "pydockerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    context = (
        reference_dockerd({}, images=(BUSYBOX_TAR,), private_network=True)
        if request.param == "reference"
        else pydockerd_engine()
    )
    with context as daemon:
        yield daemon


@pytest.fixture
def name(engine: RefDockerd) -> Iterator[Callable[[str], str]]:
    """Unique container names; every one of them removed after the test."""
    made: list[str] = []
    tag = uuid.uuid4().hex[:8]

    def make(label: str) -> str:
        made.append(f"hc-{label}-{tag}")
        return made[-1]

    yield make
    if made:
        engine.docker("rm", "-f", *made)


def health(engine: RefDockerd, ref: str) -> dict[str, Any]:
    state = json.loads(engine.docker_ok("inspect", "-f", "{{json .State}}", ref))
    return dict(state.get("Health") or {})


def until(what: str, check: Callable[[], Any], timeout: float = 30.0, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def status_is(engine: RefDockerd, ref: str, status: str) -> Callable[[], bool]:
    return lambda: health(engine, ref).get("Status") == status


def ps_status(engine: RefDockerd, ref: str) -> str:
    return engine.docker_ok("ps", "-a", "--filter", f"name=^{ref}$", "--format", "{{.Status}}").strip()


def test_flags_starting_healthy_events_and_ps(engine: RefDockerd, name: Callable[[str], str]) -> None:
    c = name("good")
    since = f"{time.time():.3f}"
    engine.docker_ok("run", "-d", "--name", c, "--health-cmd", "test -e /tmp/ready && echo ready",
                     "--health-interval", "300ms", "--health-retries", "20", "busybox", "sh", "-c",
                     "sleep 1.5; touch /tmp/ready; exec sleep 300")  # fmt: skip
    first = health(engine, c)
    assert first["Status"] == "starting" and first["FailingStreak"] == 0
    assert ps_status(engine, c).endswith("(health: starting)")
    until("healthy", status_is(engine, c, "healthy"))
    h = health(engine, c)
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "ready\n"
    # The failures before the file existed counted (no start period) but never reached the retries.
    assert all(e["ExitCode"] in (0, 1) for e in h["Log"])
    assert ps_status(engine, c).endswith("(healthy)")
    listed = engine.docker_ok(
        "ps", "--filter", "health=healthy", "--filter", f"name={c}", "--format", "{{.Names}}"
    )
    assert listed == f"{c}\n"
    assert engine.docker_ok("ps", "-q", "--filter", "health=starting", "--filter", f"name={c}") == ""
    events = engine.docker_ok("events", "--since", since, "--until", f"{time.time():.3f}", "--filter", f"container={c}",
                              "--format", "{{.Action}}").splitlines()  # fmt: skip
    assert "health_status: healthy" in events
    assert events.index("start") < events.index("health_status: healthy")
    probe = "/bin/sh -c test -e /tmp/ready && echo ready"
    assert f"exec_create: {probe}" in events and f"exec_start: {probe}" in events and "exec_die" in events
    fuzzy = engine.docker_ok("events", "--since", since, "--until", f"{time.time():.3f}", "--filter", f"container={c}",
                             "--filter", "event=health_status", "--format", "{{.Action}}").splitlines()  # fmt: skip
    assert fuzzy == ["health_status: healthy"]


def test_unhealthy_streak_last_five_results_and_filters(
    engine: RefDockerd, name: Callable[[str], str]
) -> None:
    bad, plain = name("bad"), name("plain")
    engine.docker_ok("run", "-d", "--name", bad, "--health-cmd", "echo nope >&2; exit 3", "--health-interval", "100ms",
                     "--health-retries", "2", "busybox", "sleep", "300")  # fmt: skip
    engine.docker_ok("run", "-d", "--name", plain, "busybox", "sleep", "300")
    until("7 failures", lambda: health(engine, bad).get("FailingStreak", 0) >= 7)
    h = health(engine, bad)
    assert h["Status"] == "unhealthy" and len(h["Log"]) == 5
    assert {(e["ExitCode"], e["Output"]) for e in h["Log"]} == {(3, "nope\n")}
    assert ps_status(engine, bad).endswith("(unhealthy)")
    assert not ps_status(engine, plain).endswith(")")
    assert "Health" not in json.loads(engine.docker_ok("inspect", "-f", "{{json .State}}", plain))
    tagged = ["--filter", f"name={bad[-8:]}", "--format", "{{.Names}}"]
    assert engine.docker_ok("ps", "--filter", "health=unhealthy", *tagged).split() == [bad]
    assert engine.docker_ok("ps", "--filter", "health=none", *tagged).split() == [plain]
    assert engine.docker_ok(
        "ps", "--filter", "health=healthy", "--filter", "health=unhealthy", *tagged
    ).split() == [bad]
    res = engine.docker("ps", "--filter", "health=sick")
    assert (
        res.returncode == 1
        and res.stderr.strip() == "Error response from daemon: Unrecognised filter value for health: sick"
    )


def test_a_hanging_probe_is_killed_by_its_timeout(engine: RefDockerd, name: Callable[[str], str]) -> None:
    c = name("hang")
    engine.docker_ok("run", "-d", "--name", c, "--health-cmd", "sleep 60", "--health-interval", "200ms",
                     "--health-timeout", "500ms", "--health-retries", "1", "busybox", "sleep", "300")  # fmt: skip
    until("unhealthy", status_is(engine, c, "unhealthy"))
    entry = health(engine, c)["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (500ms)")
    # The killed probes do not pile up: at most the one in flight besides the container's own process.
    time.sleep(1.5)
    top = [line.split(None, 1)[1] for line in engine.docker_ok("top", c, "-o", "pid,args").splitlines()[1:]]
    assert top.count("sleep 300") == 1 and top.count("sleep 60") <= 1, top


def test_pause_stop_and_start(engine: RefDockerd, name: Callable[[str], str]) -> None:
    c = name("cycle")
    engine.docker_ok("run", "-d", "--name", c, "--health-cmd", "true", "--health-interval", "200ms", "busybox",
                     "sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait")  # fmt: skip
    until("healthy", status_is(engine, c, "healthy"))
    engine.docker_ok("pause", c)
    assert health(engine, c)["Status"] == "unhealthy"  # dockerd: "unhealthy when the monitor has stopped"
    assert ps_status(engine, c).endswith("(Paused)")
    engine.docker_ok("unpause", c)
    until("healthy after unpause", status_is(engine, c, "healthy"))
    engine.docker_ok("stop", c)
    stopped = health(engine, c)
    assert stopped["Status"] == "unhealthy" and stopped["Log"]
    assert engine.docker_ok("ps", "-aq", "--filter", "health=unhealthy", "--filter", f"name={c}") != ""
    engine.docker_ok("start", c)
    again = health(engine, c)
    assert (
        again["Status"] == "starting"
        and again["FailingStreak"] == 0
        and again["Log"][: len(stopped["Log"])] == stopped["Log"]
    )
    until("healthy after start", status_is(engine, c, "healthy"))


def _image_with_healthcheck(engine: RefDockerd, name: Callable[[str], str], tag: str) -> None:
    """busybox's files imported with a HEALTHCHECK (docker export | docker import --change)."""
    source = name("src")
    engine.docker_ok("create", "--name", source, "busybox", "true")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        engine.docker_ok("export", "-o", str(tar), source)
        engine.docker_ok("import", "--change", 'HEALTHCHECK --interval=200ms --retries=4 CMD ["test", "-e", "/tmp/ok"]',
                         "--change", 'CMD ["sh", "-c", "touch /tmp/ok; exec sleep 300"]', str(tar), tag)  # fmt: skip


def test_image_healthcheck_merge_and_no_healthcheck(engine: RefDockerd, name: Callable[[str], str]) -> None:
    tag = f"hc-image-{uuid.uuid4().hex[:8]}:latest"
    _image_with_healthcheck(engine, name, tag)
    try:
        image = json.loads(engine.docker_ok("image", "inspect", "-f", "{{json .Config.Healthcheck}}", tag))
        assert image == {"Test": ["CMD", "test", "-e", "/tmp/ok"], "Interval": 200 * MS, "Retries": 4}
        inherited, merged, off = name("inherit"), name("merge"), name("off")
        engine.docker_ok("run", "-d", "--name", inherited, tag)
        engine.docker_ok(
            "run", "-d", "--name", merged, "--health-retries", "9", "--health-timeout", "3s", tag
        )
        engine.docker_ok("run", "-d", "--name", off, "--no-healthcheck", tag)
        config = {
            c: json.loads(engine.docker_ok("inspect", "-f", "{{json .Config.Healthcheck}}", c))
            for c in (inherited, merged, off)
        }
        assert config[inherited] == image
        assert config[merged] == {**image, "Retries": 9, "Timeout": 3000 * MS}
        assert config[off] == {**image, "Test": ["NONE"]}  # the image's other fields stay, unused
        until("the image's check passes", status_is(engine, inherited, "healthy"))
        until("the merged check passes", status_is(engine, merged, "healthy"))
        assert health(engine, off) == {}
        assert ps_status(engine, off).startswith("Up") and not ps_status(engine, off).endswith(")")
    finally:
        engine.docker(
            "rm", "-f", *[c for c in engine.docker("ps", "-aq", "--filter", f"ancestor={tag}").stdout.split()]
        )
        engine.docker("rmi", "-f", tag)


BAD = [
    ({"Test": ["CMD", "true"], "Interval": 500_000}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "true"], "Timeout": 999}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "true"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
    ({"Test": ["CMD", "true"], "StartPeriod": 10}, "StartPeriod in Healthcheck cannot be less than 1ms"),
]


@pytest.mark.parametrize(("check", "message"), BAD, ids=[m.split()[0] for _, m in BAD])
def test_create_refusals(engine: RefDockerd, check: dict[str, Any], message: str) -> None:
    api = docker.APIClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
    try:
        before = api.containers(all=True, quiet=True)
        with pytest.raises(APIError) as err:
            api.create_container("busybox", ["true"], healthcheck=check)
        assert (err.value.response.status_code, err.value.explanation) == (400, message)
        assert api.containers(all=True, quiet=True) == before  # nothing created
    finally:
        api.close()


def test_cli_refusal_wording(engine: RefDockerd) -> None:
    res = engine.docker(
        "run", "--rm", "--health-cmd", "true", "--health-interval", "500us", "busybox", "true"
    )
    assert res.returncode == 125
    assert (
        res.stderr.splitlines()[0]
        == "docker: Error response from daemon: Interval in Healthcheck cannot be less than 1ms"
    )


def test_docker_sdk_healthcheck(engine: RefDockerd, name: Callable[[str], str]) -> None:
    client = docker.DockerClient(base_url=f"unix://{engine.socket}", version="1.41", timeout=60)
    try:
        c = client.containers.run(
            "busybox", ["sleep", "300"], detach=True, name=name("sdk"),
            healthcheck={"test": ["CMD-SHELL", "echo $((6*7))"], "interval": 200 * MS, "start_period": 1000 * MS},
        )  # fmt: skip
        until("healthy", lambda: (c.reload(), c.health)[1] == "healthy")
        assert c.attrs["State"]["Health"]["Log"][-1]["Output"] == "42\n"
        assert [x.name for x in client.containers.list(filters={"health": "healthy", "name": c.name})] == [
            c.name
        ]
    finally:
        client.close()


@pytest.mark.parametrize("engine", ["pydockerd"], indirect=True)  # pydockerd's own restart (live restore)
def test_probing_resumes_after_pydockerd_is_killed(engine: RefDockerd, name: Callable[[str], str]) -> None:
    assert isinstance(engine, PyDockerd)
    c = name("resume")
    engine.docker_ok("run", "-d", "--name", c, "--health-cmd", "date +%s", "--health-interval", "3s",
                     "busybox", "sleep", "300")  # fmt: skip
    until("healthy", status_is(engine, c, "healthy"), timeout=60)
    os.kill(engine.pid, signal.SIGKILL)
    os.waitpid(engine.pid, 0)
    killed_at = time.time()
    time.sleep(1)
    wait_ready(engine, start_pydockerd(engine))
    # The saved results are back (a probe every 3 s cannot have pushed them all out yet)...
    assert any(int(e["Output"]) < killed_at for e in health(engine, c)["Log"])
    # ...and the monitor started again as dockerd's restore does it (initHealthMonitor): "starting",
    # so the next passing probe is a change, with its health_status event from the new daemon.
    until(
        "probes after the restart",
        lambda: int(health(engine, c)["Log"][-1]["Output"]) > killed_at + 1,
        timeout=60,
    )
    until("healthy again", status_is(engine, c, "healthy"))
    events = engine.docker_ok("events", "--since", f"{killed_at:.3f}", "--until", f"{time.time():.3f}",
                              "--filter", f"container={c}", "--format", "{{.Action}}").splitlines()  # fmt: skip
    assert "health_status: healthy" in events, events


def test_removal_during_a_probe_leaves_nothing(engine: RefDockerd, name: Callable[[str], str]) -> None:
    c = name("rmprobe")
    engine.docker_ok("run", "-d", "--name", c, "--health-cmd", "sleep 60", "--health-interval", "100ms",
                     "--health-timeout", "30s", "busybox", "sleep", "300")  # fmt: skip
    cid = engine.docker_ok("inspect", "-f", "{{.Id}}", c).strip()
    until("a probe in flight", lambda: "sleep 60" in engine.docker_ok("top", c, "-o", "pid,args"))
    started = time.monotonic()
    engine.docker_ok("rm", "-f", c)
    assert time.monotonic() - started < 10  # the probe is killed, not waited for
    left = [str(p) for p in engine.exec_root.rglob(f"*{cid}*")]
    assert left == [], left
    assert engine.docker("inspect", c).returncode == 1
