"""The health monitor's answers side by side with the reference dockerd's on the same probes:
what Docker records (output cut, timeout text, statuses, streaks), what it refuses at create,
how it merges the image's HEALTHCHECK, the `ps` text and health filter. The reference is driven
through docker-py and the Docker CLI; ours through the monitor on a real pycontainerd."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.errors import APIError

from dockerd.engine.errors import InvalidParameter
from dockerd.health import (
    HealthState,
    check_filter,
    filter_matches,
    merge_with_image,
    status_text,
    validate,
)
from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd
from tests.health.conftest import Box, Recorder
from tests.health.test_monitor import MS, wait_for

IMAGE = "busybox:latest"


@pytest.fixture(scope="module")
def ref() -> Iterator[RefDockerd]:
    with reference_dockerd({}, images=(BUSYBOX_TAR,), private_network=True) as daemon:
        yield daemon


@pytest.fixture
def api(ref: RefDockerd) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=f"unix://{ref.socket}", version="1.41", timeout=60)
    yield client
    for c in client.containers(all=True, quiet=True):
        client.remove_container(c["Id"], force=True)
    client.close()


def ref_run(api: docker.APIClient, healthcheck: dict[str, Any], *cmd: str) -> str:
    host = api.create_host_config(network_mode="none")
    cid = api.create_container(
        IMAGE, list(cmd or ("sleep", "3600")), host_config=host, healthcheck=healthcheck
    )["Id"]
    api.start(cid)
    return str(cid)


def ref_health(api: docker.APIClient, cid: str) -> dict[str, Any]:
    return dict(api.inspect_container(cid)["State"].get("Health") or {})


def ours(box: Box, healthcheck: dict[str, Any], *cmd: str) -> tuple[Any, str]:
    monitor, _ = box.monitor(Recorder())
    cid, started = box.run(*(cmd or ("sleep", "3600")))
    monitor.started(cid, healthcheck, started)
    return monitor, cid


PROBES = [
    pytest.param(
        {"Test": ["CMD-SHELL", "printf %04095d 0; printf '\\303\\251tail'; head -c 9000 /dev/zero"]},
        id="cut-at-4096",
    ),
    pytest.param({"Test": ["CMD-SHELL", "echo out; exit 7"]}, id="exit-status"),
    pytest.param({"Test": ["CMD", "sleep", "30"], "Timeout": 700 * MS}, id="timeout"),
    pytest.param({"Test": ["CMD-SHELL", "echo hi; exit 0"]}, id="pass"),
]


@pytest.mark.parametrize("check", PROBES)
def test_first_result_as_the_reference_records_it(
    box: Box, api: docker.APIClient, check: dict[str, Any]
) -> None:
    check = {
        **check,
        "Interval": 1000 * MS,
    }  # a second between probes: time to read the state after the first
    ref_cid = ref_run(api, check)
    monitor, cid = ours(box, check)
    theirs = wait_for(lambda: (h := ref_health(api, ref_cid)) and h["Log"] and h, timeout=30, step=0.02)
    mine = wait_for(lambda: (h := monitor.health(cid)) and h["Log"] and h, timeout=30, step=0.02)
    assert len(theirs["Log"]) == len(mine["Log"]) == 1
    assert set(mine) == set(theirs) == {"Status", "FailingStreak", "Log"}
    t, m = theirs["Log"][0], mine["Log"][0]
    assert set(m) == set(t) == {"Start", "End", "ExitCode", "Output"}
    assert (m["ExitCode"], m["Output"]) == (t["ExitCode"], t["Output"])
    assert (mine["Status"], mine["FailingStreak"]) == (theirs["Status"], theirs["FailingStreak"])


def test_status_and_streak_sequence_and_stop_as_the_reference(
    box: Box, api: docker.APIClient, ref: RefDockerd
) -> None:
    check = {"Test": ["CMD", "false"], "Interval": 200 * MS, "Retries": 2}
    since = str(int(time.time()))
    ref_cid = ref_run(api, check)
    monitor, cid = ours(box, check)
    wait_for(lambda: ref_health(api, ref_cid).get("FailingStreak", 0) >= 3, timeout=30)
    wait_for(lambda: monitor.health(cid)["FailingStreak"] >= 3, timeout=30)
    events = ref.docker_ok("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", f"container={ref_cid}",
                           "--filter", "event=health_status", "--format", "{{.Action}}").split("\n")  # fmt: skip
    assert [e for e in events if e] == ["health_status: unhealthy"]  # one event: the change
    # `ps` shows the status in brackets and filters on it, on both.
    ps = ref.docker_ok("ps", "--filter", "health=unhealthy", "--format", "{{.ID}} {{.Status}}").split()
    assert ps[0] == ref_cid[:12] and ps[-1] == "(unhealthy)"
    state = monitor.state(cid)
    assert f"({status_text(state)})" == ps[-1]
    assert filter_matches({"unhealthy"}, state) and not filter_matches({"healthy", "starting"}, state)
    # Stopped, both say unhealthy (dockerd: "unhealthy when the monitor has stopped").
    api.kill(ref_cid)
    monitor.stop(cid)
    wait_for(lambda: not api.inspect_container(ref_cid)["State"]["Running"])
    assert ref_health(api, ref_cid)["Status"] == monitor.health(cid)["Status"] == "unhealthy"


def test_start_status_text_and_none_filter_as_the_reference(
    box: Box, api: docker.APIClient, ref: RefDockerd
) -> None:
    ref_cid = ref_run(api, {"Test": ["CMD", "true"], "Interval": 3_600_000 * MS})
    plain = ref_run(api, {"Test": ["NONE"]})
    line = ref.docker_ok("ps", "--filter", f"id={ref_cid}", "--format", "{{.Status}}").strip()
    assert line.endswith("(health: starting)")
    assert f"({status_text(HealthState())})" == "(health: starting)"
    none = ref.docker_ok("ps", "-q", "--no-trunc", "--filter", "health=none").split()
    assert plain in none and ref_cid not in none
    assert "Health" not in api.inspect_container(plain)["State"]
    assert filter_matches({"none"}, None) and not filter_matches({"none"}, HealthState())


def test_bad_filter_value_as_the_reference(ref: RefDockerd) -> None:
    res = ref.docker("ps", "--filter", "health=sick")
    assert res.returncode != 0
    with pytest.raises(InvalidParameter) as err:
        check_filter(["healthy", "sick"])
    assert res.stderr.strip() == f"Error response from daemon: {err.value}"


BAD = [
    {"Test": ["CMD", "true"], "Interval": 500_000},
    {"Test": ["CMD", "true"], "Timeout": 999},
    {"Test": ["CMD", "true"], "Retries": -1},
    {"Test": ["CMD", "true"], "StartPeriod": 10},
    {"Test": ["CMD", "true"], "Interval": -5, "StartPeriod": 10},
    {"Test": ["CMD", "true"], "Retries": -1, "StartPeriod": 10},
]


@pytest.mark.parametrize("check", BAD, ids=lambda c: ",".join(k for k in c if k != "Test"))
def test_create_time_refusals_as_the_reference(api: docker.APIClient, check: dict[str, Any]) -> None:
    with pytest.raises(APIError) as theirs:
        api.create_container(IMAGE, ["true"], healthcheck=check)
    with pytest.raises(InvalidParameter) as mine:
        validate(check)
    assert theirs.value.response.status_code == InvalidParameter.status
    assert theirs.value.explanation == str(mine.value)


MERGES = [
    pytest.param(None, id="none-asked"),
    pytest.param({"Retries": 7}, id="retries-only"),
    pytest.param({"Test": ["CMD", "false"], "Timeout": 2_000_000_000}, id="test-and-timeout"),
    pytest.param({"Test": ["NONE"]}, id="disabled"),
]


@pytest.mark.parametrize("user", MERGES)
def test_image_healthcheck_merge_as_the_reference(
    ref: RefDockerd, api: docker.APIClient, user: dict[str, Any] | None
) -> None:
    dockerfile = 'FROM busybox\nHEALTHCHECK --interval=5s --start-period=3s --retries=4 CMD ["true"]\n'
    tag = f"hc-merge-{time.monotonic_ns()}"
    ref.docker_ok("build", "-q", "-t", tag, "-", input=dockerfile, timeout=120)
    try:
        image_check = api.inspect_image(tag)["Config"]["Healthcheck"]
        cid = api.create_container(tag, ["true"], healthcheck=user)["Id"]
        theirs = api.inspect_container(cid)["Config"]["Healthcheck"]
        assert json.dumps(merge_with_image(user, image_check), sort_keys=True) == json.dumps(
            theirs, sort_keys=True
        )
    finally:
        for c in api.containers(all=True, quiet=True):
            api.remove_container(c["Id"], force=True)
        api.remove_image(tag, force=True)
