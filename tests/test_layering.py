"""The import-linter contracts (pyproject.toml, checked by scripts/lint) stay complete.

import-linter cannot say "every module of containerd/ but client/", so the contract that keeps
pydockerd on the client library lists the daemon's modules by name; a module added to containerd/
must join that list, or pydockerd could import it unchecked.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _contract(name_start: str) -> dict[str, Any]:
    with open(REPO / "pyproject.toml", "rb") as f:
        contracts: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"].startswith(name_start))


def test_dockerd_contract_forbids_every_daemon_module() -> None:
    package = REPO / "containerd"
    children = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    children |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    assert "client" in children and "server" in children
    # remotes/ (the puller) is built on the client alone, for pycontainerd and pydockerd both
    daemon = {f"containerd.{name}" for name in children - {"client", "remotes"}}
    contract = _contract("pydockerd reaches pycontainerd only through")
    assert set(contract["forbidden_modules"]) == daemon


def test_every_package_is_under_the_contracts_and_in_the_wheel() -> None:
    # A new top-level package (as ttrpc/ was) must be a root package of import-linter, or no
    # contract sees it, and be listed for setuptools, or an installed program cannot import it.
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert {"common", "ttrpc", "shim", "runtime"} <= packages
    with open(REPO / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)
    assert set(config["tool"]["importlinter"]["root_packages"]) == packages
    included = {
        pattern.rstrip("*") for pattern in config["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert included == packages
