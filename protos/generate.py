"""Generate the Python stubs of protos/ as the package `protos.gen` (never committed).

    python -m protos.generate [OUT]          # OUT defaults to protos/gen

grpc_tools.protoc writes `*_pb2.py` and `*_pb2_grpc.py`; mypy-protobuf writes their typed
`.pyi` stubs (messages, enums, and the stubs' request/response types), so mypy sees real
types instead of Any. protoc names each module after its .proto path (`containerd_api.
types.mount_pb2`, `google.rpc.status_pb2`) and imports its dependencies by those absolute
names; those names only resolve with the output directory on sys.path. The few import
lines protoc and mypy-protobuf emit have a fixed shape, so they are rewritten here to live
under `protos.gen` (plus the module name each _pb2 registers for its classes), and the
directories become regular packages: the stubs import like any subpackage, from a source
tree or an installed wheel, with no path set-up at run time.

Used by scripts/setup (into the source tree) and by setup.py's build step (into the wheel).
Output is built in a sibling directory and swapped in whole, so a failed run never leaves
half a tree behind. The module imports only the standard library: grpc_tools and
mypy_protobuf run in a child process.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT / "gen"
PACKAGE = "protos.gen"
# The top-level names protoc gives our own .proto files (google.protobuf is protobuf's own).
_OWN = r"(?:containerd_api|cri_api|google\.rpc)"
_IMPORT = re.compile(rf"^(\s*)(from|import) ({_OWN})\b", re.MULTILINE)
_MODULE_NAME = re.compile(rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')({_OWN})\b")
_LEFT_OVER = re.compile(rf"^\s*(?:from|import) {_OWN}\b", re.MULTILINE)


class GenerateError(RuntimeError):
    """protoc (or a plugin) failed, or its output did not have the expected shape."""


def proto_files(root: Path = PROTO_ROOT) -> list[str]:
    """Every .proto under ROOT (gen/ excepted), as protoc paths relative to it, sorted."""
    found = []
    for path in root.rglob("*.proto"):
        rel = path.relative_to(root)
        if rel.parts[0] != "gen":
            found.append(rel.as_posix())
    return sorted(found)


def _plugin(name: str) -> str | None:
    """A protoc plugin script installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def _protoc_args(out: Path) -> list[str]:
    args = [f"--python_out={out}", f"--grpc_python_out={out}"]
    mypy, mypy_grpc = _plugin("protoc-gen-mypy"), _plugin("protoc-gen-mypy_grpc")
    if importlib.util.find_spec("mypy_protobuf") and mypy and mypy_grpc:
        args += [
            f"--plugin=protoc-gen-mypy={mypy}",
            f"--plugin=protoc-gen-mypy_grpc={mypy_grpc}",
            f"--mypy_out=quiet:{out}",
            f"--mypy_grpc_out=quiet:{out}",
        ]
    else:  # no mypy-protobuf (a bare runtime install): protoc's own, less precise, message stubs
        args.append(f"--pyi_out={out}")
    return args


def rewrite(text: str) -> str:
    """One generated file's imports of our own modules, moved under protos.gen."""
    text = _IMPORT.sub(rf"\1\2 {PACKAGE}.\3", text)
    return _MODULE_NAME.sub(rf"\1{PACKAGE}.\2", text)


def _packageize(tree: Path) -> None:
    for directory in [tree, *(p for p in tree.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    for path in tree.rglob("*.py*"):
        if path.suffix not in (".py", ".pyi") or path.name == "__init__.py":
            continue
        text = rewrite(path.read_text())
        if _LEFT_OVER.search(text):
            raise GenerateError(f"{path}: an import of a generated module was not rewritten")
        path.write_text(text)


def generate(out: Path = DEFAULT_OUT, root: Path = PROTO_ROOT) -> None:
    """Compile every .proto under ROOT into the package tree OUT (replaced whole)."""
    out = out.resolve()
    tmp = out.with_name(f"{out.name}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        files = proto_files(root)
        cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(root), *_protoc_args(tmp), *files]
        result = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        if result.returncode != 0:
            raise GenerateError(f"protoc failed on {root}:\n{result.stderr.strip()}")
        _packageize(tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_OUT
    try:
        generate(out)
    except GenerateError as exc:
        print(f"protos.generate: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
