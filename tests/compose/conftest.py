"""One engine per session (per xdist worker) for the Compose tests, each test run against both:
Debian's dockerd in a network namespace of its own, with its userland proxy on and its
default bridge (the reference harness turns both off), so the ports docker-compose and
testcontainers publish are reachable there, and pydockerd. What pydockerd cannot do yet is
marked `needs_engine_feature(...)` with the features it needs (networks, volumes, build...),
the CLI tests' one switch (tests/cli/cli_helpers.py): a strict xfail on pydockerd."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.cli_helpers import expected_failure_on_pydockerd
from tests.compose.compose_helpers import DOCKER_COMPOSE
from tests.dockerd_ref import BUSYBOX_TAR, RefDockerd, reference_dockerd
from tests.pydockerd_harness import pydockerd_engine


@pytest.fixture(scope="session", params=["reference", "pydockerd"])
def dockerd(request: pytest.FixtureRequest) -> Iterator[RefDockerd]:
    if not os.access(DOCKER_COMPOSE, os.X_OK):
        pytest.fail(f"{DOCKER_COMPOSE} is missing: scripts/setup-test installs Debian's docker-compose")
    engine = (
        reference_dockerd(
            {}, images=(BUSYBOX_TAR,), private_network=True, extra_args=("--userland-proxy=true", "--bridge=")
        )
        if request.param == "reference"
        else pydockerd_engine()
    )
    with engine as daemon:
        yield daemon


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """needs_engine_feature(...) -> a strict xfail on the pydockerd run while pydockerd lacks it."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents or item.get_closest_marker("xfail") is not None:
            continue  # the CLI tests' conftest marks its own (conftest hooks see every item)
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
    config.addinivalue_line(
        "markers", "project_name(name): the Compose project of tests/compose/projects/ a test uses"
    )
