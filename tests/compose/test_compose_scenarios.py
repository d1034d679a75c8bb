"""docker-compose 1.29 scenarios (tests/compose/projects/), each run against the reference dockerd
and pydockerd with the same expectations, taken from what the reference does: `ps` rows and
states, `logs` lines, what the containers see, the errors of a project that cannot come up,
and nothing of the project left after `down -v --rmi local`."""

from __future__ import annotations

import re
import select
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from tests.cli.cli_helpers import needs_engine_feature
from tests.compose.compose_helpers import Compose, explain, fetch_in_engine_netns, project_dir, ps_rows
from tests.dockerd_ref import RefDockerd
from tests.pydockerd_harness import PyDockerd

# Each scenario's pydockerd run is a strict xfail while pydockerd lacks what it needs: every
# project here has Compose create its default network; tests/compose/test_compose_nonet.py
# covers the rest of what Compose asks of the engine, on both engines.


@pytest.fixture
def project(request: pytest.FixtureRequest, dockerd: RefDockerd) -> Iterator[Compose]:
    """The project named by the test's `project_name` marker; brought down and checked after."""
    name = request.node.get_closest_marker("project_name").args[0]
    compose = Compose(dockerd, project_dir(name))
    yield compose
    down = compose.run("--profile", "jobs", "--profile", "failing", "--profile", "missing", "down", "-v", "--rmi", "local",
                       "--remove-orphans", "-t", "5")  # fmt: skip
    assert down.returncode == 0, explain(down)
    assert compose.leftovers() == {}


def project_name(name: str) -> pytest.MarkDecorator:
    return pytest.mark.project_name(name)


def states(compose: Compose, *args: str) -> dict[str, str]:
    """`docker-compose ps`: container name (without the project prefix) -> State column."""
    rows = ps_rows(compose.ok(*args, "ps"))
    return {row[0].removeprefix(f"{compose.name}_"): row[2] for row in rows}


def wait_states(compose: Compose, want: dict[str, str], timeout: float = 60.0, *args: str) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        got = states(compose, *args)
        if all(got.get(k) == v for k, v in want.items()):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"states {got}, wanted {want}")
        time.sleep(0.3)


def normalized_errors(stderr: str) -> list[str]:
    """docker-compose's ERROR lines with container ids as <id>."""
    lines = [
        line.strip()
        for line in stderr.splitlines()
        if line.startswith("ERROR") or line.startswith("Encountered")
    ]
    return [re.sub(r'Container "[0-9a-f]{12}"', 'Container "<id>"', line) for line in lines]


@needs_engine_feature("networks", "ports")
@project_name("basic")
def test_up_ps_port_exec_logs_top_config(project: Compose, dockerd: RefDockerd) -> None:
    up = project.run("up", "-d")
    assert up.returncode == 0, explain(up)
    assert f'Creating network "{project.name}_default" with the default driver' in up.stderr
    got = wait_states(project, {"web_1": "Up (healthy)", "counter_1": "Up"})
    assert set(got) == {"web_1", "counter_1"}  # the `jobs` profile is not started
    rows = {r[0]: r for r in ps_rows(project.ok("ps"))}
    assert rows[f"{project.name}_web_1"][1] == "sh -c mkdir -p /www && ech ..."
    assert re.fullmatch(r"127\.0\.0\.1:\d+->8080/tcp", rows[f"{project.name}_web_1"][3])
    # The published port, reached where the engine publishes it; env file and .env substitution.
    address = project.ok("port", "web", "8080").strip()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
    assert fetch_in_engine_netns(dockerd, f"http://{address}/") == "hello from compose\n"
    assert (
        project.ok("exec", "-T", "web", "sh", "-c", "echo $MODE-$EMPTY-$PAGE")
        == "testing--hello from compose\n"
    )
    # Project labels.
    web = project.container_ids("label=com.docker.compose.service=web")
    assert len(web) == 1
    labels = project.inspect(
        web[0],
        '{{index .Config.Labels "com.docker.compose.project"}} {{index .Config.Labels "com.docker.compose.container-number"}} {{index .Config.Labels "com.docker.compose.oneoff"}} {{index .Config.Labels "org.example.role"}}',
    )
    assert labels == f"{project.name} 1 False frontend"
    assert project.inspect(web[0], "{{.Name}}") == f"/{project.name}_web_1"
    # logs, logs -f
    tail = project.ok("logs", "--no-color", "--tail", "2", "counter").splitlines()
    assert tail[0] == f"Attaching to {project.name}_counter_1"
    assert [re.sub(r"\d+$", "N", line) for line in tail[1:]] == ["counter_1  | count N"] * 2
    follow = project.popen("logs", "-f", "--no-color", "counter")
    try:
        seen = read_until(follow, lambda out: len(re.findall(r"count \d+", out)) >= 5)
    finally:
        follow.kill()
        follow.wait()
    counts = [int(n) for n in re.findall(r"counter_1  \| count (\d+)", seen)]
    assert counts == list(range(1, len(counts) + 1))  # all of it from the start, in order, then live
    top = project.ok("top", "web").splitlines()
    assert top[0] == f"{project.name}_web_1"
    assert top[1].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(line.split()[7:] == ["httpd", "-f", "-p", "8080", "-h", "/www"] for line in top[3:])
    config = project.ok("config")
    assert "      PAGE: hello from compose\n" in config and "      MODE: testing\n" in config
    assert "    - 127.0.0.1::8080/tcp\n" in config and "    profiles:\n    - jobs\n" in config


@needs_engine_feature("networks", "ports")
@project_name("basic")
def test_pause_stop_start_restart_scale_run_profiles(project: Compose) -> None:
    project.ok("up", "-d")
    wait_states(project, {"web_1": "Up (healthy)", "counter_1": "Up"})
    project.ok("pause", "counter")
    assert states(project)["counter_1"] == "Paused"
    project.ok("unpause", "counter")
    assert states(project)["counter_1"] == "Up"
    project.ok("stop", "-t", "5", "counter")
    assert states(project)["counter_1"] == "Exit 0"  # its trap ends it at once with 0
    start = project.run("start", "counter")
    assert start.returncode == 0 and "Starting counter ... done" in start.stderr, explain(start)
    assert states(project)["counter_1"] == "Up"
    restart = project.run("restart", "-t", "5", "counter")
    assert f"Restarting {project.name}_counter_1 ... done" in restart.stderr, explain(restart)
    assert project.inspect(f"{project.name}_counter_1", "{{.State.Running}} {{.RestartCount}}") == "true 0"
    # scale up and down
    project.ok("up", "-d", "--scale", "counter=3")
    assert states(project) == {
        "web_1": "Up (healthy)",
        "counter_1": "Up",
        "counter_2": "Up",
        "counter_3": "Up",
    }
    numbers = sorted(project.inspect(c, '{{index .Config.Labels "com.docker.compose.container-number"}}')
                     for c in project.container_ids("label=com.docker.compose.service=counter"))  # fmt: skip
    assert numbers == ["1", "2", "3"]
    down_scale = project.run("up", "-d", "--scale", "counter=1")
    assert f"Stopping and removing {project.name}_counter_3 ... done" in down_scale.stderr, explain(
        down_scale
    )
    assert set(states(project)) == {"web_1", "counter_1"}
    # run --rm: a one-off container, gone afterwards
    run = project.run("run", "--rm", "counter", "echo", "one-off")
    assert (run.returncode, run.stdout) == (0, "one-off\n"), explain(run)
    assert f"Creating {project.name}_counter_run ... done" in run.stderr
    assert project.container_ids("label=com.docker.compose.oneoff=True") == []
    # a profile: its service only runs when asked for
    job = project.run("--profile", "jobs", "run", "--rm", "job")
    assert (job.returncode, job.stdout) == (0, "job ran with testing\n"), explain(job)
    project.ok("--profile", "jobs", "up", "-d")
    assert wait_states(project, {"job_1": "Exit 0"}, 30, "--profile", "jobs")["web_1"] == "Up (healthy)"
    assert project.ok("--profile", "jobs", "logs", "--no-color", "job").splitlines()[1:] == [
        "job_1      | job ran with testing"
    ]


@needs_engine_feature("networks")
@project_name("restart")
def test_restart_policies(project: Compose) -> None:
    project.ok("up", "-d")
    got = wait_states(project, {"flaky_1": "Exit 3", "never_1": "Exit 5", "stopped_1": "Up"}, 60)
    assert got["always_1"] in ("Up", "Restarting")
    flaky, always, never, stopped = (f"{project.name}_{s}_1" for s in ("flaky", "always", "never", "stopped"))
    # on-failure:2 -> two restarts after the first run, then it stays down
    deadline = time.monotonic() + 20
    while project.inspect(always, "{{.RestartCount}}") in ("0", "1") and time.monotonic() < deadline:
        time.sleep(0.3)
    assert (
        project.inspect(
            flaky,
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}",
        )
        == "2 exited 3 on-failure"
    )
    assert int(project.inspect(always, "{{.RestartCount}}")) >= 2
    assert (
        project.inspect(never, "{{.RestartCount}} {{.State.ExitCode}} [{{.HostConfig.RestartPolicy.Name}}]")
        == "0 5 []"
    )
    assert project.inspect(stopped, "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    logs = project.ok("logs", "--no-color", "flaky").splitlines()
    assert logs[1:] == ["flaky_1    | flaky run"] * 3


@needs_engine_feature("networks", "volumes")
@project_name("depends")
def test_depends_on_completed_and_healthy(project: Compose) -> None:
    up = project.run("up", "-d")
    assert up.returncode == 0, explain(up)
    order = [m.group(1) for m in re.finditer(rf"Creating {project.name}_(\w+)_1\s+\.\.\. done", up.stderr)]
    assert order == ["init", "app", "client"]
    assert states(project) == {"init_1": "Exit 0", "app_1": "Up (healthy)", "client_1": "Up"}
    logs = project.ok("logs", "--no-color", "app", "client", "init").splitlines()[1:]
    assert sorted(re.sub(r"\s+\|", " |", line) for line in logs) == [
        "app_1 | seeded",
        "client_1 | client sees seeded",
        "init_1 | init done",
    ]
    # A dependency that does not complete successfully stops its dependant from being created.
    failing = project.run("--profile", "failing", "up", "-d")
    assert failing.returncode == 1, explain(failing)
    assert normalized_errors(failing.stderr) == [
        'ERROR: for after-bad  Container "<id>" exited with code 4.',
        "Encountered errors while bringing up the project.",
    ]
    assert "after-bad_1" not in states(project, "--profile", "failing")


@needs_engine_feature("networks")
@project_name("unhealthy")
def test_a_never_healthy_service_and_a_hanging_probe(project: Compose) -> None:
    up = project.run("up", "-d")
    assert up.returncode == 1, explain(up)
    assert normalized_errors(up.stderr) == [
        'ERROR: for waiter  Container "<id>" is unhealthy.',
        "Encountered errors while bringing up the project.",
    ]
    assert wait_states(project, {"sick_1": "Up (unhealthy)", "hanging_1": "Up (unhealthy)"}, 30) == {
        "sick_1": "Up (unhealthy)", "hanging_1": "Up (unhealthy)",
    }  # fmt: skip
    sick = project.inspect(f"{project.name}_sick_1", "{{json .State.Health.Log}}")
    assert '"ExitCode":1,"Output":"probe says no\\n"' in sick
    hanging = project.inspect(
        f"{project.name}_hanging_1", "{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}|{{end}}"
    )
    assert set(hanging.rstrip("|").split("|")) == {"-1 Health check exceeded timeout (500ms)"}
    # pydockerd kills a probe past its timeout and waits for it before the next; dockerd 20.10 on
    # a loaded machine was seen to leave several running (8 after a minute), so only ours is bound.
    top = project.ok("top", "hanging")
    left = len([line for line in top.splitlines() if line.split()[7:] == ["sleep", "60"]])
    assert left <= 1 or not isinstance(project.daemon, PyDockerd), top


@needs_engine_feature("networks", "volumes")
@project_name("halfup")
def test_down_of_a_half_up_project(project: Compose) -> None:
    up = project.run("up", "-d")
    assert up.returncode == 1, explain(up)
    errors = normalized_errors(up.stderr)
    assert errors[0].startswith(f"ERROR: for {project.name}_broken_1  Cannot start service broken: ")
    assert (
        "/no/such/program" in errors[0] and errors[-1] == "Encountered errors while bringing up the project."
    )
    assert states(project) == {"ok_1": "Up", "broken_1": "Exit 127"}
    down = project.down()
    assert down.returncode == 0, explain(down)
    assert (
        f"Removing volume {project.name}_keep" in down.stderr
        and f"Removing network {project.name}_default" in down.stderr
    )
    assert project.leftovers() == {}
    # A missing image: networks and volumes exist, no container; down removes them.
    missing = project.run("--profile", "missing", "up", "-d")
    assert missing.returncode == 1, explain(missing)
    assert "Pulling missing (127.0.0.1:9/pydocker-test/no-such-image:1)..." in missing.stderr
    assert project.container_ids() == []
    assert sorted(project.leftovers()) == ["networks", "volumes"]


@needs_engine_feature("networks", "build")
@project_name("badbuild")
def test_a_failing_build(project: Compose, dockerd: RefDockerd) -> None:
    before = set(dockerd.docker_ok("ps", "-aq", "--no-trunc").split())
    up = project.run("up", "--build", "-d")
    assert up.returncode == 1, explain(up)
    assert "Step 3/4 : RUN echo about to fail; exit 3" in up.stdout and "about to fail" in up.stdout
    assert "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3" in up.stderr
    assert "Service 'app' failed to build : Build failed" in up.stderr
    assert project.container_ids() == []
    # dockerd keeps the failed step's container (the classic builder's --rm spares it); not the project's
    for cid in set(dockerd.docker_ok("ps", "-aq", "--no-trunc").split()) - before:
        dockerd.docker_ok("rm", "-f", cid)
    dockerd.docker("image", "prune", "-f")


def read_until(proc: subprocess.Popen[str], done: Callable[[str], bool], timeout: float = 30.0) -> str:
    """A Popen's stdout until DONE(text so far) holds."""
    out = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while not done(out):
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout}s: {out!r}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            out += line
    return out
