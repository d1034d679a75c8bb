"""Fixtures: one reference dockerd and one pydockerd per session (per xdist worker) with busybox loaded, a
`cli` runner with a private HOME and config directory, and `names` for unique container
and image names that are removed (through the reference docker CLI) after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_helpers import CLI, Names
from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd
from tests.pydockerd_harness import pydockerd_engine


@pytest.fixture(scope="session", params=["reference", "pydockerd"])
def dockerd(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    """Every CLI test runs twice: against Debian's dockerd and against pydockerd."""
    engine = reference_dockerd({}, images=(BUSYBOX_TAR,)) if request.param == "reference" else pydockerd_engine()
    with engine as daemon:
        yield daemon


@pytest.fixture
def cli(dockerd: RefDockerd, tmp_path: Path) -> CLI:
    home = tmp_path / "home"
    home.mkdir()
    return CLI(dockerd, home)


@pytest.fixture
def names(dockerd: RefDockerd) -> Iterator[Names]:
    n = Names()
    yield n
    if n.containers:
        dockerd.docker("rm", "-f", *n.containers)
    if n.images:
        dockerd.docker("rmi", "-f", *n.images)
    # Anything else carrying this test's tag (a container renamed by the test, say).
    leftover = dockerd.docker("ps", "-aq", "--filter", f"name={n.tag}").stdout.split()
    if leftover:
        dockerd.docker("rm", "-f", *leftover)
