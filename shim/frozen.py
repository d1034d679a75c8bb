"""The shim's code, held in memory from the moment it starts serving.

A shim lives as long as its container, across upgrades of the checkout it was started from, yet
it loads some modules late on purpose: the mount code (ctypes) only in the forked helper that
mounts, statistics and the OOM watch when first asked, so that an idle shim stays small. If those
were read from disk when first needed, a shim started by release N would run release N+1's
modules against its own (or find them gone). So at start the shim reads the source of every
module of its packages it has not imported yet, and a finder first on `sys.meta_path` serves
those imports from that copy: a change of the checkout under a running shim changes nothing in
it. The copy is the source text (tens of KiB, shared copy-on-write with the forked helpers);
the few late imports compile it when they happen.

Kept free of importlib's Python modules: the finder uses the import system's own ModuleSpec.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

# Everything the shim imports of the repository (the import contracts keep it to these), and pyrunc
# when the shim has loaded it to fork its verbs (shim/runtimefork.py).
PACKAGES = ("shim", "common", "ttrpc")
RUNTIME_PACKAGE = "runtime"
_ModuleSpec = sys.modules["_frozen_importlib"].ModuleSpec


class SourceCopy:
    """A meta path finder and loader for the modules whose source it holds."""

    def __init__(self, sources: dict[str, tuple[str, bytes, bool]]) -> None:
        self.sources = sources  # module name -> (path, source, is a package)

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> Any:
        entry = self.sources.get(fullname)
        if entry is None:
            return None
        filename, _, is_package = entry
        spec = _ModuleSpec(fullname, self, origin=filename, is_package=is_package)
        spec.has_location = True  # __file__ is set, as for a module read from disk
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(filename)]
        return spec

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        filename, source, _ = self.sources[module.__name__]
        exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)


def read_sources(
    repo: str, skip: set[str] | frozenset[str] = frozenset()
) -> dict[str, tuple[str, bytes, bool]]:
    """The source of every module of PACKAGES under REPO (and of `runtime` if pyrunc is loaded), but
    those named in SKIP."""
    sources: dict[str, tuple[str, bytes, bool]] = {}
    packages = PACKAGES + ((RUNTIME_PACKAGE,) if "runtime.cli" in sys.modules else ())
    for package in packages:
        top = os.path.join(repo, package)
        for directory, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            prefix = os.path.relpath(directory, repo).replace(os.sep, ".")
            for name in files:
                if not name.endswith(".py"):
                    continue
                is_package = name == "__init__.py"
                module = prefix if is_package else f"{prefix}.{name[:-3]}"
                if module in skip:
                    continue
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    sources[module] = (path, f.read(), is_package)
    return sources


def hold_code(repo: str) -> SourceCopy:
    """From now on, this process imports the modules of PACKAGES it has not loaded yet from a copy
    of their source taken now, never from REPO."""
    finder = SourceCopy(read_sources(repo, skip=set(sys.modules)))
    sys.meta_path.insert(0, finder)
    return finder
