"""One Docker CLI command against the reference dockerd and pydockerd, results compared."""

from __future__ import annotations

import subprocess
from typing import Generic, Protocol, TypeVar

from tests.dockerd_ref import without_host_warnings


class _Engine(Protocol):
    def docker(self, *args: str) -> subprocess.CompletedProcess[str]: ...


E = TypeVar("E", bound=_Engine)


class EnginePair(Generic[E]):
    """The side-by-side core the engine tests' pairs share: `engines` maps "reference" and
    "pydockerd" to their handles."""

    engines: dict[str, E]

    def both(self, *args: str) -> dict[str, tuple[int, str, str]]:
        """(exit code, stdout, stderr without the reference's host warning) per engine."""
        out = {}
        for which, engine in self.engines.items():
            res = engine.docker(*args)
            out[which] = (res.returncode, res.stdout, without_host_warnings(res.stderr))
        return out

    def same(self, *args: str) -> tuple[int, str, str]:
        """Run on both, assert identical results, return them."""
        results = self.both(*args)
        assert results["pydockerd"] == results["reference"], f"docker {' '.join(args)}: {results}"
        return results["reference"]

    def ok_both(self, *args: str) -> dict[str, str]:
        out = {}
        for which, (code, stdout, stderr) in self.both(*args).items():
            assert code == 0, f"{which}: docker {' '.join(args)} -> {code}: {stderr}"
            out[which] = stdout
        return out
