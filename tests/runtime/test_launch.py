"""pyrunc's launcher bundle (runtime/launch.py): modules served pre-compiled, never stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runtime import launch

REPO = Path(__file__).resolve().parents[2]
RUNTIME_PYTHON = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"


def _python() -> str:
    return RUNTIME_PYTHON if os.access(RUNTIME_PYTHON, os.X_OK) else sys.executable


def _importer(bundle: Path, body: str) -> list[str]:
    """A python -IS command that installs BUNDLE's finder as the launcher does, then runs BODY."""
    return [
        _python(),
        "-IS",
        "-c",
        f"import sys; sys.path.insert(0, {str(REPO)!r}); from runtime import launch; "
        f"sys.meta_path.insert(0, launch.BundleFinder(launch.load({str(bundle)!r}))); {body}",
    ]


def test_modules_come_from_the_bundle_without_docstrings_or_future_import(tmp_path: Path) -> None:
    bundle = tmp_path / "pyrunc.bundle"
    subprocess.run(
        [_python(), "-IS", "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
         f"from runtime.launch import build; build({str(REPO)!r}, {str(bundle)!r})"],
        check=True,
    )  # fmt: skip
    body = (
        "import runtime.cli as m; print(type(m.__spec__.loader).__name__, m.__file__, "
        "m.__doc__, m.main.__doc__, '__future__' in sys.modules, m.main.__annotations__['return'])"
    )
    out = subprocess.run(_importer(bundle, body), check=True, capture_output=True, text=True).stdout.split()
    # Served by the finder, with the source's path; docstrings gone; annotations still strings
    # (the __future__ flag was kept) though the __future__ module was never imported.
    assert out == ["BundleFinder", str(REPO / "runtime" / "cli.py"), "None", "None", "False", "int"]


def test_an_edited_module_is_left_to_the_normal_import_system(tmp_path: Path) -> None:
    source = tmp_path / "edited.py"
    source.write_text("VALUE = 'new'\n")
    st = source.stat()
    old = compile("VALUE = 'old'\n", str(source), "exec")
    import marshal

    entries: dict[str, launch.Entry] = {
        "edited": (str(source), False, st.st_mtime_ns, st.st_size, marshal.dumps(old))
    }
    finder = launch.BundleFinder(entries)
    assert finder.find_spec("edited") is not None
    assert finder.find_spec("other") is None
    source.write_text("VALUE = 'newer'\n")  # another size, another mtime: the bundle is stale
    assert finder.find_spec("edited") is None
    source.unlink()
    assert finder.find_spec("edited") is None


def test_a_bundle_of_another_interpreter_or_damaged_is_ignored(tmp_path: Path) -> None:
    import marshal

    other = tmp_path / "other.bundle"
    other.write_bytes(marshal.dumps((("cpython-39", b"\x61\x0d\x0d\x0a"), {})))
    damaged = tmp_path / "damaged.bundle"
    damaged.write_bytes(b"\x00not marshal")
    assert launch.load(str(other)) is None
    assert launch.load(str(damaged)) is None
    assert launch.load(str(tmp_path / "missing.bundle")) is None


def test_the_installed_launcher_uses_the_bundle() -> None:
    launcher = (REPO / ".venv" / "bin" / "pyrunc").read_text()
    assert "from runtime.launch import launch" in launcher
    bundle = Path(launcher.split('launch("')[1].split('")')[0])
    entries = launch.load(str(bundle))
    assert entries is not None and "runtime.cli" in entries and "common.libc" in entries
