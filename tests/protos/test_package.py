"""The generated stubs as the package protos.gen, and the client's import boundary.

- protos.gen imports with nothing added to sys.path, and `import protos` stays light (the shim
  imports it and must not pay for protobuf or grpc);
- protos.load(), kept for code written against the old top-level names, makes those names
  aliases of the very same modules (one copy of each message class);
- the generated .pyi give mypy real types;
- containerd/client uses nothing of the daemon: only itself, protos and what both sides share
  (common/errdefs.py, common/mount.py); and the daemon does not load the client library.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from protos.generate import rewrite

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python")


def _run(code: str, *flags: str) -> str:
    done = subprocess.run([PYTHON, *flags, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_stubs_import_as_a_package_without_path_changes() -> None:
    out = _run(
        "import sys; before = list(sys.path)\n"
        "from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc\n"
        "from protos.gen.google.rpc import status_pb2\n"
        "assert sys.path == before, sys.path\n"
        "assert 'containerd_api' not in sys.modules\n"
        "print(tasks_pb2.CreateTaskRequest.__module__, tasks_pb2.DESCRIPTOR.name)"
    )
    assert out.split() == [
        "protos.gen.containerd_api.services.tasks.v1.tasks_pb2",
        "containerd_api/services/tasks/v1/tasks.proto",  # the .proto's own name: descriptors unchanged
    ]


def test_protos_is_import_light() -> None:
    # as the shim starts: isolated, no site, the repository put on the path by hand
    _run(
        f"import sys; sys.path.insert(0, {str(REPO)!r}); import protos\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('grpc', 'google') or m == 'importlib.abc']\n"
        "assert not heavy, heavy",
        "-I",
        "-S",
    )


def test_daemon_does_not_load_the_client_library() -> None:
    # it raises the same error kinds and mounts the same way, from common/: the client library
    # (its stubs, archive code...) would only slow pycontainerd's start
    _run(
        "import sys, containerd.main, containerd.server\n"
        "loaded = [m for m in sys.modules if m.startswith('containerd.client')]\n"
        "assert not loaded, loaded\n"
        "import containerd.errors, containerd.client.errors, containerd.snapshots.mount, containerd.client.mount\n"
        "assert containerd.errors.NotFound is containerd.client.errors.NotFound\n"
        "assert containerd.snapshots.mount.Mount is containerd.client.mount.Mount"
    )


def test_load_aliases_the_old_names_to_the_same_modules() -> None:
    _run(
        "import protos, sys\n"
        "protos.load(); protos.load()\n"
        "from containerd_api.services.tasks.v1 import tasks_pb2 as old\n"
        "import containerd_api.types.mount_pb2 as old_mount\n"
        "import google.rpc.status_pb2 as old_status\n"
        "from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2 as new\n"
        "from protos.gen.containerd_api.types import mount_pb2 as new_mount\n"
        "assert old is new and old_mount is new_mount and old_status.__name__ == 'protos.gen.google.rpc.status_pb2'\n"
        "assert new.__spec__.name == new.__name__\n"
        "new.CreateTaskRequest(rootfs=[old_mount.Mount(type='bind')])  # one class, whichever name built it\n"
        "assert sum(1 for f in sys.meta_path if type(f).__name__ == '_LegacyNames') == 1"
    )


def test_mypy_sees_real_types(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from containerd.client import Client\n"
        "from protos.gen.containerd_api.services.tasks.v1 import tasks_pb2\n"
        "client = Client('/nonexistent')\n"
        "reveal_type(client.call(client.api.tasks.Start, tasks_pb2.StartRequest()))\n"
        "reveal_type(client.tasks.wait('c'))\n"
        "tasks_pb2.StartRequest(container_id=1)\n"
    )
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mypy"), "--no-incremental", "--cache-dir=/dev/null", str(probe)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (
        'Revealed type is "protos.gen.containerd_api.services.tasks.v1.tasks_pb2.StartResponse"'
        in done.stdout
    )
    assert 'Revealed type is "containerd.client.tasks.Exit"' in done.stdout
    assert (
        'Argument "container_id" to "StartRequest" has incompatible type "int"; expected "str"' in done.stdout
    )


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        (
            "from containerd_api.types import mount_pb2 as m\n",
            "from protos.gen.containerd_api.types import mount_pb2 as m\n",
        ),
        ("from google.rpc import status_pb2 as s\n", "from protos.gen.google.rpc import status_pb2 as s\n"),
        ("from google.protobuf import any_pb2 as a\n", "from google.protobuf import any_pb2 as a\n"),
        ("import containerd_api.types.mount_pb2\n", "import protos.gen.containerd_api.types.mount_pb2\n"),
        (
            "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'containerd_api.types.mount_pb2', _globals)\n",
            "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'protos.gen.containerd_api.types.mount_pb2', _globals)\n",
        ),
        ("    'containerd_api/types/mount.proto'\n", "    'containerd_api/types/mount.proto'\n"),
    ],
)
def test_rewrite_touches_only_our_imports(generated: str, expected: str) -> None:
    assert rewrite(generated) == expected


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_client_uses_nothing_of_the_daemon() -> None:
    # common/ is shared by every layer by design; only the daemon's own modules are off limits.
    allowed = ("containerd.client", "protos", "common")
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in (REPO / "containerd" / "client").glob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in ("containerd", "protos", "runtime", "dockerd", "shim", "cli", "common")
        and not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not offenders
