"""Fixtures of the CRI tests: one node (namespace, registry, engine) per test; see harness.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cri.harness import Engine, cri_engine, remove_base, short_base


@pytest.fixture(params=["pycontainerd", "containerd"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The same test body against pycontainerd's CRI plugin and containerd 1.6's."""
    base = short_base(f"cri-{request.param[:2]}-")
    try:
        with cri_engine(request.param, base) as e:
            yield e
    finally:
        remove_base(base)


@pytest.fixture
def pyengine() -> Iterator[Engine]:
    base = short_base("cri-py-")
    try:
        with cri_engine("pycontainerd", base) as e:
            yield e
    finally:
        remove_base(base)


@pytest.fixture
def both() -> Iterator[tuple[Engine, Engine]]:
    """Both engines at once, for answers compared side by side."""
    base1, base2 = short_base("cri-py-"), short_base("cri-cd-")
    try:
        with cri_engine("pycontainerd", base1) as py, cri_engine("containerd", base2) as ref:
            yield py, ref
    finally:
        remove_base(base1)
        remove_base(base2)
