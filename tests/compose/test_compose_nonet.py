"""docker-compose 1.29 on what needs no network, volume or build (tests/compose/projects/nonet/:
every service `network_mode: none`, so Compose creates no network), against the reference
dockerd and pydockerd with the same expectations: what Compose needs of the engine besides
those three backends (labels and label filters, names, healthchecks, depends_on conditions,
events, one-off containers with their links, restart policies, pause/stop/start/restart/kill,
logs, exec, top), with nothing of the project left after `down -v --rmi local`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from dockerd.engine.logs import parse_time
from tests.compose.compose_helpers import Compose, explain, project_dir, ps_rows
from tests.compose.test_compose_scenarios import normalized_errors, read_until, states, wait_states
from tests.dockerd_ref import RefDockerd

PROFILES = ("jobs", "sick", "broken", "missing")


@pytest.fixture
def project(dockerd: RefDockerd) -> Iterator[Compose]:
    compose = Compose(dockerd, project_dir("nonet"))
    yield compose
    profiles = [a for p in PROFILES for a in ("--profile", p)]
    down = compose.run(*profiles, "down", "-v", "--rmi", "local", "--remove-orphans", "-t", "5")
    assert down.returncode == 0, explain(down)
    assert compose.leftovers() == {}


def started_at(compose: Compose, service: str) -> float:
    return parse_time(compose.inspect(f"{compose.name}_{service}_1", "{{.State.StartedAt}}"))


def test_up_depends_on_health_labels_logs_exec_top(project: Compose) -> None:
    up = project.run("up", "-d")
    assert up.returncode == 0, explain(up)
    assert "Creating network" not in up.stderr
    got = wait_states(
        project,
        {
            "web_1": "Up (healthy)",
            "counter_1": "Up",
            "init_1": "Exit 0",
            "after_1": "Up",
            "flaky_1": "Exit 3",
        },
    )
    assert set(got) == {"web_1", "counter_1", "init_1", "after_1", "flaky_1"}  # no profile's service
    # depends_on: counter started once web was healthy (its first probe runs one 200ms interval
    # after its start), after once init had completed.
    assert started_at(project, "counter") >= started_at(project, "web") + 0.2
    init_done = parse_time(project.inspect(f"{project.name}_init_1", "{{.State.FinishedAt}}"))
    assert started_at(project, "after") >= init_done
    # Names and labels as Compose sets them, found through the engine's label filters.
    web = project.container_ids("label=com.docker.compose.service=web")
    assert len(web) == 1 and project.inspect(web[0], "{{.Name}}") == f"/{project.name}_web_1"
    labels = project.inspect(
        web[0],
        '{{index .Config.Labels "com.docker.compose.project"}} {{index .Config.Labels "com.docker.compose.container-number"}} {{index .Config.Labels "com.docker.compose.oneoff"}} {{index .Config.Labels "org.example.role"}}',
    )
    assert labels == f"{project.name} 1 False frontend"
    assert project.container_ids("label=org.example.role=frontend", "health=healthy") == web
    # Env file and .env substitution, seen inside.
    assert (
        project.ok("exec", "-T", "web", "sh", "-c", "echo $MODE-$EMPTY-$PAGE")
        == "testing--hello from compose\n"
    )
    # logs: a service's lines, its prefix; -f from the start, in order.
    assert project.ok("logs", "--no-color", "init").splitlines() == [
        f"Attaching to {project.name}_init_1",
        "init_1     | init done",
    ]
    follow = project.popen("logs", "-f", "--no-color", "counter")
    try:
        seen = read_until(follow, lambda out: len(re.findall(r"count \d+", out)) >= 5)
    finally:
        follow.kill()
        follow.wait()
    counts = [int(n) for n in re.findall(r"counter_1\s+\| count (\d+)", seen)]
    assert counts == list(range(1, len(counts) + 1))
    # The restart policy: on-failure:2 ran it three times.
    assert project.inspect(f"{project.name}_flaky_1", "{{.RestartCount}} {{.State.ExitCode}}") == "2 3"
    assert project.ok("logs", "--no-color", "flaky").splitlines()[1:] == ["flaky_1    | flaky run"] * 3
    top = project.ok("top", "web").splitlines()
    assert top[0] == f"{project.name}_web_1"
    assert any(line.split()[7:] == ["sleep", "3600"] for line in top[3:])


def test_lifecycle_scale_run_and_profiles(project: Compose, dockerd: RefDockerd) -> None:
    project.ok("up", "-d", "web", "counter")
    wait_states(project, {"web_1": "Up (healthy)", "counter_1": "Up"})
    project.ok("pause", "web")
    assert states(project)["web_1"] == "Paused"
    project.ok("unpause", "web")
    wait_states(project, {"web_1": "Up (healthy)"})
    project.ok("stop", "-t", "5", "counter")
    assert states(project)["counter_1"] == "Exit 0"
    start = project.run("start", "counter")
    assert "Starting counter ... done" in start.stderr, explain(start)
    restart = project.run("restart", "-t", "5", "web")
    assert f"Restarting {project.name}_web_1 ... done" in restart.stderr, explain(restart)
    wait_states(project, {"web_1": "Up (healthy)"})
    project.ok("kill", "counter")
    assert states(project)["counter_1"] == "Exit 137"
    project.ok("rm", "-f", "counter")
    assert "counter_1" not in states(project)
    # scale up and down
    project.ok("up", "-d", "--scale", "counter=3", "counter")
    assert {k: v for k, v in states(project).items() if k.startswith("counter")} == {
        "counter_1": "Up",
        "counter_2": "Up",
        "counter_3": "Up",
    }
    down_scale = project.run("up", "-d", "--scale", "counter=1", "counter")
    assert f"Stopping and removing {project.name}_counter_3 ... done" in down_scale.stderr, explain(
        down_scale
    )
    # run: one-off containers, linked to the service's own.
    run = project.run("run", "--rm", "counter", "echo", "one-off")
    assert (run.returncode, run.stdout) == (0, "one-off\n"), explain(run)
    assert f"Creating {project.name}_counter_run ... done" in run.stderr
    env = project.run(
        "run",
        "--rm",
        "-T",
        "-e",
        "X=from-run",
        "--label",
        "pdc.extra=yes",
        "web",
        "sh",
        "-c",
        "echo $X $MODE",
    )
    assert env.stdout == "from-run testing\n", explain(env)
    one_off = project.ok("run", "-d", "web", "sleep", "300").strip()
    assert re.fullmatch(rf"{project.name}_web_run_[0-9a-f]{{12}}", one_off)
    links = json.loads(project.inspect(one_off, "{{json .HostConfig.Links}}"))
    alias = f"/{project.name}_web_1:/{one_off}"
    assert sorted(links) == sorted(f"{alias}/{a}" for a in ("web", f"{project.name}_web_1", "web_1"))
    assert project.inspect(one_off, '{{index .Config.Labels "com.docker.compose.oneoff"}}') == "True"
    assert project.container_ids("label=com.docker.compose.oneoff=True") == [
        dockerd.docker_ok("inspect", "-f", "{{.Id}}", one_off).strip()
    ]
    # A profile's service runs only when asked for.
    job = project.run("--profile", "jobs", "run", "--rm", "job")
    assert (job.returncode, job.stdout) == (0, "job ran with testing\n"), explain(job)
    assert "job_1" not in states(project, "--profile", "jobs")


def test_attached_up_with_exit_code_from(project: Compose) -> None:
    res = project.run("--no-ansi", "up", "--exit-code-from", "flaky", "web", "flaky")
    assert res.returncode == 3, explain(res)
    lines = res.stdout.splitlines()
    assert (
        lines[0] == f"Attaching to {project.name}_web_1, {project.name}_flaky_1"
        or lines[0] == f"Attaching to {project.name}_flaky_1, {project.name}_web_1"
    )
    logged = [re.sub(r"\s+\|", " |", line) for line in lines if "|" in line]
    # flaky's on-failure:2 may start it again (on either engine) before docker-compose, seeing
    # the first exit, stops it: one run's line, or up to three, never anything else
    assert logged.count("web_1 | web ready") == 1 and 1 <= logged.count("flaky_1 | flaky run") <= 3, logged
    assert len(logged) == 1 + logged.count("flaky_1 | flaky run"), logged
    assert f"{project.name}_flaky_1 exited with code 3" in lines and "Aborting on container exit..." in lines
    assert states(project)["web_1"] == "Exit 0"  # stopped by the abort


def test_what_cannot_come_up(project: Compose) -> None:
    sick = project.run("--profile", "sick", "up", "-d", "waiter")
    assert sick.returncode == 1, explain(sick)
    assert normalized_errors(sick.stderr) == [
        'ERROR: for waiter  Container "<id>" is unhealthy.',
        "Encountered errors while bringing up the project.",
    ]
    assert states(project, "--profile", "sick") == {"sick_1": "Up (unhealthy)"}
    log = json.loads(project.inspect(f"{project.name}_sick_1", "{{json .State.Health.Log}}"))
    assert {(e["ExitCode"], e["Output"]) for e in log} == {(1, "probe says no\n")}
    broken = project.run("--profile", "broken", "up", "-d", "broken")
    assert broken.returncode == 1, explain(broken)
    errors = normalized_errors(broken.stderr)
    assert errors[0].startswith(f"ERROR: for {project.name}_broken_1  Cannot start service broken: ")
    assert 'exec: "/no/such/program": stat /no/such/program: no such file or directory' in errors[0]
    assert states(project, "--profile", "broken")["broken_1"] == "Exit 127"
    missing = project.run("--profile", "missing", "up", "-d", "missing")
    assert missing.returncode == 1, explain(missing)
    assert missing.stderr.splitlines()[-2:] == [
        "Pulling missing (127.0.0.1:9/pydocker-test/no-such-image:1)...",
        'Get "http://127.0.0.1:9/v2/": dial tcp 127.0.0.1:9: connect: connection refused',
    ]
    rows = ps_rows(project.ok("--profile", "missing", "ps"))
    assert f"{project.name}_missing_1" not in [r[0] for r in rows]
