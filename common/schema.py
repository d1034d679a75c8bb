"""Versioned on-disk state: every store says which layout it is written in, a newer build migrates
an older layout when it starts, and a layout newer than the build (a downgrade) is refused.

A store is a JSON document (or a set of them), a directory of files, or an SQLite database
(`common/schemadb.py`). Each declares its current layout version and one step per older version
(`steps[n]` turns layout n into n + 1). The rules, the same for all of them:

* a document carries its version in a top-level "Version" field; a directory in a marker file
  (`layout.json`, `{"Version": N}`); a database in `PRAGMA user_version`;
* no version at all is version 1 (`BASELINE`): the layout of the release before versioning;
* older: the steps run in order and the result is written back whole (`common/atomicfile.py`)
  or, for a database, in the transaction that checked the version; a directory's marker is
  written after its files, so a crash mid-way migrates again (a step must tolerate that);
* newer: `NewerLayout`, naming the file; the store is left as it is;
* unreadable (half-written, not JSON, not a database): `DamagedState`, naming the file; nothing
  is deleted, the caller skips that one record and goes on with the rest.

Import-light (os only) like the rest of common/: pyrunc and the shim use it. JSON parsing is the
caller's (`fastjson.loads` or `json.loads`), passed in.
"""

from __future__ import annotations

import os

from common import atomicfile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Steps = Mapping[int, Callable[[dict[str, Any]], None]]

VERSION_KEY = "Version"
BASELINE = 1  # an unversioned store: the layout of the release before versioning
MARKER = "layout.json"


class LayoutError(Exception):
    """A store this build cannot use as it is; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class NewerLayout(LayoutError):
    """Written by a newer build (a downgrade): refused, never rewritten."""

    def __init__(self, path: str | os.PathLike[str], found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"layout version {found} is newer than this build reads (up to {supported}):"
            " written by a newer release? left untouched",
        )


class DamagedState(LayoutError):
    """Not a readable document or database (a crash mid-write, a disk error): left untouched."""


def version_of(path: str | os.PathLike[str], doc: dict[str, Any], key: str = VERSION_KEY) -> int:
    """The layout version DOC declares (BASELINE without one)."""
    found = doc.get(key, BASELINE)
    if type(found) is not int or found < 1:
        raise DamagedState(path, f"invalid layout version {found!r}")
    return found


def upgrade(
    path: str | os.PathLike[str], doc: dict[str, Any], current: int, steps: Steps | None = None,
    key: str = VERSION_KEY,
) -> bool:  # fmt: skip
    """Bring DOC (read from PATH) to layout CURRENT in place; True if it changed (the caller then
    writes it back). Raises NewerLayout for a layout newer than CURRENT."""
    found = version_of(path, doc, key)
    if found > current:
        raise NewerLayout(path, found, current)
    for version in range(found, current):
        step = (steps or {}).get(version)
        if step is None:
            raise LayoutError(
                path, f"no migration from layout version {version} (this build reads {current})"
            )
        step(doc)
    changed = found != current or key not in doc
    doc[key] = current
    return changed


def parse(path: str | os.PathLike[str], data: bytes, loads: Callable[[str], Any]) -> dict[str, Any]:
    """DATA (PATH's bytes) as a JSON object, or DamagedState naming PATH."""
    if not data.strip():
        raise DamagedState(path, "empty file (written only in part?)")
    try:
        doc = loads(data.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DamagedState(path, f"not a complete JSON document (written only in part?): {exc}") from None
    if not isinstance(doc, dict):
        raise DamagedState(path, "not a JSON object")
    return doc


def load(
    path: str | os.PathLike[str], loads: Callable[[str], Any], current: int, steps: Steps | None = None,
    key: str = VERSION_KEY,
) -> tuple[dict[str, Any], bool]:  # fmt: skip
    """Read the document at PATH, brought to layout CURRENT: (doc, migrated). OSError as open()'s."""
    with open(path, "rb") as f:
        doc = parse(path, f.read(), loads)
    return doc, upgrade(path, doc, current, steps, key)


def stamped(doc: dict[str, Any], current: int, key: str = VERSION_KEY) -> dict[str, Any]:
    """DOC with its layout version first (as it is written)."""
    return {key: current, **{k: v for k, v in doc.items() if k != key}}


# --- directories -----------------------------------------------------------------------------


def dir_version(directory: str | os.PathLike[str], loads: Callable[[str], Any], current: int) -> int:
    """The layout of a directory store from its marker (BASELINE without one); NewerLayout for a
    newer one, DamagedState for an unreadable marker."""
    path = os.path.join(directory, MARKER)
    try:
        with open(path, "rb") as f:
            doc = parse(path, f.read(), loads)
    except FileNotFoundError:
        return BASELINE
    found = version_of(path, doc)
    if found > current:
        raise NewerLayout(path, found, current)
    return found


def mark_dir(directory: str | os.PathLike[str], current: int, *, durable: bool = True) -> None:
    """Record that DIRECTORY is in layout CURRENT (after its files are, when migrating)."""
    data = b'{"%s": %d}\n' % (VERSION_KEY.encode(), current)
    atomicfile.write_atomic(os.path.join(directory, MARKER), data, 0o644, durable=durable)
