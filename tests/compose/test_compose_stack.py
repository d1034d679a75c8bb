"""docker-compose.test.yml, the project's own end-to-end harness, run as a user runs it:
`docker-compose -f docker-compose.test.yml up --build --exit-code-from sut`, then
`down -v --rmi local`; a failing `sut` fails the test, and nothing of the project may remain."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.cli_helpers import needs_engine_feature
from tests.compose.compose_helpers import REPO, Compose, explain, free_port
from tests.dockerd_ref import RefDockerd

HARNESS = "docker-compose.test.yml"
CHECKS = 12  # the "ok - ..." lines of tests/compose/app/sut/sut.sh
# What the stack needs of the engine: its images built, a user network with DNS by service
# name and alias, a published port, a named volume.
NEEDS = ("build", "networks", "dns", "ports", "volumes")


def sut_lines(stdout: str) -> list[str]:
    """What the sut printed, from the log lines docker-compose prefixes with "sut_1  | "."""
    return [
        re.sub(r"^.*?sut_1\s+\|\s?", "", line)
        for line in stdout.splitlines()
        if re.match(r"^\S*sut_1\s+\|", line)
    ]


def run_harness(dockerd: RefDockerd, *extra_files: str) -> tuple[int, list[str], str]:
    compose = Compose(dockerd, REPO, files=(HARNESS, *extra_files), env={"WEB_PORT": str(free_port())})
    try:
        res = compose.run("--no-ansi", "up", "--build", "--exit-code-from", "sut", timeout=600)
    finally:
        down = compose.down()
    assert down.returncode == 0, explain(down)
    assert compose.leftovers() == {}
    return res.returncode, sut_lines(res.stdout), explain(res)


@needs_engine_feature(*NEEDS)
def test_compose_test_yml_passes(dockerd: RefDockerd) -> None:
    status, lines, details = run_harness(dockerd)
    assert status == 0, details
    assert lines[-1] == "sut: all checks passed", details
    assert len([line for line in lines if line.startswith("ok - ")]) == CHECKS, details
    assert not [line for line in lines if line.startswith("not ok")], details


@needs_engine_feature(*NEEDS)
def test_a_failing_sut_fails_the_run(dockerd: RefDockerd, tmp_path: Path) -> None:
    override = tmp_path / "override.yml"
    override.write_text("services:\n  sut:\n    environment:\n      GREETING: not the env file's\n")
    status, lines, details = run_harness(dockerd, str(override))
    assert status == 1, details
    assert "not ok - env_file sets GREETING (got 'not the env file's')" in lines, details
    assert lines[-1] == "sut: FAILED", details
    assert len([line for line in lines if line.startswith("ok - ")]) == CHECKS - 1, details
