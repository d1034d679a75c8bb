"""The health monitor against real busybox containers through a real pycontainerd: every probe
is an exec in the container's task (execprobe.py), nothing is mocked.

Durations are short (Docker's minimum is 1ms) so the schedule shows within seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dockerd.engine.logs import parse_time
from dockerd.health import HEALTHY, STARTING, UNHEALTHY, HealthMonitor
from tests.health.conftest import Box, Recorder

MS = 1_000_000


def wait_for(what: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(step)


def health_of(monitor: HealthMonitor, cid: str) -> dict[str, Any]:
    health = monitor.health(cid)
    assert health is not None, f"no State.Health for {cid}"
    return health


class History(Recorder):
    """Every saved State.Health in order (the engine would write each to config.v2.json)."""

    def __init__(self) -> None:
        super().__init__()
        self.updates: list[dict[str, Any]] = []

    def on_update(self, cid: str, health: dict[str, Any]) -> None:
        super().on_update(cid, health)
        self.updates.append(health)


def test_passing_probe_makes_the_container_healthy(box: Box) -> None:
    rec = History()
    monitor, runner = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    check = {"Test": ["CMD-SHELL", "echo ok; echo oops >&2"], "Interval": 200 * MS, "Timeout": 5000 * MS}
    assert monitor.started(cid, check, started)
    assert monitor.health(cid) == {"Status": STARTING, "FailingStreak": 0, "Log": []}
    health = wait_for(lambda: (h := monitor.health(cid)) and h["Status"] == HEALTHY and h)
    assert rec.statuses == [(cid, HEALTHY)]
    [entry] = health["Log"][:1]
    assert entry["ExitCode"] == 0
    assert sorted(entry["Output"].splitlines()) == ["ok", "oops"]  # stdout and stderr, one buffer
    start, end = parse_time(entry["Start"]), parse_time(entry["End"])
    assert started <= start <= end < start + 5
    assert start - started >= 0.19  # the first probe waits one interval
    assert (
        rec.saved[cid] == monitor.health(cid)
        or rec.saved[cid]["Log"] == health["Log"][: len(rec.saved[cid]["Log"])]
    )
    # Each probe is a Docker exec: created, started, died with its status, then deleted.
    actions = [a.split(":")[0] for c, a, _ in rec.exec_events if c == cid][:3]
    assert actions == ["exec_create", "exec_start", "exec_die"]
    assert rec.exec_events[0][1] == "exec_create: /bin/sh -c echo ok; echo oops >&2"
    assert rec.exec_events[2][2]["exitCode"] == "0"
    monitor.stop(cid)
    assert health_of(monitor, cid)["Status"] == UNHEALTHY  # as dockerd marks a stopped monitor
    assert not runner.owns(rec.exec_events[0][2]["execID"])
    wait_for(lambda: box.processes(cid) == ["sleep 3600"])  # no probe process left in the container


def test_failures_make_it_unhealthy_after_the_retries_and_a_pass_heals_it(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sh", "-c", "sleep 5; touch /tmp/ok; exec sleep 3600")
    check = {
        "Test": ["CMD", "sh", "-c", "test -e /tmp/ok || { echo not yet; exit 3; }"],
        "Interval": 100 * MS,
        "Retries": 3,
    }
    monitor.started(cid, check, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == UNHEALTHY)
    streaks = [(u["Status"], u["FailingStreak"]) for u in rec.updates if u["Log"]][:3]
    assert streaks == [(STARTING, 1), (STARTING, 2), (UNHEALTHY, 3)]
    failed = rec.updates[-1]["Log"][-1]
    assert (failed["ExitCode"], failed["Output"]) == (3, "not yet\n")
    wait_for(lambda: health_of(monitor, cid)["Status"] == HEALTHY)
    health = health_of(monitor, cid)
    assert health["FailingStreak"] == 0
    assert len(health["Log"]) == 5  # only the last five results are kept
    assert max(u["FailingStreak"] for u in rec.updates) > 5
    assert rec.statuses == [(cid, UNHEALTHY), (cid, HEALTHY)]


def test_failures_inside_the_start_period_do_not_count(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    check = {"Test": ["CMD", "false"], "Interval": 100 * MS, "Retries": 1, "StartPeriod": 4000 * MS}
    monitor.started(cid, check, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == UNHEALTHY)
    results = [(u["Log"][-1], u["FailingStreak"], u["Status"]) for u in rec.updates if u["Log"]]
    inside = [
        r for r in results if parse_time(r[0]["Start"]) - started < 4.0
    ]  # (probes took 0.75 s each on a loaded machine)
    assert len(inside) >= 3
    assert all(streak == 0 and status == STARTING for _, streak, status in inside)
    first_counted = results[len(inside)]
    assert first_counted[1:] == (1, UNHEALTHY)
    assert parse_time(first_counted[0]["Start"]) - started >= 4.0
    assert rec.statuses == [(cid, UNHEALTHY)]


def test_a_pass_inside_the_start_period_makes_it_healthy(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sh", "-c", "sleep 1; touch /tmp/ok; exec sleep 3600")
    check = {
        "Test": ["CMD", "test", "-e", "/tmp/ok"],
        "Interval": 100 * MS,
        "Retries": 1,
        "StartPeriod": 30_000 * MS,
    }
    monitor.started(cid, check, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == HEALTHY)
    assert rec.statuses == [(cid, HEALTHY)]  # the failures before did not make it unhealthy
    assert all(u["FailingStreak"] == 0 for u in rec.updates)


def test_a_hanging_probe_is_killed_by_its_timeout(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    check = {"Test": ["CMD", "sleep", "30"], "Interval": 100 * MS, "Timeout": 500 * MS, "Retries": 1}
    monitor.started(cid, check, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == UNHEALTHY, timeout=20)
    entry = health_of(monitor, cid)["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (500ms)")
    assert 0.45 <= parse_time(entry["End"]) - parse_time(entry["Start"]) < 2.0
    monitor.stop(cid)
    # The killed probe is gone from the container (not left running beside its init).
    wait_for(lambda: box.processes(cid) == ["sleep 3600"], timeout=10)


def test_output_is_cut_at_4096_bytes_as_dockerd_cuts_it(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    # 4095 ASCII bytes, then a two-byte character across the limit, then more.
    probe = "printf %04095d 0; printf '\\303\\251tail'; head -c 100000 /dev/zero"
    monitor.started(cid, {"Test": ["CMD-SHELL", probe], "Interval": 100 * MS}, started)
    entry = wait_for(lambda: (h := monitor.health(cid)) and h["Log"] and h["Log"][0])
    assert entry["ExitCode"] == 0
    assert entry["Output"] == "0" * 4095 + "\ufffd..."


def test_a_probe_that_cannot_run_is_a_failure_with_the_runtime_error(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    monitor.started(cid, {"Test": ["CMD", "/no/such/probe"], "Interval": 100 * MS, "Retries": 2}, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == UNHEALTHY)
    entry = health_of(monitor, cid)["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"].startswith("OCI runtime exec failed: ") and entry["Output"].endswith(": unknown")
    assert "/no/such/probe" in entry["Output"]


def test_stopping_the_monitor_cancels_a_probe_in_flight(box: Box) -> None:
    rec = History()
    monitor, runner = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    monitor.started(
        cid, {"Test": ["CMD", "sleep", "40"], "Interval": 100 * MS, "Timeout": 60_000 * MS}, started
    )
    wait_for(lambda: "sleep 40" in box.processes(cid))
    monitor.stop(cid)
    assert monitor.health(cid) == {"Status": UNHEALTHY, "FailingStreak": 0, "Log": []}
    wait_for(lambda: box.processes(cid) == ["sleep 3600"], timeout=10)
    time.sleep(0.3)
    assert health_of(monitor, cid)["Log"] == []  # the cancelled probe's result is dropped
    assert rec.statuses == []  # and a stop publishes no health_status event
    assert not any(runner.owns(a["execID"]) for _, _, a in rec.exec_events)


def test_a_restart_of_the_container_starts_over_from_starting(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    check = {"Test": ["CMD", "true"], "Interval": 100 * MS}
    monitor.started(cid, check, started)
    wait_for(lambda: health_of(monitor, cid)["Status"] == HEALTHY)
    monitor.stop(cid)
    kept = health_of(monitor, cid)["Log"]
    monitor.started(cid, check, time.time())
    again = health_of(monitor, cid)
    assert (again["Status"], again["FailingStreak"], again["Log"]) == (STARTING, 0, kept)
    wait_for(lambda: health_of(monitor, cid)["Status"] == HEALTHY)
    assert rec.statuses == [(cid, HEALTHY), (cid, HEALTHY)]


def test_probing_resumes_after_a_daemon_restart(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    cid, started = box.run("sleep", "3600")
    check = {"Test": ["CMD-SHELL", "date +%s.%N"], "Interval": 150 * MS}
    monitor.started(cid, check, started)
    wait_for(lambda: len(health_of(monitor, cid)["Log"]) >= 2)
    monitor.close()  # pydockerd goes away; the last saved State.Health is on disk
    saved = rec.saved[cid]
    assert saved["Status"] == HEALTHY
    box.restart_daemon()  # and pycontainerd too: the container lives on in its shim
    restarted = time.time()

    rec2 = History()
    monitor2, _ = box.monitor(rec2, box.client)
    monitor2.load(cid, saved)
    assert monitor2.health(cid) == saved
    assert monitor2.resume(cid, check, started)
    assert health_of(monitor2, cid)["Status"] == HEALTHY  # resumed, not reset to starting
    wait_for(lambda: len(rec2.updates) >= 2)
    log = health_of(monitor2, cid)["Log"]
    new = [e for e in log if e not in saved["Log"]]
    assert len(new) >= 2 and all(parse_time(e["Start"]) > restarted for e in new)
    assert log[: len(log) - len(new)] == saved["Log"][len(saved["Log"]) + len(new) - len(log) :]
    assert rec2.statuses == []  # still healthy: no event


def test_no_probe_for_none_or_a_missing_test(box: Box) -> None:
    rec = History()
    monitor, _ = box.monitor(rec)
    for check in (None, {"Test": ["NONE"]}, {}, {"Test": ["BOGUS", "x"]}):
        assert not monitor.started("c", check, time.time())
        assert monitor.health("c") is None
    assert rec.updates == []
