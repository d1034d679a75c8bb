"""Fixtures: one reference dockerd and one pydockerd per session (per xdist worker) with busybox loaded, a
`cli` runner with a private HOME and config directory, and `names` for unique container,
image, network and volume names that are removed (through the reference docker CLI) after
each test.

The reference runs in a network namespace of its own, so the networks tests create (bridges,
veths, published ports) never touch the host's. Tests of what pydockerd does not serve yet are
marked with `needs_engine_feature` (tests/cli/cli_helpers.py): their pydockerd run is an xfail
that must fail (strict), so it flips to an error the day the feature lands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_helpers import CLI, Names, expected_failure_on_pydockerd
from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd
from tests.pydockerd_harness import pydockerd_engine


@pytest.fixture(scope="session", params=["reference", "pydockerd"])
def dockerd(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    """Every CLI test runs twice: against Debian's dockerd and against pydockerd."""
    engine = (
        reference_dockerd({}, images=(BUSYBOX_TAR,), private_network=True)
        if request.param == "reference"
        else pydockerd_engine()
    )
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
    if n.networks:
        dockerd.docker("network", "rm", *n.networks)
    if n.volumes:
        dockerd.docker("volume", "rm", "-f", *n.volumes)
    # Anything else carrying this test's tag (a container renamed by the test, say).
    leftover = dockerd.docker("ps", "-aq", "--filter", f"name={n.tag}").stdout.split()
    if leftover:
        dockerd.docker("rm", "-f", *leftover)
    # What the removals above could not remove is a leak of the test (or of the engine).
    left = {
        "networks": dockerd.docker("network", "ls", "-q", "--filter", f"name={n.tag}").stdout.split(),
        "volumes": dockerd.docker("volume", "ls", "-q", "--filter", f"name={n.tag}").stdout.split(),
        "images": [i for i in n.images if dockerd.docker("image", "inspect", i).returncode == 0],
    }
    assert not any(left.values()), f"left behind: {left}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """needs_engine_feature(...) -> a strict xfail on the pydockerd run while pydockerd lacks it."""
    for item in items:
        marker = item.get_closest_marker("needs_engine_feature")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or callspec.params.get("dockerd") != "pydockerd":
            continue
        xfail = expected_failure_on_pydockerd(marker.args)
        if xfail is not None:
            item.add_marker(xfail)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_engine_feature(*names): engine features the test needs (cli_helpers.py)"
    )
