"""The volume service's errors, worded as moby's volume store words them.

Every refusal is one of the engine's error kinds (dockerd/engine/errors.py), so the API layer
turns it into Docker's status and `{"message"}` without knowing about volumes. Messages follow
moby's `OpErr`: "<op> <name>: <cause>", with " - [<refs>]" when containers hold the volume.
"""

from __future__ import annotations

from collections.abc import Sequence

from dockerd.engine.errors import Conflict, EngineError, InvalidParameter, NotFound

__all__ = [
    "Conflict",
    "DriverError",
    "EngineError",
    "InvalidParameter",
    "NotFound",
    "in_use",
    "name_conflict",
    "no_such_volume",
    "op_error",
]

NO_SUCH_VOLUME = "no such volume"
VOLUME_IN_USE = "volume is in use"
NAME_CONFLICT = "volume name must be unique"


class DriverError(EngineError):
    """A driver failed (a plugin answered an error, could not be reached, timed out, a mount failed).

    Docker answers these with 500: the request was fine, the backend was not.
    """

    status = 500


def op_error(
    kind: type[EngineError], op: str, name: str, cause: str, refs: Sequence[str] = ()
) -> EngineError:
    text = f"{op} {name}: {cause}" if name else f"{op}: {cause}"
    if refs:
        text += " - [" + ", ".join(refs) + "]"
    return kind(text)


def wrap(op: str, name: str, exc: EngineError) -> EngineError:
    """EXC with moby's "<op> <name>: " in front, same kind (so the same status)."""
    return op_error(type(exc), op, name, str(exc))


def no_such_volume(op: str, name: str) -> NotFound:
    err = op_error(NotFound, op, name, NO_SUCH_VOLUME)
    assert isinstance(err, NotFound)
    return err


def in_use(name: str, refs: Sequence[str]) -> Conflict:
    err = op_error(Conflict, "remove", name, VOLUME_IN_USE, refs)
    assert isinstance(err, Conflict)
    return err


def name_conflict(name: str, detail: str) -> Conflict:
    err = op_error(Conflict, "create", name, f"{detail}: {NAME_CONFLICT}")
    assert isinstance(err, Conflict)
    return err
