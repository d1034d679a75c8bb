"""pyrunc's start: its modules served from one pre-compiled bundle, then the command line.

Every verb is a fresh interpreter, so the import system's per-module work counts: for each
module it walks sys.path (a stat of the directory, its listing), stats the source, opens, reads
and validates the cached byte-code and unmarshals it, about 0.4M instructions before the module
body runs, and a verb imports 15 to 40 of the repository's modules. `scripts/setup` writes one
bundle (`build`) with every module of runtime/ and common/ compiled, each kept as its own
marshalled bytes (so only what a verb imports is unmarshalled) with the size and mtime of its
source. Compiled from the syntax tree with two things left out that cost at every start and do
nothing for pyrunc: docstrings (byte-code to unmarshal; nothing in pyrunc reads __doc__) and
the `from __future__ import annotations` statement, which at run time is a real import of the
`__future__` module; its compiler flag is passed instead, so annotations stay unevaluated as
the source asks. Asserts and line numbers stay. The finder serves a module from the bundle when its source is unchanged (one stat)
and otherwise leaves it to the normal import system, so an edited checkout never runs stale
code; a bundle of another interpreter version, or none, is ignored.

Only `os`, `marshal` and `sys` are used here, all loaded before any verb anyway. This module is
itself imported the normal way, so it has no `from __future__ import annotations` (its
annotations of imported types are strings).
"""

import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import CodeType, ModuleType
    from typing import NoReturn

# What a bundle maps a module name to: (source path, is a package, source mtime_ns, source size,
# marshalled code).
Entry = tuple[str, bool, int, int, bytes]
PACKAGES = ("runtime", "common")


def _header() -> tuple[str, bytes]:
    """Which interpreter's byte-code a bundle holds: the cache tag and the import system's magic."""
    external = sys.modules["_frozen_importlib_external"]  # loaded at start-up: no import
    return str(sys.implementation.cache_tag), bytes(external.MAGIC_NUMBER)


class BundleFinder:
    """A meta path finder and loader over a bundle's entries."""

    def __init__(self, entries: dict[str, Entry]) -> None:
        self._entries = entries

    def find_spec(self, name: str, path: object = None, target: object = None) -> "ModuleSpec | None":
        entry = self._entries.get(name)
        if entry is None:
            return None
        source, is_package, mtime_ns, size, _ = entry
        try:
            st = os.stat(source)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since the bundle was built: the normal import system compiles it
        spec_type = type(sys.__spec__)  # importlib.machinery.ModuleSpec, without importing importlib
        # A loader by protocol (create_module, exec_module): importlib.abc.Loader costs an import.
        spec: ModuleSpec = spec_type(name, self, origin=source, is_package=is_package)  # type: ignore[arg-type]
        spec.has_location = True  # __file__ = origin
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(source)]
        return spec

    def create_module(self, spec: "ModuleSpec") -> None:
        return None  # the default module object

    def exec_module(self, module: "ModuleType") -> None:
        spec = module.__spec__
        assert spec is not None
        exec(marshal.loads(self._entries[spec.name][4]), module.__dict__)  # our own byte-code


def load(bundle: str) -> dict[str, Entry] | None:
    """The entries of BUNDLE, or None when it is missing, damaged or of another interpreter."""
    try:
        with open(bundle, "rb") as f:
            header, entries = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if tuple(header) != _header() or not isinstance(entries, dict):
        return None
    return entries


def _compile(source: bytes, path: str) -> "CodeType":
    """SOURCE's byte-code as the source loader makes it (the file's path in tracebacks, no
    inherited flags), less docstrings and the __future__ import (its flag passed instead)."""
    import __future__

    import ast

    tree = ast.parse(source, path)
    flags = 0
    for node in list(tree.body):
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                flags |= getattr(__future__, alias.name).compiler_flag
            tree.body.remove(node)
    for scope in ast.walk(tree):
        if isinstance(scope, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = scope.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    first = body.pop(0)
                    if not body:  # a body that was only a docstring
                        body.append(ast.copy_location(ast.Pass(), first))
    code: CodeType = compile(tree, path, "exec", flags=flags, dont_inherit=True)
    return code


def build(repo: str, bundle: str) -> int:
    """Compile every module of PACKAGES under REPO into BUNDLE (replaced whole); the count."""
    entries: dict[str, Entry] = {}
    for package in PACKAGES:
        for directory, subdirs, files in os.walk(os.path.join(repo, package)):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                parts = os.path.relpath(path, repo)[: -len(".py")].split(os.sep)
                is_package = parts[-1] == "__init__"
                module = ".".join(parts[:-1] if is_package else parts)
                with open(path, "rb") as f:
                    source = f.read()
                    st = os.fstat(f.fileno())
                code = _compile(source, path)
                entries[module] = (path, is_package, st.st_mtime_ns, st.st_size, marshal.dumps(code))
    tmp = f"{bundle}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(marshal.dumps((_header(), entries)))
    os.replace(tmp, bundle)
    return len(entries)


def launch(bundle: str) -> "NoReturn":
    """The launcher's entry: install the bundle's finder (if the bundle is usable), run the verb."""
    entries = load(bundle)
    if entries is not None:
        sys.meta_path.insert(0, BundleFinder(entries))
    from runtime.cli import run_and_exit

    run_and_exit()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "build":
        sys.exit("usage: python -m runtime.launch build REPO BUNDLE")
    print(f"{build(sys.argv[2], sys.argv[3])} modules in {sys.argv[3]}")
