"""pydocker's copy of containerd's v1 gRPC API.

The .proto files under protos/ are the wire contract (containerd's packages,
services, messages and field numbers). Their Python stubs, with typed .pyi files,
are generated into the package `protos.gen` (protos/generate.py: by scripts/setup
in a source tree, by the build step of setup.py in a wheel; never committed) and
imported like any subpackage:

    from protos.gen.containerd_api.services.version.v1 import version_pb2, version_pb2_grpc

This module imports nothing heavy: the shim can import it without paying for
protobuf or grpc.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import importlib.abc
    import importlib.machinery
    from collections.abc import Sequence

    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.protobuf.message import Message

GEN_DIR = Path(__file__).resolve().parent / "gen"
# The top-level names the stubs had before they became protos.gen (see load()).
_LEGACY = ("containerd_api", "google.rpc")


class ProtosNotGenerated(RuntimeError):
    """The generated stubs are missing: scripts/setup has not been run."""


class _LegacyNames:
    """`containerd_api.x` and `google.rpc.x` as the very module objects of `protos.gen.<name>`.

    Aliases, not a second import of the same files: a second copy would register every
    message class twice, and a request built from one copy is refused by a stub of the other.
    A meta path finder and loader by protocol (importlib.abc costs 30 ms to import).
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not any(fullname == name or fullname.startswith(name + ".") for name in _LEGACY):
            return None
        import importlib.machinery
        import importlib.util

        real = importlib.util.find_spec(f"{__name__}.gen.{fullname}")
        if real is None:
            return None
        loader = cast("importlib.abc.Loader", self)
        return importlib.machinery.ModuleSpec(
            fullname, loader, is_package=real.submodule_search_locations is not None
        )

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        import importlib

        module = importlib.import_module(f"{__name__}.gen.{spec.name}")
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its protos.gen name; the import system has just given it
        # the alias's __spec__: it gets its own back.
        module.__spec__ = self._specs.pop(module.__spec__.name if module.__spec__ else "", module.__spec__)


def load(gen_dir: Path = GEN_DIR) -> None:
    """Deprecated, for code written before the stubs were the package protos.gen (idempotent).

    It checks the stubs exist and lets the old top-level names (`containerd_api...`,
    `google.rpc...`) import as aliases of protos.gen's modules. New code imports
    protos.gen directly and needs no call.
    """
    if not (gen_dir / "containerd_api" / "__init__.py").is_file():
        raise ProtosNotGenerated(f"protobuf stubs not found in {gen_dir}: run scripts/setup")
    if not any(isinstance(finder, _LegacyNames) for finder in sys.meta_path):
        # First: the path finder would otherwise import `containerd_api.services` a second
        # time from the aliased package's __path__.
        sys.meta_path.insert(0, _LegacyNames())


def type_url(message: Message) -> str:
    """The type URL containerd gives a message packed in an Any: its bare full name.

    containerd's Go clients (typeurl) look types up by exactly that string, so
    protobuf's default "type.googleapis.com/" prefix makes `ctr events` and
    friends fail with "type with url ... not found".
    """
    return str(message.DESCRIPTOR.full_name)


def marshal_any(message: Message) -> AnyMessage:
    """Pack `message` into a google.protobuf.Any the way containerd does."""
    from google.protobuf.any_pb2 import Any as AnyMessage

    return AnyMessage(type_url=type_url(message), value=message.SerializeToString())
